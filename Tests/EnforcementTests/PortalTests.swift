import Foundation
import Testing
@testable import Compiler
@testable import Enforcement

/// The portal's answers, request by request (no sockets).
struct PortalTests {
    static func portal() throws -> Portal {
        let directory = NSTemporaryDirectory() + "enforcer-portal-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/rules.d", withIntermediateDirectories: true)
        try """
            warn-news: {
                match-domain: news.example
                action: warn
                description: News <b>sites</b> are for breaks
            }
            aup-forum: {
                match-domain: forum.example
                action: aup
            }
            deny-x: {
                match-domain: x.example
                action: deny
            }
            """.write(toFile: directory + "/rules.d/10-web.policy", atomically: true, encoding: .utf8)
        let set = try #require(PolicyLoader.load(directory: directory).policySet)
        return Portal(webRules: set.webRules, acknowledgeFor: 600)
    }

    static func ask(_ request: String) throws -> (status: String, text: String, acknowledged: String?)? {
        guard let answer = try portal().answer(Array(request.utf8), now: Date(timeIntervalSince1970: 1_800_000_000)) else { return nil }
        let text = String(decoding: answer.response, as: UTF8.self)
        return (text.components(separatedBy: "\r\n").first ?? "", text, answer.acknowledged)
    }

    @Test(arguments: [
        ("GET /?rule=warn-news&url=http%3A%2F%2Fnews.example%2F HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 200 OK", "News &lt;b&gt;sites&lt;/b&gt; are for breaks"),
        ("GET /?rule=warn-news HTTP/1.1\nHost: p\n\n", "HTTP/1.1 200 OK", "I understand, continue"),
        ("GET /?rule=aup-forum&url=x HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 200 OK", "I accept the acceptable use policy"),
        ("GET /?rule=deny-x HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 404 Not Found", "No warn or aup rule"),
        ("GET /?rule=%22%3E%3Cscript%3E HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 404 Not Found", ""),
        ("GET /?rule=warn-news&url=%22%3E%3Cscript%3E HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 200 OK", "value=\"&quot;&gt;&lt;script&gt;\""),
        ("GET /elsewhere HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 404 Not Found", ""),
        ("BREW / HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 404 Not Found", ""),
        ("garbage\r\n\r\n", "HTTP/1.1 400 Bad Request", ""),
        // Ambiguous heads are refused as the worker refuses them.
        ("GET /?rule=warn-news HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request", ""),
        ("GET /?rule=warn-news HTTP/1.1\r\nHost: p\r\nHost: q\r\n\r\n", "HTTP/1.1 400 Bad Request", ""),
        ("GET /?rule=warn-news HTTP/1.1\r\nHost: p\rX: y\r\n\r\n", "HTTP/1.1 400 Bad Request", ""),
        ("GET http://portal.example/?rule=warn-news HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 200 OK", "I understand, continue"),
        ("GET /?rule=warn-news HTTP/1.1\r\nHost: p\r\nX: " + String(repeating: "a", count: 17_000) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large", ""),
    ])
    func pages(request: String, status: String, contains: String) throws {
        let answer = try #require(try Self.ask(request))
        #expect(answer.status == status)
        #expect(contains.isEmpty || answer.text.contains(contains), "\(answer.text)")
        #expect(answer.acknowledged == nil)
        #expect(!answer.text.contains("<script>"))
    }

    @Test func theButtonAcknowledgesAndSendsTheVisitorOn() throws {
        let body = "rule=warn-news&url=http%3A%2F%2Fwww.news.example%2Ftoday"
        let answer = try #require(try Self.ask("POST /acknowledge HTTP/1.1\r\nHost: p\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"))
        #expect(answer.status == "HTTP/1.1 303 See Other")
        #expect(answer.text.contains("\r\nLocation: http://www.news.example/today\r\n"))
        #expect(answer.acknowledged == "warn-news")
        // Only http(s) URLs are followed; a rule that is not warn/aup cannot be acknowledged.
        let odd = "rule=warn-news&url=javascript%3Aalert(1)"
        let noLocation = try #require(try Self.ask("POST /acknowledge HTTP/1.1\r\nHost: p\r\nContent-Length: \(odd.utf8.count)\r\n\r\n\(odd)"))
        #expect(!noLocation.text.contains("Location:") && noLocation.acknowledged == "warn-news")
        let deny = "rule=deny-x"
        #expect(try Self.ask("POST /acknowledge HTTP/1.1\r\nHost: p\r\nContent-Length: \(deny.utf8.count)\r\n\r\n\(deny)")?.acknowledged == nil)
    }

    @Test(arguments: ["GET /?rule=warn-news HTTP/1.1\r\nHost: p\r\n", "POST /acknowledge HTTP/1.1\r\nHost: p\r\nContent-Length: 20\r\n\r\nrule=warn"])
    func anIncompleteRequestWaits(request: String) throws {
        #expect(try Self.ask(request) == nil)
    }
}
