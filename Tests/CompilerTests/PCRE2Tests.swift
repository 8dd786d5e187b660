import CPCRE2
import Testing
@testable import Compiler

@Suite struct PCRE2Tests {
    // MARK: Compile errors carry PCRE2's own message and a character offset

    @Test(arguments: [
        ("a(b", "missing closing parenthesis", 3),
        ("[ab", "missing terminating ] for character class", 3),
        ("*a", "quantifier does not follow a repeatable item", 0),
        ("a{3,1}", "numbers out of order in {} quantifier", 5),
        ("ab)", "unmatched closing parenthesis", 2),
        ("(?<n>a)(?<n>b)", "two named subpatterns have the same name (PCRE2_DUPNAMES not set)", 12),
        ("ééé(", "missing closing parenthesis", 4),  // offset counts characters, not bytes
    ])
    func compileError(pattern: String, message: String, offset: Int) {
        #expect(throws: PatternError(message, at: offset)) { try Pattern(pattern) }
    }

    @Test func errorDescriptionAndValueError() {
        do {
            _ = try Pattern("a(b")
            Issue.record("compiled")
        } catch {
            #expect(error.description == "missing closing parenthesis at offset 3")
            #expect(error.valueError == ValueError("missing closing parenthesis", at: 3))
        }
    }

    @Test func keepsSourceAndOptions() throws {
        let pattern = try Pattern("^a+$", caseless: true)
        #expect(pattern.source == "^a+$")
        #expect(pattern.caseless)
    }

    @Test func jitCompiled() throws {
        // Debian's libpcre2 has the JIT on these architectures.
        #if arch(x86_64) || arch(arm64)
        #expect(try Pattern("^(https?:\\/\\/)?[^\\/]+[.]ch").isJITCompiled)
        #endif
    }

    // MARK: Matching

    @Test(arguments: [
        ("EXAMPLE.com", false, false),
        ("EXAMPLE.com", true, true),
        ("ÉTÉ", false, false),
        ("ÉTÉ", true, true),  // UTF mode: caseless applies beyond ASCII
        ("example.com", false, true),
    ])
    func caseless(subject: String, caseless: Bool, expected: Bool) throws {
        let pattern = try Pattern("^(example|été)", caseless: caseless)
        #expect(pattern.matches(subject) == expected)
    }

    /// The pattern of `allow-swissdomains` in examples/enforcegate, an EnforceGate rule file.
    static let swissDomains = "^(https?:\\/\\/)?[^\\/]+[.]ch"

    @Test(arguments: [
        ("https://www.admin.ch/", true),
        ("http://example.ch", true),
        ("example.ch/path?q=1", true),
        ("sub.domain.example.ch:8443/", true),
        ("https://example.chat/", true),  // no end anchor: ".ch" as a prefix of the TLD
        ("https://example.com/page.ch", false),  // ".ch" only after the first "/"
        ("https://example.com/?next=evil.ch", false),
        ("ftp://example.ch", false),  // "ftp:" is not followed by ".ch" before a "/"
        ("https://.ch", false),  // something must precede ".ch"
        ("https://ch", false),
        ("", false),
    ])
    func swissDomainsRegex(url: String, expected: Bool) throws {
        let pattern = try Pattern(Self.swissDomains)
        #expect(pattern.matches(url) == expected)
        let matcher = PatternMatcher()
        #expect(matcher.matches(pattern, Array(url.utf8)) == expected)
    }

    @Test func matcherReuseAcrossPatternsAndSubjectKinds() throws {
        let ch = try Pattern(Self.swissDomains)
        let agent = try Pattern("curl/[0-9]+", caseless: true)
        let empty = try Pattern("")
        let matcher = PatternMatcher()
        for _ in 0 ..< 1000 {
            #expect(matcher.matches(ch, "https://www.admin.ch/"))
            #expect(!matcher.matches(ch, "https://www.admin.de/"))
            #expect(matcher.matches(agent, "User-Agent: CURL/8.1".dropFirst(12)))  // Substring
            #expect(!matcher.matches(agent, Array("Wget/1.21".utf8)))
            let spanMatched = matcher.matches(agent, "curl/7".utf8.span)  // #expect cannot hold a Span
            #expect(spanMatched)
            #expect(matcher.matches(agent, "xcurl/7y".utf8.dropFirst()))  // Substring.UTF8View-like slice
            #expect(matcher.matches(empty, ""))
            #expect(matcher.matches(empty, [UInt8]()))
            #expect(!matcher.matches(ch, [UInt8]()))
        }
    }

    @Test func invalidUTF8SubjectStillMatches() throws {
        // Bytes off the wire need not be UTF-8; junk must not make a blocking pattern miss.
        let pattern = try Pattern("[.]ch(/|$)")
        let matcher = PatternMatcher()
        #expect(matcher.matches(pattern, [0xFF, 0xC3] + Array("evil.ch/".utf8)))
        #expect(!matcher.matches(pattern, [0xFF, 0xC3] + Array("evil.de/".utf8)))
    }

    @Test func runawayBacktrackingIsNotAMatchNorACrash() throws {
        // The inline limit makes PCRE2 give up (PCRE2_ERROR_MATCHLIMIT) in microseconds.
        let pattern = try Pattern("(*LIMIT_MATCH=10000)^(a+)+$")
        let subject = String(repeating: "a", count: 40) + "b"
        #expect(!pattern.matches(subject))
        #expect(pattern.match(subject) == .error(MatchError(code: PCRE2_ERROR_MATCHLIMIT, message: "match limit exceeded")))
    }

