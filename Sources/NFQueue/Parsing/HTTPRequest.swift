/// What the enforcer needs from the head of a plaintext HTTP/1.x request.
public struct HTTPRequestHead: Sendable, Hashable {
    /// The method token as sent (methods are case-sensitive).
    public var method: String
    /// The request-target as sent.
    public var target: String
    /// The version as sent, e.g. "HTTP/1.1".
    public var version: String
    /// The host the request is for, canonical: lowercased, surrounding whitespace
    /// trimmed, one trailing dot and any port removed, IPv6 literals without brackets.
    /// Taken from the request-target when it carries an authority (absolute-form, or
    /// CONNECT's authority-form), else from the Host header. nil only for an HTTP/1.0
    /// request without a usable Host header.
    public var host: String?
    /// The port given with `host`, if any (a default port written out is kept here).
    public var hostPort: UInt16?
    /// The User-Agent value with surrounding whitespace trimmed, if the header is present.
    public var userAgent: String?
    /// The target URI rebuilt as RFC 9112 §3.3 describes: scheme "http" unless an
    /// absolute-form target says otherwise, canonical `host`, the port unless it is
    /// the scheme's default, then path and query as sent ("/" when empty). When `host`
    /// is nil this is just the origin-form target, and the caller supplies the
    /// connection's destination address as the authority.
    public var url: String
    /// The body's length from a Content-Length header, if there is one (the portal reads
    /// its form body by it; the worker judges by the head alone).
    public var contentLength: Int?
    /// The bytes of the head, its ending empty line included: where a body starts.
    public var headLength: Int

    public init(method: String, target: String, version: String, host: String?, hostPort: UInt16?,
                userAgent: String?, url: String, contentLength: Int? = nil, headLength: Int = 0) {
        self.method = method
        self.target = target
        self.version = version
        self.host = host
        self.hostPort = hostPort
        self.userAgent = userAgent
        self.url = url
        self.contentLength = contentLength
        self.headLength = headLength
    }
}

/// Reads the head of an HTTP/1.x request from the first bytes of a TCP stream.
///
/// One canonical answer for every Host trick a client could play: header names are
/// case-insensitive, LF-only line ends are accepted like CRLF, whitespace around
/// values is trimmed, an absolute-form target wins over the Host header (RFC 9112
/// §3.2.2), and anything ambiguous — a second Host or User-Agent header, obs-fold,
/// whitespace before a colon, a bare CR, userinfo in the target, a Host value that is
/// not a plausible host — is `.malformed` so the caller applies its fail verdict.
/// Complete lines are judged as they arrive, so garbage fails early; otherwise the
/// answer is `.needMoreData` until the empty line that ends the head.
public enum HTTPRequestParser {
    /// Cap on the head, request line and terminating empty line included.
    public static let defaultMaxHeadLength = 16 * 1024
    /// Longer than any registered method; bounds how long non-HTTP input can look
    /// like the start of one.
    static let maxMethodLength = 32

    public static func parse(_ stream: some Collection<UInt8>,
                             maxHeadLength: Int = defaultMaxHeadLength) -> ParseResult<HTTPRequestHead> {
        let bytes = stream as? [UInt8] ?? Array(stream)
        do {
            return try parseHead(bytes, maxHeadLength: maxHeadLength)
        } catch {
            return .malformed(reason: error.reason)
        }
    }

    struct RequestLine {
        var method: String
        var target: ArraySlice<UInt8>
        var version: String
        var minorVersion: UInt8
    }

    /// The header fields the verdict depends on; all others are only syntax-checked.
    struct Fields {
        var host: ArraySlice<UInt8>?
        var userAgent: String?
        var contentLength: Int?
    }

    static func parseHead(_ bytes: [UInt8], maxHeadLength: Int) throws(MalformedInput) -> ParseResult<HTTPRequestHead> {
        let limit = min(bytes.count, max(0, maxHeadLength))
        var lineStart = 0
        var requestLine: RequestLine?
        var fields = Fields()

        while true {
            guard let lineFeed = bytes[lineStart..<limit].firstIndex(of: HTTPSyntax.lineFeed) else {
                if bytes.count >= maxHeadLength {
                    throw MalformedInput("request head exceeds \(maxHeadLength) bytes")
                }
                try checkPartialLine(bytes[lineStart...], isRequestLine: requestLine == nil)
                return .needMoreData(atLeast: bytes.last == HTTPSyntax.lineFeed
                    || bytes.suffix(2).elementsEqual([HTTPSyntax.lineFeed, HTTPSyntax.carriageReturn]) ? 1 : 2)
            }
            var lineEnd = lineFeed
            if lineEnd > lineStart, bytes[lineEnd - 1] == HTTPSyntax.carriageReturn { lineEnd -= 1 }
            let line = bytes[lineStart..<lineEnd]
            lineStart = lineFeed + 1
            // A CR that does not end a line is read differently by different servers.
            guard !line.contains(HTTPSyntax.carriageReturn) else { throw MalformedInput("bare CR in request head") }

            guard let request = requestLine else {
                // RFC 9112 §2.2: empty lines before the request-line are ignored.
                if !line.isEmpty { requestLine = try parseRequestLine(line) }
                continue
            }
            if line.isEmpty {
                var head = try buildHead(request, fields)
                head.headLength = lineStart
                return .complete(head)
            }
            try addField(line, to: &fields)
        }
    }

