import Foundation
import Testing
@testable import Compiler

@Suite struct DomainSetTests {
    static let list = DomainSet([
        "example.com", "ozilla.org", "*.wild.example.net", "ch", "Mixed.Case.ORG",
        "trailing.dot.io.", "10.0.0.1", "under_score.test", "xn--bcher-kva.de",
        "a.b.c.d.e.f.g.h.i.j.deep",
    ])

    // MARK: Matching

    @Test(arguments: [
        ("example.com", "example.com"),
        ("www.example.com", "example.com"),
        ("a.b.c.example.com", "example.com"),
        ("WWW.Example.COM", "example.com"),
        ("www.example.com.", "example.com"),  // one trailing dot is ignored
        ("www.example.com..", nil),
        ("badexample.com", nil),  // whole labels only
        ("example.com.evil.net", nil),
        ("com", nil),
        ("ozilla.org", "ozilla.org"),
        ("www.ozilla.org", "ozilla.org"),
        ("mozilla.org", nil),
        ("www.mozilla.org", nil),
        ("wild.example.net", "wild.example.net"),  // "*.x" means the same as "x"
        ("a.wild.example.net", "wild.example.net"),
        ("ch", "ch"),  // a TLD entry covers everything under it
        ("x.ch", "ch"),
        ("WWW.ADMIN.CH", "ch"),
        ("x.chat", nil),
        ("mixed.case.org", "mixed.case.org"),
        ("deep.MIXED.case.org", "mixed.case.org"),
        ("trailing.dot.io", "trailing.dot.io"),
        ("under_score.test", "under_score.test"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("10.0.0.1", "10.0.0.1"),  // IP literals: verbatim only
        ("110.0.0.1", nil),
        ("1.10.0.0.1", nil),
        ("::1", nil),
        ("[::1]", nil),
        ("", nil),
        (".", nil),
        ("..", nil),
        (".example.com", "example.com"),
        ("1.2.3.4.5.6.7.8.9.10.11.12.www.example.com", "example.com"),  // more than one batch of parents
        ("x.a.b.c.d.e.f.g.h.i.j.deep", "a.b.c.d.e.f.g.h.i.j.deep"),  // found in the second batch
        ("b.c.d.e.f.g.h.i.j.deep", nil),
    ] as [(String, String?)])
    func match(host: String, expected: String?) {
        #expect(Self.list.match(host) == expected)
        #expect(Self.list.contains(domainOrParentOf: host) == (expected != nil))
        let bytes = Array(host.utf8)
        let fromBytes = Self.list.match(bytes.span)  // #expect cannot hold a Span
        #expect(fromBytes == expected)
        #expect(Self.list.match("<\(host)>".dropFirst().dropLast()) == expected)  // Substring
    }

    @Test(arguments: [
        ("1.2.3.4", nil),  // a numeric last label is an IPv4 literal, never a subdomain
        ("3.4", "3.4"),
        ("5.6.7.8", "5.6.7.8"),
        ("host.3.4", nil),
    ] as [(String, String?)])
    func ipLiterals(host: String, expected: String?) {
        #expect(DomainSet(["3.4", "0.1", "5.6.7.8"]).match(host) == expected)
    }

    @Test func broadestEntryIsReported() {
        let set = DomainSet(["www.example.com", "example.com", "a.www.example.com"])
        #expect(set.match("x.a.www.example.com") == "example.com")
    }

    @Test func normalisesAndDeduplicates() {
        let set = DomainSet(["a.com", "A.COM", "*.a.com", "a.com.", " a.com\t", "", "*.", "b.com"])
        #expect(set.count == 2)
        #expect(DomainSet().isEmpty)
        #expect(!DomainSet().contains(domainOrParentOf: "example.com"))
    }

    @Test func agreesWithNaiveSuffixSearch() {
        var generator = SystemRandomNumberGenerator()
        let labels = ["a", "b", "www", "mail", "cdn", "x1", "ads", "api"]
        func name(_ parts: Int) -> String {
            (0 ..< parts).map { _ in labels.randomElement(using: &generator)! }.joined(separator: ".")
                + [".com", ".org", ".ch"].randomElement(using: &generator)!
        }
        let entries = (0 ..< 5000).map { _ in name(Int.random(in: 1 ... 3, using: &generator)) }
        let set = DomainSet(entries)
        let reference = Set(entries)
        #expect(set.count == reference.count)
        for _ in 0 ..< 10000 {
            let host = name(Int.random(in: 1 ... 5, using: &generator))
            let labels = host.split(separator: ".")
            let parents = (0 ..< labels.count).map { labels[$0...].joined(separator: ".") }
            #expect(set.contains(domainOrParentOf: host) == parents.contains(where: reference.contains), "\(host)")
        }
    }

    // MARK: List files

    @Test(arguments: [
        ("exa mple.com", 1, 4, "bad domain 'exa mple.com': whitespace not allowed (only letters, digits, '-', '_' and '.')"),
        ("ok.com\n\na..b", 3, 3, "bad domain 'a..b': empty label"),
        (".example.com", 1, 1, "bad domain '.example.com': empty label"),
        ("example.com..", 1, 13, "bad domain 'example.com..': empty label"),
        ("  *.", 1, 5, "bad domain '*.': nothing after '*.'"),
        ("*.x*.com", 1, 4, "bad domain '*.x*.com': '*' is only allowed as a leading '*.'"),
        ("a.*.com", 1, 3, "bad domain 'a.*.com': '*' is only allowed as a leading '*.'"),
        ("exam!ple.com # shop", 1, 5, "bad domain 'exam!ple.com': character '!' not allowed (only letters, digits, '-', '_' and '.')"),
        ("http://x.com", 1, 5, "bad domain 'http://x.com': character ':' not allowed (only letters, digits, '-', '_' and '.')"),
        ("b\u{FC}cher.de", 1, 2, "bad domain 'b\u{FC}cher.de': non-ASCII character; write internationalised names in their 'xn--' form"),
        ("a.com\r\nb.com\r\n  bad name\r\n", 3, 6, "bad domain 'bad name': whitespace not allowed (only letters, digits, '-', '_' and '.')"),
        ("x." + String(repeating: "a", count: 64) + ".com", 1, 3, "bad domain 'x.\(String(repeating: "a", count: 64)).com': label longer than 63 characters"),
        (Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".") + ".x", 1, 1, "bad domain '\(Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".")).x': name longer than 253 characters"),
    ])
    func badEntry(text: String, line: Int, column: Int, message: String) {
        #expect(throws: DomainListError(path: "list.txt", line: line, column: column, message: message)) {
            try DomainSet.parse(text, path: "list.txt")
        }
    }

    @Test(arguments: [
        String(repeating: "a", count: 63) + ".com",  // longest label
        String(Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".").dropLast(2)),  // 253 characters
        "*.example.com", "example.com.", "-x_.y-", "EXAMPLE.COM",
    ])
    func goodEntry(text: String) throws {
        #expect(try DomainSet.parse(text, path: "list.txt").count == 1)
    }

    @Test func errorDescriptionAndDiagnostic() {
        let error = DomainListError(path: "/etc/enforcer/ads.txt", line: 3, column: 4, message: "bad domain 'x y'")
        #expect(error.description == "/etc/enforcer/ads.txt:3:4: error: bad domain 'x y'")
        #expect(error.diagnostic.description == "/etc/enforcer/ads.txt:3:4: error: bad domain 'x y'")
    }

    @Test func loadsFileWithCommentsBlankLinesAndCRLF() throws {
        let text = "\u{FEFF}# Ads and trackers\r\n\r\nads.example.com\r\n   \r\nADS.Example.com\r\n\t*.Tracker.NET  # inline comment\r\n# ozilla.org\r\nozilla.org.\r\nlast.ch"
        let path = try temporaryFile(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let set = try DomainSet.load(contentsOf: path)
        #expect(set.count == 4)
        #expect(set.match("x.ads.example.com") == "ads.example.com")
        #expect(set.match("cdn.tracker.net") == "tracker.net")
        #expect(set.match("ozilla.org") == "ozilla.org")
        #expect(set.match("mozilla.org") == nil)
        #expect(set.match("last.ch") == "last.ch")  // final line without a newline
        #expect(set.match("example.com") == nil)
    }

    @Test func linesSpanningReadChunks() throws {
        // Well over one 64 KiB read, so lines straddle chunk boundaries.
        var lines = (0 ..< 20000).map { "host\($0).example.org" }
        lines[17001] = "host 17001.example.org"
        let path = try temporaryFile(lines.joined(separator: "\n"))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: DomainListError(path: path, line: 17002, column: 5,
                                        message: "bad domain 'host 17001.example.org': whitespace not allowed (only letters, digits, '-', '_' and '.')")) {
            try DomainSet.load(contentsOf: path)
        }
        lines[17001] = "host17001.example.org"
        let goodPath = try temporaryFile(lines.joined(separator: "\n") + "\n")
        defer { try? FileManager.default.removeItem(atPath: goodPath) }
        let set = try DomainSet.load(contentsOf: goodPath)
        #expect(set.count == 20000)
        #expect(lines.allSatisfy { set.match("www." + $0) == $0 })
    }

    @Test(arguments: [
        ("/nonexistent/enforcer/list.txt", "cannot read domain list /nonexistent/enforcer/list.txt: No such file or directory (ENOENT)"),
        ("/", "cannot read domain list /: Is a directory (EISDIR)"),
    ])
    func unreadableFile(path: String, message: String) {
        #expect(throws: DomainListError(path: path, line: 0, column: 0, message: message)) {
            try DomainSet.load(contentsOf: path)
        }
        #expect(DomainListError(path: path, line: 0, column: 0, message: message).description == "\(path): error: \(message)")
    }

    private func temporaryFile(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("domains-\(UUID().uuidString).txt")
        try Data(text.utf8).write(to: url)
        return url.path
    }
}
