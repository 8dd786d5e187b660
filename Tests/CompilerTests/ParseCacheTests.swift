import Foundation
import Testing
@testable import Compiler

/// A load that keeps the blocks a change left alone (`ParseCache`) gives what a load from
/// scratch gives: the same systems at the same places, the same policies, the same
/// diagnostics; after random edits of a file of systems and policies, and after edits that
/// must not be read in parts (a block comment, a syntax error and its fix).
@Suite struct ParseCacheTests {
    final class Directory {
        let path = NSTemporaryDirectory() + "enforcer-parsecache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        init() throws {
            try FileManager.default.createDirectory(atPath: path + "/rules.d", withIntermediateDirectories: true)
            try "[policy]\ntime_window_tz = \"utc\"\n".write(toFile: path + "/enforcer.conf", atomically: true, encoding: .utf8)
        }
        func write(_ lines: [String]) throws {
            try lines.joined(separator: "\n").appending("\n").write(toFile: path + "/rules.d/10-all.policy", atomically: true, encoding: .utf8)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// What a load says, in words that show every place.
    static func described(_ loaded: PolicyLoader.Loaded) -> [String] {
        var out = loaded.diagnostics.map(\.description)
        for system in loaded.policySet?.systems ?? [] {
            out.append("system \(system.name) at \(system.location): \(system.addresses.map(\.description).joined(separator: ",")) tags \(system.tags.joined(separator: ","))"
                       + " expires \(system.expires.map { ISO8601.string($0) } ?? "-")")
        }
        for policy in loaded.policySet?.policies ?? [] {
            out.append("policy \(policy.name) at \(policy.location) from \(policy.senders.joined(separator: ",")) allow \(policy.allow?.map(\.description).joined(separator: ",") ?? "-")")
        }
        return out
    }

    static func systemBlock(_ index: Int, address: String? = nil, splitLines: Bool = false) -> [String] {
        let first = address ?? "10.1.\(index / 200).\(index % 200 + 1)"
        let addresses = splitLines ? ["    address: \(first)", "    address: 10.9.\(index / 200).\(index % 200 + 1)"]
            : ["    address: \(first), 10.9.\(index / 200).\(index % 200 + 1)"]
        // Every third system expires: a block kept by the cache keeps its expiry when it moves.
        let expires = index % 3 == 0 ? ["    expires: 2027-0\(index % 9 + 1)-01T00:00:00Z"] : []
        return ["[system] s-\(index): {"] + addresses + ["    tags: t\(index % 5)"] + expires + ["}"]
    }

    static func policyBlock(_ name: String, port: Int) -> [String] {
        ["# \(name)", "[policy] \(name): {", "    senders: t1, t2", "    receivers: t0", "    allow: tcp/\(port)", "}", ""]
    }

    @Test(arguments: [1, 2, 3, 4])
    func randomEditsLoadAsFromScratch(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let directory = try Directory()
        // The file as a list of blocks, each a list of lines.
        var blocks: [[String]] = (0..<60).map { Self.systemBlock($0) + [""] }
        blocks.insert(Self.policyBlock("p-a", port: 22), at: 20)
        blocks.insert(Self.policyBlock("p-b", port: 443), at: 45)
        var next = 60
        let cache = ParseCache()
        try directory.write(blocks.flatMap { $0 })
        _ = PolicyLoader.load(directory: directory.path, cache: cache)
        var keptSome = 0
        for step in 0..<40 {
            let at = Int(random.next() % UInt64(blocks.count))
            var what: String
            switch random.next() % 7 {
            case 0:
                what = "address of block \(at) changes"
                if blocks[at][0].hasPrefix("[system]") {
                    let index = Int(blocks[at][0].dropFirst("[system] s-".count).prefix { $0.isNumber })!
                    blocks[at] = Self.systemBlock(index, address: "10.7.\(step).\(at + 1)") + [""]
                }
            case 1:
                what = "block \(at) gains a line"
                if blocks[at][0].hasPrefix("[system]") {
                    let index = Int(blocks[at][0].dropFirst("[system] s-".count).prefix { $0.isNumber })!
                    blocks[at] = Self.systemBlock(index, splitLines: true) + [""]
                }
            case 2:
                what = "block \(at) goes"
                if blocks.count > 10 { blocks.remove(at: at) }
            case 3:
                what = "a system comes before block \(at)"
                blocks.insert(Self.systemBlock(next) + [""], at: at)
                next += 1
            case 4:
                what = "a comment line before block \(at)"
                blocks[at].insert("// step \(step)", at: 0)
            case 5:
                what = "a policy's port"
                if let index = blocks.firstIndex(where: { $0.contains("[policy] p-a: {") }) { blocks[index] = Self.policyBlock("p-a", port: 1000 + step) }
            default:
                what = "a system comes last"
                blocks.append(Self.systemBlock(next) + [""])
                next += 1
            }
            try directory.write(blocks.flatMap { $0 })
            let incremental = PolicyLoader.load(directory: directory.path, cache: cache)
            let scratch = PolicyLoader.load(directory: directory.path)
            #expect(Self.described(incremental) == Self.described(scratch), "step \(step): \(what)")
            #expect(scratch.policySet != nil, "step \(step): \(what): \(scratch.diagnostics)")
            keptSome += cache.lastLoad.kept > 0 ? 1 : 0
        }
        #expect(keptSome >= 30, "most loads keep blocks: \(keptSome) of 40")
        // An address rewritten in place, and a load of nothing changed, start from the last load.
        #expect(cache.shortWayLoads >= 2, "loads that started from the last: \(cache.shortWayLoads)")
    }

    /// A policy rewritten in place (its ports) starts from the last load, as a system does;
    /// a rewrite that brings a diagnostic (an unknown tag, no `allow`) takes the whole way.
    /// Each load says what a load from scratch says.
    @Test func aPolicyRewrittenInPlaceStartsFromTheLastLoad() throws {
        let directory = try Directory()
        let systems = (0..<20).flatMap { Self.systemBlock($0) + [""] }
        func policy(senders: String = "t1, t2", allow: String = "allow: tcp/22") -> [String] {
            ["[policy] p-a: {", "    senders: \(senders)", "    receivers: t0", "    \(allow)", "}", ""]
        }
        let cache = ParseCache()
        try directory.write(systems + policy() + Self.policyBlock("p-b", port: 443))
        _ = PolicyLoader.load(directory: directory.path, cache: cache)
        var shortWays = cache.shortWayLoads
        for (step, (lines, short)) in [(policy(allow: "allow: tcp/2222"), true), (policy(senders: "t1, t99"), false), (policy(allow: "allow: tcp/23"), false),
                                       (policy(allow: "allow: udp/53"), true), (policy(allow: "# no allow"), false), (policy(), false),
                                       (policy(senders: "t3, t4"), true)].enumerated() {
            try directory.write(systems + lines + Self.policyBlock("p-b", port: 443))
            let incremental = PolicyLoader.load(directory: directory.path, cache: cache)
            let scratch = PolicyLoader.load(directory: directory.path)
            #expect(Self.described(incremental) == Self.described(scratch), "step \(step)")
            #expect(cache.shortWayLoads == shortWays + (short ? 1 : 0), "step \(step): the short way \(short ? "taken" : "not taken")")
            shortWays = cache.shortWayLoads
        }
    }

    /// A file whose stamp (inode, size, modification and change times) is as when it was
    /// read is not read again; one rewritten to the same size with its modification time
    /// put back is (its change time moved), and loads as from scratch.
    /// A policy kept from the last load is the policy read again only while every tag it
    /// names is still carried: a tag gone makes it the error a load from scratch gives, its
    /// return makes it whole again with its warning, and a block before it moves its order.
    @Test func aKeptPolicyIsReadAgainWhenATagItNamesGoes() throws {
        let directory = try Directory()
        func file(webTag: String, extraFirst: Bool = false, nine: String = "10.0.0.9") -> [String] {
            (extraFirst ? ["[system] s-9: {", "    address: \(nine)", "    tags: db", "}", ""] : [])
                + ["[system] s-0: {", "    address: 10.0.0.1", "    tags: db", "}", "",
                   "[system] s-1: {", "    address: 10.0.0.2", "    tags: \(webTag)", "}", "",
                   "[policy] p: {", "    senders: web", "    receivers: db", "    allow: tcp/22", "}", "",
                   "[policy] q: {", "    senders: web", "    receivers: db", "}"]
        }
        func described(_ loaded: PolicyLoader.Loaded) -> [String] {
            Self.described(loaded) + (loaded.policySet?.policies ?? []).map { policy in
                guard case .direct(let receivers) = policy.reach else { return "gateway" }
                return "\(policy.name) order \(policy.order) to \(receivers)"
            }
        }
        let cache = ParseCache()
        for (step, lines) in [file(webTag: "web"), file(webTag: "other"), file(webTag: "web"), file(webTag: "web", extraFirst: true),
                                         file(webTag: "web", extraFirst: true, nine: "10.0.0.8")].enumerated() {
            try directory.write(lines)
            let incremental = PolicyLoader.load(directory: directory.path, cache: cache)
            let scratch = PolicyLoader.load(directory: directory.path)
            #expect(described(incremental) == described(scratch), "step \(step)")
            // The last edit leaves the policies' lines where they were: both are kept.
            if step == 4 {
                #expect(cache.lastLoad.kept == 4, "step \(step): \(cache.lastLoad)")
                // Only s-9's address changed: this load started from the last one.
                #expect(cache.shortWayLoads == 1)
            }
            let unknown = incremental.diagnostics.contains { $0.message.contains("unknown tag 'web'") }
            #expect(unknown == (step == 1), "step \(step): \(incremental.diagnostics)")
            // With its tag unknown, q is an error, not a policy without `allow`.
            #expect(incremental.diagnostics.contains { $0.message.contains("'q' has no 'allow'") } == (step != 1), "step \(step)")
        }
    }

    /// A web rule reads the addresses of the systems its `match-source` names: with one in
    /// the policy, a system's new address is never taken the short way, and the rule follows it.
    @Test func aWebRuleFollowsAnAddressRewrittenInPlace() throws {
        let directory = try Directory()
        func file(_ address: String) -> [String] {
            ["[system] s-0: {", "    address: \(address)", "    tags: ws", "}", "",
             "r: {", "    match-domain: example.com", "    match-source: ws", "    action: deny", "}"]
        }
        func sources(_ loaded: PolicyLoader.Loaded) -> String {
            var out = ""
            dump(loaded.policySet?.webRules.map(\.sources) ?? [], to: &out)
            return out
        }
        let cache = ParseCache()
        for address in ["10.0.0.1", "10.0.0.2"] {
            try directory.write(file(address))
            let incremental = PolicyLoader.load(directory: directory.path, cache: cache)
            let scratch = PolicyLoader.load(directory: directory.path)
            #expect(Self.described(incremental) == Self.described(scratch))
            #expect(sources(incremental) == sources(scratch) && sources(incremental).contains(address), "\(sources(incremental))")
        }
        #expect(cache.shortWayLoads == 0)
    }

    /// The common start and end of two files, against the plain byte-by-byte answer: edits
    /// at the start, the end, both, chunk boundaries (4,096 bytes), and files of one byte.
    @Test func commonEndsAgreeWithAByteByByteCount() {
        func naive(_ a: [UInt8], _ b: [UInt8]) -> (Int, Int) {
            var prefix = 0
            while prefix < min(a.count, b.count) && a[prefix] == b[prefix] { prefix += 1 }
            var suffix = 0
            while suffix < min(a.count, b.count) - prefix && a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
            return (prefix, suffix)
        }
        var generator = SystemRandomNumberGenerator()
        let base = (0..<20_000).map { _ in UInt8.random(in: 0...3, using: &generator) }
        var cases: [[UInt8]] = [base, [], [1], Array(base.dropFirst()), Array(base.dropLast()), [9] + base, base + [9]]
        for at in [0, 1, 4095, 4096, 4097, 8192, 12_000, 15_904, 15_905, 19_999] {
            var changed = base
            changed[at] ^= 0x80
            cases.append(changed)
            var inserted = base
            inserted.insert(7, at: at)
            cases.append(inserted)
        }
        for _ in 0..<40 {
            var edited = base
            let at = Int.random(in: 0..<edited.count, using: &generator)
            let cut = Int.random(in: 0...min(9_000, edited.count - at), using: &generator)
            edited.replaceSubrange(at..<(at + cut), with: (0..<Int.random(in: 0...9_000, using: &generator)).map { _ in UInt8.random(in: 0...3, using: &generator) })
            cases.append(edited)
        }
        for other in cases {
            let got = ParseCache.commonEnds(base, other), want = naive(base, other)
            #expect(got == want, "\(other.count) bytes: \(got) against \(want)")
            let back = ParseCache.commonEnds(other, base), wantBack = naive(other, base)
            #expect(back == wantBack)
        }
    }

    @Test func aFileUnchangedSinceItWasReadIsNotReadAgain() throws {
        let directory = try Directory()
        let other = directory.path + "/rules.d/20-policies.policy"
        try directory.write((0..<30).flatMap { Self.systemBlock($0) + [""] })
        try Self.policyBlock("p-a", port: 22).joined(separator: "\n").write(toFile: other, atomically: true, encoding: .utf8)
        Thread.sleep(forTimeInterval: 0.1)
        let cache = ParseCache()
        _ = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(cache.lastUnread.isEmpty)
        // Only the policies' file changes.
        try Self.policyBlock("p-a", port: 443).joined(separator: "\n").write(toFile: other, atomically: true, encoding: .utf8)
        let second = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(cache.lastUnread.contains(directory.path + "/rules.d/10-all.policy") && !cache.lastUnread.contains(other), "\(cache.lastUnread)")
        #expect(Self.described(second) == Self.described(PolicyLoader.load(directory: directory.path)))

        // The systems' file rewritten in place, same size, its modification time put back.
        let systems = directory.path + "/rules.d/10-all.policy"
        var info = stat()
        #expect(lstat(systems, &info) == 0)
        var text = try String(contentsOfFile: systems, encoding: .utf8)
        // s-1's tag only (the first t1): the others keep t1, which the policy names.
        text.replaceSubrange(try #require(text.range(of: "tags: t1\n")), with: "tags: t4\n")
        let handle = try #require(FileHandle(forWritingAtPath: systems))
        handle.write(Data(text.utf8))
        try handle.close()
        var times = [info.st_atim, info.st_mtim]
        #expect(utimensat(AT_FDCWD, systems, &times, 0) == 0)
        let third = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(!cache.lastUnread.contains(systems))
        #expect(Self.described(third) == Self.described(PolicyLoader.load(directory: directory.path)))
        #expect(Self.described(third).contains { $0.hasPrefix("system s-1 ") && $0.hasSuffix("tags t4 expires -") }, "\(Self.described(third).prefix(3))")
    }

    @Test func aChangedFileIsReadIntoTheBytesItReplaced() throws {
        let directory = try Directory()
        let systems = directory.path + "/rules.d/10-all.policy"
        try directory.write((0..<300).flatMap { Self.systemBlock($0) + [""] })
        let cache = ParseCache()
        _ = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(cache.spareCapacity == nil, "nothing was replaced yet")
        let size = try #require(FileManager.default.attributesOfItem(atPath: systems)[.size] as? Int)
        // Each load after a change gives what a load from scratch gives, and keeps the bytes
        // it replaced for the next read of that file.
        for round in 1...4 {
            try directory.write((0..<300).flatMap { Self.systemBlock($0, address: $0 == round ? "10.7.0.\(round)" : nil) + [""] })
            let loaded = PolicyLoader.load(directory: directory.path, cache: cache)
            #expect(Self.described(loaded) == Self.described(PolicyLoader.load(directory: directory.path)))
            #expect((cache.spareCapacity ?? 0) >= size, "round \(round): \(String(describing: cache.spareCapacity))")
        }
        // Kept for that file only: enforcer.conf, read first, does not take it.
        let capacity = try #require(cache.spareCapacity)
        #expect(cache.takeSpare(for: directory.path + "/enforcer.conf") == nil)
        #expect(cache.takeSpare(for: systems)?.capacity == capacity)
        #expect(cache.spareCapacity == nil)
    }

    /// `readAll(reusing:)` gives the file's bytes whatever the buffer it is handed held
    /// before: longer, shorter, too small, or none.
    @Test(arguments: [0, 1, 4095, 4096, 70_000])
    func aFileReadIntoAKeptBufferIsTheFile(size: Int) throws {
        let path = NSTemporaryDirectory() + "enforcer-readall-\(getpid())-\(size)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let content = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try Data(content).write(to: URL(fileURLWithPath: path))
        for spare in [nil, [UInt8](repeating: 0xEE, count: 2 * size + 10), [UInt8](repeating: 0xEE, count: size / 2),
                      Array([UInt8](repeating: 0xEE, count: 100_000).prefix(3))] as [[UInt8]?] {
            let file = try SourceFile(path: path)
            let bytes = try file.readAll(limit: 1 << 20, reusing: spare)
            #expect(bytes == content, "\(size) bytes into a buffer of \(spare?.count ?? -1)")
        }
    }

    @Test func aSystemKeptAcrossAZoneChangeIsReadInTheNewZone() throws {
        let directory = try Directory()
        try directory.write(["[system] s-1: {", "    address: 10.0.0.1", "    expires: 2027-01-01T00:00", "}"])
        let cache = ParseCache()
        #expect(PolicyLoader.load(directory: directory.path, cache: cache).policySet?.systems.first?.expires == ISO8601.date("2027-01-01T00:00:00Z"))
        // enforcer.conf's zone changes, the file does not: the expiry is read again, in the new zone.
        try "[policy]\ntime_window_tz = \"Europe/Berlin\"\n".write(toFile: directory.path + "/enforcer.conf", atomically: true, encoding: .utf8)
        #expect(PolicyLoader.load(directory: directory.path, cache: cache).policySet?.systems.first?.expires == ISO8601.date("2026-12-31T23:00:00Z"))
    }

    @Test func whatMustNotBeReadInPartsIsReadWhole() throws {
        let directory = try Directory()
        let cache = ParseCache()
        var lines = (0..<20).flatMap { Self.systemBlock($0) }
        try directory.write(lines)
        _ = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(cache.lastLoad == (0, 20))

        // One address changes: one block parsed again.
        lines[1] = "    address: 10.5.5.5"
        try directory.write(lines)
        #expect(Self.described(PolicyLoader.load(directory: directory.path, cache: cache)) == Self.described(PolicyLoader.load(directory: directory.path)))
        #expect(cache.lastLoad == (19, 1))

        // A block comment opens in one block and closes in another: read whole, as it may span the change.
        var commented = lines
        commented[6] = "/* s-1 and s-2"
        commented[11] = "*/"
        try directory.write(commented)
        let loaded = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(Self.described(loaded) == Self.described(PolicyLoader.load(directory: directory.path)))
        #expect(loaded.policySet?.system(named: "s-1") == nil && loaded.policySet?.system(named: "s-2") == nil)

        // A syntax error, then its fix: the error as a full load reports it, then the fixed file.
        var broken = lines
        broken[12] = "    address 10.1.0.3"
        try directory.write(broken)
        let refused = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(refused.policySet == nil && Self.described(refused) == Self.described(PolicyLoader.load(directory: directory.path)))
        try directory.write(lines)
        #expect(Self.described(PolicyLoader.load(directory: directory.path, cache: cache)) == Self.described(PolicyLoader.load(directory: directory.path)))
    }

    /// Only the changed lines are checked for length and UTF-8 when the cache holds the
    /// file: a long line or a bad byte in the middle of a change is still refused, at its line.
    @Test func changedLinesAreStillChecked() throws {
        let directory = try Directory()
        let cache = ParseCache()
        let lines = (0..<20).flatMap { Self.systemBlock($0) }
        try directory.write(lines)
        _ = PolicyLoader.load(directory: directory.path, cache: cache)

        var long = lines
        long[41] = "    tags: " + String(repeating: "t", count: SourceLimits.lineBytes + 1)
        try directory.write(long)
        let refusedLong = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(refusedLong.policySet == nil)
        #expect(Self.described(refusedLong) == Self.described(PolicyLoader.load(directory: directory.path)))
        #expect(refusedLong.diagnostics.first?.location.line == 42)

        var bytes = Array((lines.joined(separator: "\n") + "\n").utf8)
        let middle = bytes.count / 2
        bytes[middle] = 0xC3; bytes[middle + 1] = 0x28  // a lead byte whose continuation is not one
        try Data(bytes).write(to: URL(fileURLWithPath: directory.path + "/rules.d/10-all.policy"))
        let refusedBytes = PolicyLoader.load(directory: directory.path, cache: cache)
        #expect(refusedBytes.policySet == nil)
        #expect(refusedBytes.diagnostics.contains { $0.description.contains("is not UTF-8 text") })

        try directory.write(lines)
        #expect(Self.described(PolicyLoader.load(directory: directory.path, cache: cache)) == Self.described(PolicyLoader.load(directory: directory.path)))
    }
}