    /// Refuses a line still being received when no ending could make it valid.
    static func checkPartialLine(_ partial: ArraySlice<UInt8>, isRequestLine: Bool) throws(MalformedInput) {
        // A lone CR may yet become the CRLF of an empty line.
        guard let first = partial.first, !partial.elementsEqual([HTTPSyntax.carriageReturn]) else { return }
        if partial.dropLast().contains(HTTPSyntax.carriageReturn) {
            throw MalformedInput("bare CR in request head")
        }
        if isRequestLine {
            let method = partial.prefix { $0 != HTTPSyntax.space }
            if method.count > maxMethodLength {
                throw MalformedInput("method longer than \(maxMethodLength) bytes")
            }
            if method.isEmpty || !method.allSatisfy(HTTPSyntax.isTokenByte) {
                throw MalformedInput("request line does not start with a method token")
            }
        } else {
            if first == HTTPSyntax.space || first == HTTPSyntax.tab {
                throw MalformedInput("obsolete line folding in header section")
            }
            let name = partial.prefix { $0 != HTTPSyntax.colon }
            if !name.allSatisfy(HTTPSyntax.isTokenByte) {
                throw MalformedInput("invalid header field name")
            }
        }
    }

    /// request-line = method SP request-target SP HTTP-version, single spaces only.
    static func parseRequestLine(_ line: ArraySlice<UInt8>) throws(MalformedInput) -> RequestLine {
        let parts = line.split(separator: HTTPSyntax.space, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw MalformedInput("request line is not 'method SP target SP version'")
        }
        let method = parts[0], target = parts[1], version = parts[2]
        guard !method.isEmpty, method.count <= maxMethodLength, method.allSatisfy(HTTPSyntax.isTokenByte) else {
            throw MalformedInput("invalid method")
        }
        guard !target.isEmpty else { throw MalformedInput("empty request target") }
        // Targets are visible ASCII (non-ASCII must be percent-encoded); a fragment is
        // never sent, so '#' would only serve to confuse.
        guard target.allSatisfy({ (0x21...0x7e).contains($0) && $0 != UInt8(ascii: "#") }) else {
            throw MalformedInput("invalid byte in request target")
        }
        let prefix = Array("HTTP/1.".utf8)
        guard version.count == prefix.count + 1, version.starts(with: prefix),
              let minor = version.last, HTTPSyntax.isDigit(minor) else {
            throw MalformedInput("unsupported HTTP version '\(String(decoding: version.prefix(16), as: UTF8.self))'")
        }
        return RequestLine(method: String(decoding: method, as: UTF8.self), target: target,
                           version: String(decoding: version, as: UTF8.self),
                           minorVersion: minor - UInt8(ascii: "0"))
    }

    /// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5).
    static func addField(_ line: ArraySlice<UInt8>, to fields: inout Fields) throws(MalformedInput) {
        if let first = line.first, first == HTTPSyntax.space || first == HTTPSyntax.tab {
            throw MalformedInput("obsolete line folding in header section")
        }
        guard let colon = line.firstIndex(of: HTTPSyntax.colon) else {
            throw MalformedInput("header line without a colon")
        }
        let name = line[line.startIndex..<colon]
        // Also catches whitespace before the colon, which RFC 9112 §5.1 says to reject.
        guard !name.isEmpty, name.allSatisfy(HTTPSyntax.isTokenByte) else {
            throw MalformedInput("invalid header field name")
        }
        let value = HTTPSyntax.trimmingWhitespace(line[(colon + 1)...])
        guard !value.contains(where: HTTPSyntax.isControlInFieldValue) else {
            throw MalformedInput("control byte in value of header field '\(String(decoding: name, as: UTF8.self))'")
        }
        if HTTPSyntax.equalsIgnoringCase(name, "host") {
            guard fields.host == nil else { throw MalformedInput("duplicate Host header") }
            fields.host = value
        } else if HTTPSyntax.equalsIgnoringCase(name, "user-agent") {
            // Not a list field, so a second line has no single meaning either.
            guard fields.userAgent == nil else { throw MalformedInput("duplicate User-Agent header") }
            fields.userAgent = String(decoding: value, as: UTF8.self)
        } else if HTTPSyntax.equalsIgnoringCase(name, "content-length") {
            // Two lengths, or one that is not plain digits, is how requests are smuggled
            // past one reader to another (RFC 9112 §6.3).
            guard fields.contentLength == nil else { throw MalformedInput("duplicate Content-Length header") }
            guard !value.isEmpty, value.count <= 15, value.allSatisfy(HTTPSyntax.isDigit) else {
                throw MalformedInput("invalid Content-Length value")
            }
            fields.contentLength = value.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }
    }

