import Foundation
import Testing
@testable import Compiler
@testable import Enforcement

/// The portal's answers, request by request (no sockets).
struct PortalTests {
    static func portal(denyPage: Bool = true, defaultAction: WebAction = .permit) throws -> Portal {
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
            deny-short: {
                match-domain: bit.ly
                action: deny
                description: Access to URL <i>shortening</i> services is not permitted
            }
            """.write(toFile: directory + "/rules.d/10-web.policy", atomically: true, encoding: .utf8)
        let set = try #require(PolicyLoader.load(directory: directory).policySet)
        return Portal(webRules: set.webRules, acknowledgeFor: 600, denyPage: denyPage, defaultAction: defaultAction)
    }

    static func ask(_ request: String, from portal: Portal? = nil) throws -> (status: String, text: String, acknowledged: String?)? {
        guard let answer = try (portal ?? Self.portal()).answer(Array(request.utf8), now: Date(timeIntervalSince1970: 1_800_000_000)) else { return nil }
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
        // The block page: a deny rule's name and description (escaped), the URL; only for deny rules.
        ("GET /blocked?rule=deny-short&url=http%3A%2F%2Fbit.ly%2F3abc HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 200 OK",
         "<p>Access to URL &lt;i&gt;shortening&lt;/i&gt; services is not permitted</p>\n<p>You asked for <code>http://bit.ly/3abc</code> (rule <code>deny-short</code>).</p>"),
        ("GET /blocked?rule=deny-x HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 200 OK", "<p>This site is blocked by a rule.</p>"),
        ("GET /blocked?rule=deny-x&url=%22%3E%3Cscript%3E HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 200 OK", "<code>&quot;&gt;&lt;script&gt;</code>"),
        ("GET http://portal.example/blocked?rule=deny-x HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 200 OK", "<title>Access denied</title>"),
        ("GET /blocked?rule=warn-news HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 404 Not Found", "No deny rule"),
        ("GET /blocked?rule=%3Cscript%3E HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 404 Not Found", "No deny rule"),
        ("GET /blocked HTTP/1.1\r\nHost: p\r\n\r\n", "HTTP/1.1 404 Not Found", "No deny rule"),
        ("POST /blocked?rule=deny-x HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 404 Not Found", ""),
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

    @Test func theBlockPageHasNoButton() throws {
        let page = try #require(try Self.ask("GET /blocked?rule=deny-short&url=http%3A%2F%2Fbit.ly%2F HTTP/1.1\r\nHost: p\r\n\r\n"))
        #expect(page.status == "HTTP/1.1 200 OK")
        #expect(!page.text.contains("<form") && !page.text.contains("<button") && !page.text.contains("acknowledge"), "\(page.text)")
        let head = try #require(try Self.ask("HEAD /blocked?rule=deny-short HTTP/1.1\r\nHost: p\r\n\r\n"))
        #expect(head.status == "HTTP/1.1 200 OK" && head.text.hasSuffix("\r\n\r\n"))
        let deny = "rule=deny-short&url=http%3A%2F%2Fbit.ly%2F"
        let pressed = try #require(try Self.ask("POST /acknowledge HTTP/1.1\r\nHost: p\r\nContent-Length: \(deny.utf8.count)\r\n\r\n\(deny)"))
        #expect(pressed.status == "HTTP/1.1 404 Not Found" && pressed.acknowledged == nil, "a deny cannot be waived")
    }

    @Test("the block page follows deny_page and default_action", arguments: [
        (true, WebAction.permit, "GET /blocked?rule=deny-short", "HTTP/1.1 200 OK", "Access to URL"),
        (false, .permit, "GET /blocked?rule=deny-short", "HTTP/1.1 404 Not Found", "No deny rule"),
        (true, .deny, "GET /blocked?url=http%3A%2F%2Fany.example%2F", "HTTP/1.1 200 OK",
         "<p>No rule permits this site.</p>\n<p>You asked for <code>http://any.example/</code> (the default action).</p>"),
        (false, .deny, "GET /blocked?url=http%3A%2F%2Fany.example%2F", "HTTP/1.1 404 Not Found", ""),
        (true, .permit, "GET /blocked?url=http%3A%2F%2Fany.example%2F", "HTTP/1.1 404 Not Found", ""),
        (false, .permit, "GET /?rule=warn-news", "HTTP/1.1 200 OK", "I understand, continue"),
    ])
    func blockPageSettings(denyPage: Bool, defaultAction: WebAction, request: String, status: String, contains: String) throws {
        let portal = try Self.portal(denyPage: denyPage, defaultAction: defaultAction)
        let answer = try #require(try Self.ask(request + " HTTP/1.1\r\nHost: p\r\n\r\n", from: portal))
        #expect(answer.status == status)
        #expect(contains.isEmpty || answer.text.contains(contains), "\(answer.text)")
    }

    /// `default_action = "warn"` or `"aup"`: the worker redirects a request no rule matched
    /// without a rule name; the page says the default action decided, and its button records
    /// the acknowledgement under the empty name (which no rule has). It once answered 404.
    @Test("the default action's warn and aup pages, and their acknowledgement", arguments: [WebAction.warn, .aup, .permit])
    func theDefaultActionHasItsPage(defaultAction: WebAction) throws {
        let portal = try Self.portal(defaultAction: defaultAction)
        let page = try #require(try Self.ask("GET /?url=http%3A%2F%2Fany.example%2F HTTP/1.1\r\nHost: p\r\n\r\n", from: portal))
        let body = "rule=&url=http%3A%2F%2Fany.example%2F"
        let acknowledged = try #require(try Self.ask("POST /acknowledge HTTP/1.1\r\nHost: p\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)", from: portal))
        guard defaultAction != .permit else {
            #expect(page.status == "HTTP/1.1 404 Not Found" && acknowledged.acknowledged == nil, "no such page while the default permits")
            return
        }
        #expect(page.status == "HTTP/1.1 200 OK")
        #expect(page.text.contains("<p>You asked for <code>http://any.example/</code> (the default action).</p>"), "\(page.text)")
        #expect(page.text.contains("<input type=\"hidden\" name=\"rule\" value=\"\">"), "\(page.text)")
        #expect(page.text.contains(defaultAction == .aup ? "I accept the acceptable use policy" : "I understand, continue"))
        #expect(acknowledged.status == "HTTP/1.1 303 See Other" && acknowledged.acknowledged == Portal.defaultActionKey)
    }

    @Test(arguments: ["GET /?rule=warn-news HTTP/1.1\r\nHost: p\r\n", "POST /acknowledge HTTP/1.1\r\nHost: p\r\nContent-Length: 20\r\n\r\nrule=warn"])
    func anIncompleteRequestWaits(request: String) throws {
        #expect(try Self.ask(request) == nil)
    }
}
