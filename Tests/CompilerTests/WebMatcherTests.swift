import Foundation
import Testing
@testable import Compiler

/// Web rules are evaluated in file order, then block order; the first
/// rule whose keys all match decides; a rule outside its time window is skipped as if absent;
/// nothing matching means `default_action`.
struct WebMatcherTests {
    /// Three files, so "first match" has to cross file boundaries; the middle file has a
    /// window (weekdays 08:00-18:00 UTC) and an AND of two keys.
    static let fixture = PolicyFixture([
        "rules.d/10-first.policy": """
            [system] lab-1: {
                address: 10.9.0.1
                tags: lab
            }
            [system] office-1: {
                address: 10.8.0.1
                tags: office
            }
            permit-mozilla: {
                match-domain: mozilla.org
                action: permit
            }
            deny-ozilla: {
                match-domain: ozilla.org, Example.COM
                action: deny
            }
            """,
        "rules.d/20-window.policy": """
            work-hours-video: {
                match-domain-list: lists/video.txt
                time-window: weekdays 08:00-18:00
                action: deny
                description: No video during work hours
            }
            lab-curl-only: {
                match-host-regex: ^api[.]
                match-user-agent: ^curl/
                action: permit
            }
            lab-api: {
                match-host-regex: ^api[.]
                match-source: lab
                action: warn
            }
            sni-only: {
                match-sni: tls-only.test
                action: aup
            }
            """,
        "rules.d/30-last.policy": """
            # Reached only when nothing above matched (or the window above is closed).
            video-fallback: {
                match-domain: video.test
                action: warn
            }
            paths: {
                match-uri-regex: ^http://[^/]+/admin(/|$)
                action: deny
            }
            """,
        "rules.d/lists/video.txt": "# video sites\nvideo.test\nclips.test\n",
    ], config: "[policy]\ndefault_action = \"deny\"\ntime_window_tz = \"UTC\"\n")

    struct Case: Sendable, CustomStringConvertible {
        var url: String
        var at: String = "2026-11-23T10:00:00Z"  // a Monday, inside the window
        var source: String? = nil
        var agent: String? = nil
        var action: WebAction
        var rule: String?
        var description: String { "\(url) at \(at) from \(source ?? "-") ua \(agent ?? "-")" }
    }

    static let cases: [Case] = [
        // First match across files; subdomains; whole labels only; case-insensitive.
        Case(url: "https://mozilla.org/", action: .permit, rule: "permit-mozilla"),
        Case(url: "https://www.MOZILLA.org/", action: .permit, rule: "permit-mozilla"),
        Case(url: "https://ozilla.org/", action: .deny, rule: "deny-ozilla"),
        Case(url: "https://a.b.ozilla.org/", action: .deny, rule: "deny-ozilla"),
        Case(url: "http://www.example.com./x", action: .deny, rule: "deny-ozilla"),
        Case(url: "https://notexample.com/", action: .deny, rule: nil),  // default_action
        // A window: inside it the first file's rule decides, outside it falls through to the next match.
        Case(url: "https://video.test/", action: .deny, rule: "work-hours-video"),
        Case(url: "https://www.video.test/", action: .deny, rule: "work-hours-video"),
        Case(url: "https://video.test/", at: "2026-11-23T18:00:00Z", action: .warn, rule: "video-fallback"),
        Case(url: "https://video.test/", at: "2026-11-22T10:00:00Z", action: .warn, rule: "video-fallback"),  // Sunday
        Case(url: "https://clips.test/", at: "2026-11-23T19:00:00Z", action: .deny, rule: nil),  // falls through to default
        Case(url: "https://clips.test/", at: "2026-11-23T17:59:59Z", action: .deny, rule: "work-hours-video"),
        // AND within a block: both keys or the block does not match.
        Case(url: "http://api.x.test/", agent: "curl/8.0", action: .permit, rule: "lab-curl-only"),
        Case(url: "http://api.x.test/", source: "10.9.0.1", agent: "Mozilla/5.0", action: .warn, rule: "lab-api"),
        Case(url: "http://api.x.test/", source: "10.8.0.1", agent: "Mozilla/5.0", action: .deny, rule: nil),
        Case(url: "https://api.x.test/", source: "10.9.0.1", action: .warn, rule: "lab-api"),  // TLS: no user agent
        // match-sni applies only to TLS.
        Case(url: "https://tls-only.test/", action: .aup, rule: "sni-only"),
        Case(url: "http://tls-only.test/", action: .deny, rule: nil),
        // URI regexes see the path of plain HTTP, only https://SNI/ of TLS.
        Case(url: "http://site.test/admin/users", action: .deny, rule: "paths"),
        Case(url: "http://site.test/administrator", action: .deny, rule: nil),
    ]