    static func buildHead(_ request: RequestLine, _ fields: Fields) throws(MalformedInput) -> HTTPRequestHead {
        let target = request.target
        var scheme = "http"
        var pathAndQuery = ""
        /// The authority carried by the request-target itself, which wins over Host.
        var targetAuthority: Authority?

        if request.method == "CONNECT" {
            let authority = try parseAuthority(target, what: "CONNECT target")
            guard authority.port != nil else { throw MalformedInput("CONNECT target without a port") }
            targetAuthority = authority
        } else if target.first == UInt8(ascii: "/") {
            pathAndQuery = String(decoding: target, as: UTF8.self)
        } else if target.elementsEqual("*".utf8) {
            guard request.method == "OPTIONS" else { throw MalformedInput("asterisk-form target outside OPTIONS") }
        } else {
            let absolute = try parseAbsoluteForm(target)
            scheme = absolute.scheme
            targetAuthority = absolute.authority
            pathAndQuery = absolute.pathAndQuery
        }

        // The Host header is validated even when the target overrides it: RFC 9112
        // §3.2 makes an invalid Host value a bad request in every case.
        var hostAuthority: Authority?
        if let value = fields.host, !value.isEmpty {
            hostAuthority = try parseAuthority(value, what: "Host header")
        }
        if targetAuthority == nil, request.minorVersion >= 1 {
            if fields.host == nil { throw MalformedInput("missing Host header") }
            if hostAuthority == nil { throw MalformedInput("empty Host header") }
        }

        if pathAndQuery.isEmpty || pathAndQuery.first == "?" { pathAndQuery = "/" + pathAndQuery }
        let authority = targetAuthority ?? hostAuthority
        var url = pathAndQuery
        if let authority {
            let host = authority.host.utf8.contains(UInt8(ascii: ":")) ? "[\(authority.host)]" : authority.host
            let defaultPort: UInt16? = scheme == "http" ? 80 : scheme == "https" ? 443 : nil
            let port = authority.port.flatMap { $0 == defaultPort ? nil : ":\($0)" } ?? ""
            url = "\(scheme)://\(host)\(port)\(pathAndQuery)"
        }
        return HTTPRequestHead(method: request.method, target: String(decoding: target, as: UTF8.self),
                               version: request.version, host: authority?.host, hostPort: authority?.port,
                               userAgent: fields.userAgent, url: url, contentLength: fields.contentLength)
    }

    struct Authority: Equatable {
        var host: String
        var port: UInt16?
    }