    // MARK: Three outcomes: a match, no match, or PCRE2 giving up

    struct OutcomeCase: Sendable, CustomTestStringConvertible {
        let pattern: String
        let subject: String
        /// The matcher's limit; nil for `PatternMatcher.defaultMatchLimit`.
        var matchLimit: UInt32? = nil
        /// nil: PCRE2 gives up with PCRE2_ERROR_MATCHLIMIT.
        let matches: Bool?
        var testDescription: String {
            "\(pattern) on \(subject.count > 24 ? "\(subject.prefix(12))…(\(subject.count))" : subject)\(matchLimit.map { " limit \($0)" } ?? "")"
        }
    }

    static let a40b = String(repeating: "a", count: 40) + "b"

    static let outcomes: [OutcomeCase] = [
        // Nested quantifiers over a subject that fails at its end: 2^40 ways to split the a's.
        OutcomeCase(pattern: "(a+)+$", subject: a40b, matches: nil),
        OutcomeCase(pattern: "^(a|aa)+$", subject: String(repeating: "a", count: 80) + "b", matches: nil),
        // A "y" in the subject, or PCRE2 sees at once that the required "y" is missing.
        OutcomeCase(pattern: "(x+x+)+y", subject: String(repeating: "x", count: 40) + "zy", matches: nil),
        OutcomeCase(pattern: "^(\\w+\\s?)*$", subject: String(repeating: "word ", count: 12) + "!", matches: nil),
        // A URL rule written with the same mistake, against a URL made to trip it.
        OutcomeCase(pattern: "^https?://([a-z0-9]+[.]?)+[.]example/", subject: "https://" + String(repeating: "a", count: 40) + ".example", matches: nil),
        // The same patterns answer plainly where they need few steps.
        OutcomeCase(pattern: "(a+)+$", subject: "aaaa", matches: true),
        OutcomeCase(pattern: "(a+)+$", subject: "b", matches: false),
        OutcomeCase(pattern: "^https?://([a-z0-9]+[.]?)+[.]example/", subject: "https://www.example/", matches: true),
        // 16 a's: about 2^16 steps, under the default limit, over a limit of 1,000.
        OutcomeCase(pattern: "(a+)+$", subject: String(repeating: "a", count: 16) + "b", matches: false),
        OutcomeCase(pattern: "(a+)+$", subject: String(repeating: "a", count: 16) + "b", matchLimit: 1000, matches: nil),
        // An inline limit lowers the matcher's.
        OutcomeCase(pattern: "(*LIMIT_MATCH=1000)(a+)+$", subject: String(repeating: "a", count: 16) + "b", matches: nil),
    ]

    @Test("match, no match, or the match-limit error", arguments: outcomes)
    func outcome(_ c: OutcomeCase) throws {
        let pattern = try Pattern(c.pattern)
        let matcher = c.matchLimit.map { PatternMatcher(matchLimit: $0) } ?? PatternMatcher()
        let expected: MatchOutcome = switch c.matches {
        case true?: .match
        case false?: .noMatch
        case nil: .error(MatchError(code: PCRE2_ERROR_MATCHLIMIT, message: "match limit exceeded"))
        }
        #expect(matcher.match(pattern, c.subject) == expected)
        #expect(matcher.match(pattern, Array(c.subject.utf8)) == expected)
        let spanOutcome = matcher.match(pattern, c.subject.utf8.span)  // #expect cannot hold a Span
        #expect(spanOutcome == expected)
        // The yes/no form reads an error as "not a match".
        #expect(matcher.matches(pattern, c.subject) == (c.matches == true))
    }

    /// A subject that would nest a group 100,000 deep: past the JIT's small stack, the
    /// interpreter stops at the depth or heap limit with an error (the `[web] fail`
    /// verdict), where PCRE2's defaults would let it allocate far more before answering.
    @Test func deepNestingStopsAtTheDepthOrHeapLimit() throws {
        let pattern = try Pattern("^(a|b)*$")
        let outcome = PatternMatcher().match(pattern, String(repeating: "a", count: 100_000))
        guard case .error(let error) = outcome else {
            Issue.record("a 100,000-deep match answered \(outcome)")
            return
        }
        #expect([PCRE2_ERROR_DEPTHLIMIT, PCRE2_ERROR_HEAPLIMIT].contains(error.code), "\(error)")
        // Shallow subjects still answer.
        #expect(PatternMatcher().match(pattern, String(repeating: "ab", count: 500)) == .match)
    }

    @Test func aMatchErrorNamesPCRE2sCodeAndText() {
        let error = MatchError(code: PCRE2_ERROR_MATCHLIMIT, message: "match limit exceeded")
        #expect(error.description == "match limit exceeded (PCRE2 error \(PCRE2_ERROR_MATCHLIMIT))")
    }

    @Test func sharedPatternAcrossThreads() async throws {
        let pattern = try Pattern(Self.swissDomains)
        let hits = await withTaskGroup(of: Int.self) { group in
            for worker in 0 ..< 8 {
                group.addTask {
                    let matcher = PatternMatcher()  // one per worker
                    var hits = 0
                    for i in 0 ..< 2000 where matcher.matches(pattern, "https://host\(worker)-\(i).\(i % 2 == 0 ? "ch" : "de")/") {
                        hits += 1
                    }
                    return hits
                }
            }
            return await group.reduce(0, +)
        }
        #expect(hits == 8 * 1000)
    }
}