    @Test(arguments: cases)
    func firstMatchWins(_ c: Case) throws {
        let set = try Self.fixture.policySet()
        let matcher = WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction)
        var request = try WebRequest.fromURL(c.url, source: c.source.map(address)).request
        request.userAgent = c.agent
        let decision = matcher.decide(request, at: instant(c.at))
        #expect(decision.action == c.action)
        #expect(decision.rule == c.rule)
    }

    @Test func ruleOrderFollowsFilesThenBlocks() throws {
        let set = try Self.fixture.policySet()
        let names = WebMatcher(rules: set.webRules, defaultAction: .permit).rules.map(\.name)
        #expect(names == ["permit-mozilla", "deny-ozilla", "work-hours-video", "lab-curl-only", "lab-api",
                          "sni-only", "video-fallback", "paths"])
    }

    @Test func defaultActionPermitWhenUnset() throws {
        let fixture = PolicyFixture(["rules.d/10-a.policy": "only: {\n    match-domain: a.test\n    action: deny\n}\n"])
        let set = try fixture.policySet()
        let matcher = WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction)
        let decision = matcher.decide(try WebRequest.fromURL("https://b.test/").request, at: instant("2026-11-23T10:00:00Z"))
        #expect(decision.action == .permit)
        #expect(decision.rule == nil)
        #expect(decision.description == "permit default_action (no rule matched)")
    }

    /// The worker's cached windows answer as the matcher does, and stay valid exactly until
    /// the next window flip.
    @Test func openWindowsAgreeUntilTheNextFlip() throws {
        let set = try Self.fixture.policySet()
        let matcher = WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction)
        var cursor = instant("2026-11-22T00:00:00Z")
        var flips = 0
        while cursor < instant("2026-11-30T00:00:00Z") {
            let windows = matcher.openWindows(at: cursor)
            #expect(windows.isValid(at: cursor) && windows.validUntil > cursor)
            for probe in [cursor, cursor.addingTimeInterval(min(59, windows.validUntil.timeIntervalSince(cursor) - 1))] {
                for url in Self.cases.map(\.url) {
                    let request = try WebRequest.fromURL(url).request
                    #expect(matcher.decide(request, windows: windows).rule == matcher.decide(request, at: probe).rule, "\(url) at \(probe)")
                }
            }
            guard windows.validUntil < .distantFuture else { break }
            cursor = windows.validUntil
            flips += 1
        }
        #expect(flips >= 10, "the fixture's work-hours window flips twice a weekday")
    }

    @Test("a TLS request made from its SNI has the URL https://SNI/, as test-uri gives it", arguments: [
        ("a.example", "https://a.example/x?y", "https://a.example/"),
        ("www.b.example", "https://WWW.B.example./", "https://www.b.example/"),
        ("127.0.0.1", "https://127.0.0.1:8443/", "https://127.0.0.1/"),
        ("2001:db8::1", "https://[2001:db8::1]:443/p", "https://[2001:db8::1]/"),
    ])
    func requestFromServerName(_ name: String, _ typed: String, _ url: String) throws {
        let request = WebRequest(serverName: name)
        #expect(request.isTLS)
        #expect(request.url == url)
        var bytes: [UInt8] = []
        request.appendURL(to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == url)
        let fromTestURI = try WebRequest.fromURL(typed).request
        #expect(fromTestURI.host == name)
        #expect(fromTestURI.url == url)
        var changed = request
        changed.url = "https://other.example/"
        #expect(changed.url == "https://other.example/")
    }

    // MARK: A pattern PCRE2 gives up on

    /// Deny rules whose regexes backtrack catastrophically on hosts made of many a's (b's,
    /// c's), and a later permit that would catch a fall-through.
    static let trapPolicy = """
        [system] lab-1: {
            address: 10.9.0.1
            tags: lab
        }
        deny-trap: {
            match-host-regex: ^(a+)+[.]trap$
            action: deny
        }
        deny-trap-url-from-lab: {
            match-uri-regex: ^http://(c+)+[.]lab/$
            match-source: lab
            action: deny
        }
        deny-either: {
            match-host-regex: ^(b+)+[.]either$
            match-host-regex: [.]either[.]test$
            action: deny
        }
        permit-everything-after: {
            match-host-regex: .
            action: permit
        }
        """

    static let manyA = String(repeating: "a", count: 40), manyC = String(repeating: "c", count: 40)

    struct TrapCase: Sendable, CustomStringConvertible {
        var url: String
        var source: String? = nil
        var fail: Config.FailMode
        var action: WebAction
        var rule: String
        /// Whether PCRE2 gave up (the fail verdict decided).
        var error: Bool
        var description: String { "\(url) from \(source ?? "-") fail \(fail.rawValue)" }
    }

    static let trapCases: [TrapCase] = [
        // PCRE2 gives up on the deny rule: the fail verdict, never the later permit.
        TrapCase(url: "https://\(manyA).trap.x/", fail: .closed, action: .deny, rule: "deny-trap", error: true),
        TrapCase(url: "https://\(manyA).trap.x/", fail: .open, action: .permit, rule: "deny-trap", error: true),
        TrapCase(url: "http://\(manyA).trap.x/", fail: .closed, action: .deny, rule: "deny-trap", error: true),
        // The same rule matching or missing in a few steps decides as usual, in either mode.
        TrapCase(url: "https://aaaa.trap/", fail: .open, action: .deny, rule: "deny-trap", error: false),
        TrapCase(url: "https://aaaa.trap.x/", fail: .closed, action: .permit, rule: "permit-everything-after", error: false),
        // AND over keys: a key that does not match rules the rule out, whatever PCRE2 did with another.
        TrapCase(url: "http://\(manyC).lab.x/", source: "10.8.0.1", fail: .closed, action: .permit, rule: "permit-everything-after", error: false),
        TrapCase(url: "http://\(manyC).lab.x/", source: "10.9.0.1", fail: .closed, action: .deny, rule: "deny-trap-url-from-lab", error: true),
        // A list matches if any entry does, though PCRE2 gave up on another.
        TrapCase(url: "https://\(String(repeating: "b", count: 40)).either.test/", fail: .open, action: .deny, rule: "deny-either", error: false),
    ]

    @Test("a rule whose pattern PCRE2 gives up on gives the fail verdict, not a fall-through", arguments: trapCases)
    func matchErrorGivesTheFailVerdict(_ c: TrapCase) throws {
        let set = try PolicyFixture(policy: Self.trapPolicy).policySet()
        let matcher = WebMatcher(rules: set.webRules, defaultAction: .permit, fail: c.fail)
        let request = try WebRequest.fromURL(c.url, source: c.source.map(address)).request
        let decision = matcher.decide(request, at: instant("2026-11-23T10:00:00Z"))
        #expect(decision.action == c.action)
        #expect(decision.rule == c.rule)
        #expect((decision.matchError != nil) == c.error)
        if c.error {
            #expect(decision.matchError?.message == "match limit exceeded")
            #expect(decision.description.hasPrefix("\(c.action.rawValue) by [web] fail: rule '\(c.rule)' pattern ^"))
            #expect(decision.description.hasSuffix(" could not be matched: \(decision.matchError!)"))
        }
    }

    /// `test-uri` and `[expect]` build their matcher from the policy, `[web] fail` included.
    @Test(arguments: [Config.FailMode.open, .closed])
    func theFailVerdictFollowsTheConfig(_ fail: Config.FailMode) throws {
        let fixture = PolicyFixture(policy: Self.trapPolicy, config: "[policy]\ntime_window_tz = \"utc\"\n[web]\nfail = \"\(fail.rawValue)\"\n")
        let set = try fixture.policySet()
        #expect(set.config.webFail == fail)
        let matcher = WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction, fail: set.config.webFail)
        let decision = matcher.decide(WebRequest(serverName: "\(Self.manyA).trap.x"), at: instant("2026-11-23T10:00:00Z"))
        #expect(decision.action == (fail == .open ? .permit : .deny))
        #expect(decision.matchError != nil)
    }
}