    /// absolute-form = scheme "://" authority path-abempty [ "?" query ].
    static func parseAbsoluteForm(_ target: ArraySlice<UInt8>) throws(MalformedInput)
        -> (scheme: String, authority: Authority, pathAndQuery: String) {
        guard let colon = target.firstIndex(of: HTTPSyntax.colon) else {
            throw MalformedInput("unrecognised request target form")
        }
        let scheme = target[target.startIndex..<colon]
        guard let first = scheme.first, HTTPSyntax.isLetter(first), scheme.allSatisfy({
            HTTPSyntax.isLetter($0) || HTTPSyntax.isDigit($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-")
                || $0 == UInt8(ascii: ".")
        }) else {
            throw MalformedInput("invalid scheme in request target")
        }
        let afterScheme = target[(colon + 1)...]
        guard afterScheme.starts(with: "//".utf8) else {
            throw MalformedInput("absolute-form target without an authority")
        }
        let rest = afterScheme.dropFirst(2)
        let authorityEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
        let authorityBytes = rest[rest.startIndex..<authorityEnd]
        // "http://allowed.example@blocked.example/" names blocked.example; RFC 9110
        // §4.2.4 says to treat userinfo from an untrusted source as an error.
        guard !authorityBytes.contains(UInt8(ascii: "@")) else {
            throw MalformedInput("userinfo in request target")
        }
        let authority = try parseAuthority(authorityBytes, what: "request target authority")
        return (HTTPSyntax.lowercased(scheme), authority, String(decoding: rest[authorityEnd...], as: UTF8.self))
    }

    /// host [ ":" port ], where host is a plausible DNS name or IPv4 address, or an
    /// IPv6 literal in brackets; returned canonical (see `HTTPRequestHead.host`).
    static func parseAuthority(_ bytes: ArraySlice<UInt8>, what: String) throws(MalformedInput) -> Authority {
        guard !bytes.isEmpty else { throw MalformedInput("empty \(what)") }
        let host: String
        var portBytes: ArraySlice<UInt8>?
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else {
                throw MalformedInput("unterminated IPv6 literal in \(what)")
            }
            let literal = bytes[(bytes.startIndex + 1)..<close]
            guard (2...45).contains(literal.count), literal.contains(HTTPSyntax.colon), literal.allSatisfy({
                HTTPSyntax.isHexDigit($0) || $0 == HTTPSyntax.colon || $0 == UInt8(ascii: ".")
            }) else {
                throw MalformedInput("invalid IPv6 literal in \(what)")
            }
            host = HTTPSyntax.lowercased(literal)
            let after = bytes[(close + 1)...]
            if let first = after.first {
                guard first == HTTPSyntax.colon else { throw MalformedInput("junk after IPv6 literal in \(what)") }
                portBytes = after.dropFirst()
            }
        } else {
            var name = bytes
            if let colon = bytes.firstIndex(of: HTTPSyntax.colon) {
                name = bytes[bytes.startIndex..<colon]
                portBytes = bytes[(colon + 1)...]
            }
            guard name.allSatisfy(HostNameSyntax.isNameByte) else {
                throw MalformedInput("invalid byte in \(what) host")
            }
            if name.last == UInt8(ascii: ".") { name = name.dropLast() }
            guard name.last != UInt8(ascii: "."), HostNameSyntax.hasPlausibleLabels(name) else {
                throw MalformedInput("\(what) host is not a plausible DNS name")
            }
            host = HTTPSyntax.lowercased(name)
        }
        return Authority(host: host, port: try parsePort(portBytes, what: what))
    }

    /// port = *DIGIT; empty means absent. More than five digits is refused before
    /// any arithmetic, so the value cannot overflow.
    static func parsePort(_ digits: ArraySlice<UInt8>?, what: String) throws(MalformedInput) -> UInt16? {
        guard let digits, !digits.isEmpty else { return nil }
        guard digits.count <= 5, digits.allSatisfy(HTTPSyntax.isDigit) else {
            throw MalformedInput("invalid port in \(what)")
        }
        let value = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard let port = UInt16(exactly: value) else { throw MalformedInput("port \(value) out of range in \(what)") }
        return port
    }
}

/// Byte classes from RFC 9110/9112, on raw bytes so nothing is decoded before it is judged.
enum HTTPSyntax {
    static let tab: UInt8 = 0x09
    static let lineFeed: UInt8 = 0x0a
    static let carriageReturn: UInt8 = 0x0d
    static let space: UInt8 = 0x20
    static let colon = UInt8(ascii: ":")

    static func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
    static func isLetter(_ byte: UInt8) -> Bool { (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) }
    static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        if isDigit(byte) || isLetter(byte) { return true }
        return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }

    /// CTLs other than HTAB; obs-text (0x80–0xff) stays allowed in values.
    static func isControlInFieldValue(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != tab) || byte == 0x7f
    }

    static func trimmingWhitespace(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let isWhitespace = { (byte: UInt8) in byte == space || byte == tab }
        guard let first = bytes.firstIndex(where: { !isWhitespace($0) }),
              let last = bytes.lastIndex(where: { !isWhitespace($0) }) else { return bytes[bytes.endIndex...] }
        return bytes[first...last]
    }

    static func lowercased(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes.map { isLetter($0) && $0 < 0x61 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    static func equalsIgnoringCase(_ bytes: some Collection<UInt8>, _ lowercaseName: String) -> Bool {
        bytes.count == lowercaseName.utf8.count
            && zip(bytes, lowercaseName.utf8).allSatisfy { (isLetter($0) ? $0 | 0x20 : $0) == $1 }
    }
}
