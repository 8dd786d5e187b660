import Testing
@testable import NFQueue

/// A request head as raw text and the exact answer it must get.
struct HTTPCase: Sendable, CustomTestStringConvertible {
    enum Outcome: Sendable {
        case head(host: String?, port: UInt16?, url: String, userAgent: String? = nil)
        case needMoreData
        /// `.malformed` with a reason containing this text.
        case malformed(String)
    }

    let name: String
    let raw: String
    let outcome: Outcome

    init(_ name: String, _ raw: String, _ outcome: Outcome) {
        self.name = name
        self.raw = raw
        self.outcome = outcome
    }

    var testDescription: String { name }
}

@Suite("HTTP/1.x request head parser")
struct HTTPRequestParserTests {
    static let cases: [HTTPCase] = [
        HTTPCase("CRLF", "GET /index.html HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/index.html")),
        HTTPCase("LF only", "GET /index.html HTTP/1.1\nHost: a.example\nAccept: */*\n\n", .head(host: "a.example", port: nil, url: "http://a.example/index.html")),
        HTTPCase("mixed CRLF and LF", "GET / HTTP/1.1\nHost: a.example\r\nAccept: */*\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/")),
        HTTPCase("tabs and spaces around the value", "GET / HTTP/1.1\r\nHost:\t  a.example \t\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/")),
        HTTPCase("no space after the colon", "GET / HTTP/1.1\r\nHost:a.example\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/")),
        HTTPCase("header name case", "GET / HTTP/1.1\r\nhOsT: A.Example\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/")),
        HTTPCase("trailing dot removed", "GET / HTTP/1.1\r\nHost: A.example.\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/")),
        HTTPCase("two trailing dots", "GET / HTTP/1.1\r\nHost: a.example..\r\n\r\n", .malformed("Host header host is not a plausible DNS name")),
        HTTPCase("lone dot", "GET / HTTP/1.1\r\nHost: .\r\n\r\n", .malformed("not a plausible DNS name")),
        HTTPCase("port", "GET /x HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", .head(host: "a.example", port: 8080, url: "http://a.example:8080/x")),
        HTTPCase("trailing dot and port", "GET /x HTTP/1.1\r\nHost: a.example.:8080\r\n\r\n", .head(host: "a.example", port: 8080, url: "http://a.example:8080/x")),
        HTTPCase("default port kept in hostPort only", "GET /x HTTP/1.1\r\nHost: a.example:80\r\n\r\n", .head(host: "a.example", port: 80, url: "http://a.example/x")),
        HTTPCase("empty port", "GET /x HTTP/1.1\r\nHost: a.example:\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/x")),
        HTTPCase("port out of range", "GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n", .malformed("port 65536 out of range")),
        HTTPCase("port too long", "GET / HTTP/1.1\r\nHost: a.example:000080\r\n\r\n", .malformed("invalid port")),
        HTTPCase("port not numeric", "GET / HTTP/1.1\r\nHost: a.example:http\r\n\r\n", .malformed("invalid port")),
        HTTPCase("IPv4 host", "GET / HTTP/1.1\r\nHost: 192.0.2.7:81\r\n\r\n", .head(host: "192.0.2.7", port: 81, url: "http://192.0.2.7:81/")),
        HTTPCase("IPv6 literal host", "GET / HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n", .head(host: "2001:db8::1", port: 8080, url: "http://[2001:db8::1]:8080/")),
        HTTPCase("IPv6 literal with zone", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", .malformed("invalid IPv6 literal")),
        HTTPCase("query kept", "GET /search?q=a%20b&x=1 HTTP/1.1\r\nHost: a.example\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/search?q=a%20b&x=1")),
        HTTPCase("absolute-form wins over Host", "GET http://b.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\n\r\n", .head(host: "b.example", port: nil, url: "http://b.example/x?y=1")),
        HTTPCase("absolute-form, scheme and host case", "GET HTTP://B.Example.:8080/X HTTP/1.1\r\nHost: a.example\r\n\r\n", .head(host: "b.example", port: 8080, url: "http://b.example:8080/X")),
        HTTPCase("absolute-form https default port", "GET https://b.example:443 HTTP/1.1\r\nHost: b.example\r\n\r\n", .head(host: "b.example", port: 443, url: "https://b.example/")),
        HTTPCase("absolute-form query without path", "GET http://b.example?q HTTP/1.1\r\nHost: b.example\r\n\r\n", .head(host: "b.example", port: nil, url: "http://b.example/?q")),
        HTTPCase("absolute-form without Host header", "GET http://b.example/ HTTP/1.1\r\n\r\n", .head(host: "b.example", port: nil, url: "http://b.example/")),
        HTTPCase("absolute-form still validates Host", "GET http://b.example/ HTTP/1.1\r\nHost: a b\r\n\r\n", .malformed("invalid byte in Host header host")),
        HTTPCase("absolute-form with userinfo", "GET http://a.example@b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", .malformed("userinfo in request target")),
        HTTPCase("absolute-form without authority", "GET http:/x HTTP/1.1\r\nHost: a.example\r\n\r\n", .malformed("absolute-form target without an authority")),
        HTTPCase("absolute-form with empty authority", "GET http:///x HTTP/1.1\r\nHost: a.example\r\n\r\n", .malformed("empty request target authority")),
        HTTPCase("unrecognised target", "GET index.html HTTP/1.1\r\nHost: a.example\r\n\r\n", .malformed("unrecognised request target form")),
        HTTPCase("fragment in target", "GET /a#top HTTP/1.1\r\nHost: a.example\r\n\r\n", .malformed("invalid byte in request target")),
        HTTPCase("CONNECT authority-form", "CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", .head(host: "b.example", port: 443, url: "http://b.example:443/")),
        HTTPCase("CONNECT without port", "CONNECT b.example HTTP/1.1\r\nHost: b.example\r\n\r\n", .malformed("CONNECT target without a port")),
        HTTPCase("OPTIONS asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/")),
        HTTPCase("asterisk-form outside OPTIONS", "GET * HTTP/1.1\r\nHost: a.example\r\n\r\n", .malformed("asterisk-form target outside OPTIONS")),
        HTTPCase("duplicate Host", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", .malformed("duplicate Host header")),
        HTTPCase("duplicate Host, same value, other case", "GET / HTTP/1.1\r\nHost: a.example\r\nHOST: a.example\r\n\r\n", .malformed("duplicate Host header")),
        HTTPCase("duplicate Host with absolute-form", "GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n", .malformed("duplicate Host header")),
        HTTPCase("missing Host on HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", .malformed("missing Host header")),
        HTTPCase("empty Host on HTTP/1.1", "GET / HTTP/1.1\r\nHost: \r\n\r\n", .malformed("empty Host header")),
        HTTPCase("HTTP/1.0 without Host", "GET /old?x HTTP/1.0\r\n\r\n", .head(host: nil, port: nil, url: "/old?x")),
        HTTPCase("HTTP/1.0 with empty Host", "GET /old HTTP/1.0\r\nHost:\r\n\r\n", .head(host: nil, port: nil, url: "/old")),
        HTTPCase("HTTP/1.0 with Host", "GET /old HTTP/1.0\r\nHost: a.example\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/old")),
        HTTPCase("User-Agent trimmed", "GET / HTTP/1.1\r\nHost: a.example\r\nuser-agent: \tcurl/7.88.1 \r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/", userAgent: "curl/7.88.1")),
        HTTPCase("User-Agent with inner tab and UTF-8", "GET / HTTP/1.1\r\nUser-Agent: a\tb (ü)\r\nHost: a.example\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/", userAgent: "a\tb (ü)")),
        HTTPCase("empty User-Agent", "GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent:\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/", userAgent: "")),
        HTTPCase("duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", .malformed("duplicate Content-Length header")),
        HTTPCase("signed Content-Length", "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: +3\r\n\r\n", .malformed("invalid Content-Length value")),
        HTTPCase("Content-Length list", "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3, 3\r\n\r\n", .malformed("invalid Content-Length value")),
        HTTPCase("duplicate User-Agent", "GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n", .malformed("duplicate User-Agent header")),
        HTTPCase("empty line before the request line", "\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n", .head(host: "a.example", port: nil, url: "http://a.example/")),
        HTTPCase("obs-fold", "GET / HTTP/1.1\r\nHost: a.example\r\nX-Long: a\r\n b\r\n\r\n", .malformed("obsolete line folding")),
        HTTPCase("obs-fold continuing Host", "GET / HTTP/1.1\r\nHost: a.\r\n\texample\r\n\r\n", .malformed("obsolete line folding")),
        HTTPCase("whitespace before the colon", "GET / HTTP/1.1\r\nHost : b.example\r\n\r\n", .malformed("invalid header field name")),
        HTTPCase("header line without colon", "GET / HTTP/1.1\r\nHost a.example\r\n\r\n", .malformed("header line without a colon")),
        HTTPCase("bare CR", "GET / HTTP/1.1\r\nHost: a.example\rX: y\r\n\r\n", .malformed("bare CR")),
        HTTPCase("NUL in Host", "GET / HTTP/1.1\r\nHost: a\u{0}.example\r\n\r\n", .malformed("control byte in value of header field 'Host'")),
        HTTPCase("space inside Host", "GET / HTTP/1.1\r\nHost: a .example\r\n\r\n", .malformed("invalid byte in Host header host")),
        HTTPCase("percent-encoded Host", "GET / HTTP/1.1\r\nHost: %61.example\r\n\r\n", .malformed("invalid byte in Host header host")),
        HTTPCase("comma list in Host", "GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n", .malformed("invalid byte in Host header host")),
        HTTPCase("two spaces in the request line", "GET  / HTTP/1.1\r\nHost: a.example\r\n\r\n", .malformed("request line is not 'method SP target SP version'")),
        HTTPCase("HTTP/0.9 request line", "GET /\r\n\r\n", .malformed("request line is not 'method SP target SP version'")),
        HTTPCase("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", .malformed("unsupported HTTP version 'HTTP/2.0'")),
        HTTPCase("lower-case version", "GET / http/1.1\r\nHost: a.example\r\n\r\n", .malformed("unsupported HTTP version")),
        HTTPCase("TLS bytes on the HTTP port", "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}", .malformed("request line does not start with a method token")),
        HTTPCase("method too long", String(repeating: "A", count: 33), .malformed("method longer than 32 bytes")),
        HTTPCase("empty input", "", .needMoreData),
        HTTPCase("request line only", "GET / HTTP/1.1\r\n", .needMoreData),
        HTTPCase("head not yet ended", "GET / HTTP/1.1\r\nHost: a.example\r\n", .needMoreData),
        HTTPCase("head ended by a lone CR so far", "GET / HTTP/1.1\r\nHost: a.example\r\n\r", .needMoreData),
        HTTPCase("partial header line", "GET / HTTP/1.1\r\nHost: a.exa", .needMoreData),
        HTTPCase("partial obs-fold fails early", "GET / HTTP/1.1\r\nHost: a.example\r\n b", .malformed("obsolete line folding")),
        HTTPCase("partial duplicate Host fails once its line ends", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nAcc", .malformed("duplicate Host header")),
        HTTPCase("body after the head is not read", "POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello", .head(host: "a.example", port: nil, url: "http://a.example/up")),
        HTTPCase("oversize head", "GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: " + String(repeating: "p", count: 16 * 1024) + "\r\n\r\n", .malformed("request head exceeds 16384 bytes")),
        HTTPCase("oversize head, still incomplete", "GET / HTTP/1.1\r\nX-Pad: " + String(repeating: "p", count: 16 * 1024), .malformed("request head exceeds 16384 bytes")),
    ]

    @Test("request heads", arguments: cases)
    func requestHead(_ testCase: HTTPCase) {
        let actual = Self.outcome(HTTPRequestParser.parse(Array(testCase.raw.utf8)))
        #expect(actual.matches(testCase.outcome), "got \(actual)")
    }

    /// Every shorter prefix of a complete head is a valid prefix: need-more-data,
    /// with `atLeast` never more than what is really missing.
    @Test("every prefix of a complete head needs more data", arguments: cases.filter {
        if case .head = $0.outcome { return !$0.name.contains("body") }
        return false
    })
    func prefixes(_ testCase: HTTPCase) {
        let bytes = Array(testCase.raw.utf8)
        var wrong: [Int] = []
        for length in 0..<bytes.count {
            switch HTTPRequestParser.parse(bytes[..<length]) {
            case .needMoreData(let atLeast?) where atLeast >= 1 && length + atLeast <= bytes.count:
                continue
            default:
                wrong.append(length)
            }
        }
        #expect(wrong.isEmpty, "prefix lengths with a wrong answer: \(wrong.prefix(10))")
    }

    @Test("the head cap is inclusive")
    func capBoundary() {
        let start = "GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: "
        let end = "\r\n\r\n"
        let padding = HTTPRequestParser.defaultMaxHeadLength - start.utf8.count - end.utf8.count
        let exact = Array((start + String(repeating: "p", count: padding) + end).utf8)
        #expect(exact.count == HTTPRequestParser.defaultMaxHeadLength)
        #expect(HTTPRequestParser.parse(exact).value?.host == "a.example")
        let over = Array((start + String(repeating: "p", count: padding + 1) + end).utf8)
        #expect(HTTPRequestParser.parse(over).malformedReason?.contains("exceeds") == true)
        #expect(HTTPRequestParser.parse(exact, maxHeadLength: 100).malformedReason == "request head exceeds 100 bytes")
    }

    @Test("method, target and version are reported as sent")
    func requestLineFields() throws {
        let head = try #require(HTTPRequestParser.parse(Array("PROPFIND /Dav/ HTTP/1.1\r\nHost: a.example\r\n\r\n".utf8)).value)
        #expect(head == HTTPRequestHead(method: "PROPFIND", target: "/Dav/", version: "HTTP/1.1", host: "a.example",
                                        hostPort: nil, userAgent: nil, url: "http://a.example/Dav/", headLength: 44))
    }

    @Test("the head's length and Content-Length say where the body starts and ends")
    func bodyBounds() throws {
        let request = "POST /acknowledge HTTP/1.1\r\nHost: p\r\nContent-Length: 7\r\n\r\nrule=ab"
        let head = try #require(HTTPRequestParser.parse(Array(request.utf8)).value)
        #expect(head.contentLength == 7)
        #expect(String(request.utf8.dropFirst(head.headLength))! == "rule=ab")
        let lineFeeds = try #require(HTTPRequestParser.parse(Array("GET / HTTP/1.0\n\nbody".utf8)).value)
        #expect(lineFeeds.headLength == 16 && lineFeeds.contentLength == nil)
    }

    static func outcome(_ result: ParseResult<HTTPRequestHead>) -> HTTPCase.Outcome {
        switch result {
        case .complete(let head):
            return .head(host: head.host, port: head.hostPort, url: head.url, userAgent: head.userAgent)
        case .needMoreData:
            return .needMoreData
        case .malformed(let reason):
            return .malformed(reason)
        }
    }
}

extension HTTPCase.Outcome {
    /// Malformed outcomes match when the actual reason contains the expected text.
    func matches(_ expected: Self) -> Bool {
        switch (self, expected) {
        case (.malformed(let reason), .malformed(let wanted)): reason.contains(wanted)
        case (.needMoreData, .needMoreData): true
        case let (.head(h1, p1, u1, a1), .head(h2, p2, u2, a2)): h1 == h2 && p1 == p2 && u1 == u2 && a1 == a2
        default: false
        }
    }
}
