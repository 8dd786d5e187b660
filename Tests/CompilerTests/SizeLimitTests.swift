import Foundation
import Testing
@testable import Compiler

/// Policy files, the policy directory, domain lists and lines have size limits
/// (`SourceLimits`): what is over one is refused with a diagnostic that gives the size, the
/// limit and what to do, and a file refused by its size is never read. Oversized files here
/// are sparse (a size without data), so they cost no disk, and reading one would show as a
/// different diagnostic (zeros are one long line).
struct SizeLimitTests {
    static let valid = "[system] a: {\n    address: 10.0.0.1\n    tags: x\n}\n"

    /// A policy directory with `files`, plus sparse files of the given sizes.
    private func directory(_ files: [String: String], sparse: [String: Int] = [:]) -> PolicyFixture {
        let fixture = PolicyFixture(files)
        for (name, size) in sparse {
            let path = fixture.path + "/" + name
            try! FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: path, contents: nil)
            #expect(truncate(path, off_t(size)) == 0)
        }
        return fixture
    }

    private func errors(_ loaded: PolicyLoader.Loaded) -> [String] {
        loaded.diagnostics.filter { $0.severity == .error }.map(\.description)
    }

    /// Names the refused file would define are not reported unknown where they are used.
    @Test func policyFileOverTheLimitIsRefusedUnread() {
        let size = SourceLimits.policyFileBytes + 1
        let uses = "[policy] p: {\n    senders: x\n    receivers: defined-in-big\n    allow: any\n}\n"
        let fixture = directory(["rules.d/10-a.policy": Self.valid, "rules.d/30-uses.policy": uses], sparse: ["rules.d/20-big.policy": size])
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        let file = fixture.path + "/rules.d/20-big.policy"
        let loaded = fixture.load()
        #expect(loaded.policySet == nil)
        #expect(errors(loaded) == [
            "\(file):1:1: error: \(file) is \(SourceLimits.text(bytes: size)), more than the limit of "
                + "\(SourceLimits.text(bytes: SourceLimits.policyFileBytes)) for a policy file: split it into several files in rules.d/",
        ])
    }

    @Test func enforcerConfOverTheLimitIsRefusedUnread() {
        let size = SourceLimits.policyFileBytes + 1
        let fixture = directory(["rules.d/10-a.policy": Self.valid], sparse: ["enforcer.conf": size])
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        let file = fixture.path + "/enforcer.conf"
        let expected = "\(file):1:1: error: \(file) is \(SourceLimits.text(bytes: size)), more than the limit of "
            + "\(SourceLimits.text(bytes: SourceLimits.policyFileBytes)) for a policy file: enforcer.conf holds settings only; is this the right file?"
        #expect(errors(fixture.load()) == [expected])
        // What reads enforcer.conf alone (flush, confirm, status) refuses it the same way.
        #expect(PolicyLoader.configuration(directory: fixture.path).1.map(\.description) == [expected])
    }

    /// Files each within the limit, together over the directory's: refused before any is read.
    @Test func directoryOverItsTotalIsRefusedBeforeAnyFileIsRead() {
        let count = SourceLimits.policyDirectoryBytes / SourceLimits.policyFileBytes + 1
        var sparse: [String: Int] = [:]
        for index in 0..<count { sparse["rules.d/\(10 + index)-part.policy"] = SourceLimits.policyFileBytes }
        let fixture = directory([:], sparse: sparse)
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        let total = count * SourceLimits.policyFileBytes
        #expect(errors(fixture.load()) == [
            "\(fixture.path):1:1: error: the policy files in \(fixture.path) are \(SourceLimits.text(bytes: total)) together, more than the limit of "
                + "\(SourceLimits.text(bytes: SourceLimits.policyDirectoryBytes)) for a policy directory: write runs of addresses as CIDR blocks, "
                + "and long lists of domains as match-domain-list files",
        ])
    }

    @Test func lineAtTheLimitIsReadAndOneByteMoreIsRefused() {
        let comment = "# " + String(repeating: "x", count: SourceLimits.lineBytes - 2)
        let fits = PolicyFixture(["rules.d/10-a.policy": Self.valid + comment + "\n"])
        defer { try? FileManager.default.removeItem(atPath: fits.path) }
        #expect(errors(fits.load()) == [])

        let fixture = PolicyFixture(["rules.d/10-a.policy": Self.valid + comment + "x\n" + Self.valid])
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        let file = fixture.path + "/rules.d/10-a.policy"
        #expect(errors(fixture.load()) == [
            "\(file):5:1: error: line 5 is \(SourceLimits.text(bytes: SourceLimits.lineBytes + 1)) long, more than the limit of "
                + "\(SourceLimits.text(bytes: SourceLimits.lineBytes)) for a line: split it (a long 'address:', 'tags:' or 'match-' list over several lines of the same key)",
        ])
    }

    /// The last line, without a newline, counts too.
    @Test func lastLineWithoutANewlineIsMeasured() {
        let fixture = PolicyFixture(["rules.d/10-a.policy": Self.valid + "# " + String(repeating: "y", count: SourceLimits.lineBytes)])
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        #expect(errors(fixture.load()).map { $0.contains(":5:1: error: line 5 is ") } == [true])
    }

    private static let rule = "r: {\n    match-domain-list: lists/big.txt\n    action: deny\n}\n"

    @Test func domainListOverTheLimitIsRefusedUnread() {
        let size = SourceLimits.listFileBytes + 1
        let fixture = directory(["rules.d/10-a.policy": Self.rule], sparse: ["rules.d/lists/big.txt": size])
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        let policy = fixture.path + "/rules.d/10-a.policy", list = fixture.path + "/rules.d/lists/big.txt"
        #expect(errors(fixture.load()) == [
            "\(policy):2:24: error: domain list \(list) is \(SourceLimits.text(bytes: size)), more than the limit of "
                + "\(SourceLimits.text(bytes: SourceLimits.listFileBytes)) for a list: split it into several lists (a rule may name several: 'match-domain-list: a.txt, b.txt')",
        ])
    }

    /// A line over the limit in a list, however the reads split it.
    @Test(arguments: [SourceLimits.lineBytes + 1, 3 * SourceLimits.lineBytes])
    func domainListLineOverTheLimit(length: Int) {
        let fixture = PolicyFixture([
            "rules.d/10-a.policy": Self.rule,
            "rules.d/lists/big.txt": "example.com\n" + String(repeating: "a", count: length) + "\nexample.org\n",
        ])
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        let list = fixture.path + "/rules.d/lists/big.txt"
        let rendered = fixture.load().diagnostics.flatMap { [$0.description] }
        #expect(rendered == [
            "\(list):2:1: error: line 2 is longer than \(SourceLimits.text(bytes: SourceLimits.lineBytes)), the limit for a line: put one domain on each line\n"
                + "\(fixture.path)/rules.d/10-a.policy:2:24: note: list named here",
        ])
    }

    @Test func domainListLineAtTheLimitIsRead() throws {
        // A comment fills the line: no domain is that long.
        let fixture = PolicyFixture([
            "rules.d/10-a.policy": Self.rule,
            "rules.d/lists/big.txt": "example.com\n#" + String(repeating: "a", count: SourceLimits.lineBytes - 1) + "\nexample.org\n",
        ])
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        let set = try fixture.policySet()
        #expect(set.webRules.first?.domains.first?.count == 2)
    }

    /// Unreadable policy files name the path and the errno; root reads past file modes, so
    /// these are failures no permission bit can lift.
    @Test func unreadablePolicyFilesNameThePathAndTheErrno() throws {
        let fixture = PolicyFixture(["rules.d/10-a.policy": Self.valid])
        defer { try? FileManager.default.removeItem(atPath: fixture.path) }
        let rules = fixture.path + "/rules.d"
        try FileManager.default.createDirectory(atPath: rules + "/20-folder.policy", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: rules + "/30-gone.policy", withDestinationPath: rules + "/nowhere")
        #expect(mkfifo(rules + "/40-pipe.policy", 0o644) == 0)
        #expect(errors(fixture.load()) == [
            "\(rules)/20-folder.policy:1:1: error: cannot read \(rules)/20-folder.policy: Is a directory (EISDIR)",
            "\(rules)/30-gone.policy:1:1: error: cannot read \(rules)/30-gone.policy: No such file or directory (ENOENT)",
            "\(rules)/40-pipe.policy:1:1: error: cannot read \(rules)/40-pipe.policy: it is a FIFO, not a regular file",
        ])
    }

    @Test(arguments: [
        (0, "0 bytes"), (1, "1 byte"), (1023, "1023 bytes"), (1024, "1 KiB"), (1025, "1.1 KiB"),
        (64 << 10, "64 KiB"), ((64 << 20) + 1, "64.1 MiB"), (100 << 20, "100 MiB"), ((3 << 30) / 2, "1.5 GiB"),
    ])
    func sizesAreWrittenInTheLimitsUnits(bytes: Int, text: String) {
        #expect(SourceLimits.text(bytes: bytes) == text)
    }
}
