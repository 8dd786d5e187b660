import Compiler
import Foundation
import Kernel
import Testing
@testable import Enforcement

/// The fleet bundle's pieces without a store: content-defined chunks (whole again when
/// joined, bounded, and stable around an edit, so an agent fetches only what changed) and
/// the manifest's round trip.
struct FleetBundleTests {
    /// Policy-like text: `count` system blocks, with a seeded generator.
    static func text(systems count: Int, seed: UInt64) -> Data {
        var generator = SeededGenerator(seed: seed)
        var out = ""
        for index in 0..<count {
            out += "[system] host-\(index): {\n    address: 10.\(UInt8.random(in: 0...255, using: &generator)).\(index / 256 % 256).\(index % 256)\n"
            out += "    tags: " + (0..<Int.random(in: 1...4, using: &generator)).map { _ in "tag-\(Int.random(in: 0..<50, using: &generator))" }.joined(separator: ", ") + "\n}\n"
        }
        return Data(out.utf8)
    }

    @Test("chunks join to the file, stay within their bounds and end at line ends", arguments: [1, 200, 5_000, 60_000] as [Int])
    func chunksJoinAndAreBounded(_ systems: Int) {
        let data = Self.text(systems: systems, seed: UInt64(systems))
        let chunks = Chunker.split(data)
        #expect(chunks.reduce(Data(), +) == data)
        for (index, chunk) in chunks.enumerated() {
            #expect(chunk.count <= Chunker.maximum)
            if index < chunks.count - 1 {
                #expect(chunk.count >= Chunker.minimum)
                #expect(chunk.last == UInt8(ascii: "\n") || chunk.count == Chunker.maximum)
            }
        }
        if data.count > 4 * Chunker.maximum { #expect(chunks.count > data.count / Chunker.maximum) }
    }

    @Test("an edit changes the chunks it falls in, not the others", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func editsStayLocal(_ seed: UInt64) {
        let data = Self.text(systems: 60_000, seed: seed)
        var generator = SeededGenerator(seed: seed &* 7919)
        var bytes = [UInt8](data)
        // A line inserted, or one address changed, somewhere in the middle.
        let at = Int.random(in: bytes.count / 4..<bytes.count * 3 / 4, using: &generator)
        let lineStart = (bytes[..<at].lastIndex(of: UInt8(ascii: "\n")) ?? 0) + 1
        if seed % 2 == 0 {
            bytes.insert(contentsOf: Array("    description: one more line\n".utf8), at: lineStart)
        } else {
            bytes[lineStart + 2] = bytes[lineStart + 2] == UInt8(ascii: "x") ? UInt8(ascii: "y") : UInt8(ascii: "x")
        }
        let before = Set(Chunker.split(data).map { SHA256.hex($0) })
        let afterChunks = Chunker.split(Data(bytes)).map { SHA256.hex($0) }
        let fresh = afterChunks.filter { !before.contains($0) }
        #expect(fresh.count <= 2, "\(fresh.count) of \(afterChunks.count) chunks are new after a one-line edit")
    }

    @Test func theManifestRoundTripsAndNamesWhatChanged() throws {
        let first = SourceSnapshot(files: [("enforcer.conf", Data("[kernel]\n".utf8)),
                                           ("rules.d/10-systems.policy", Self.text(systems: 20_000, seed: 9))])
        let (bundle, chunks) = FleetBundle.make(first, pushedBy: "alice", message: "first", checkedAt: 0)
        var decoded = try FleetBundle.decode(bundle.encoded())
        // The instant is written to the millisecond.
        #expect(abs(decoded.pushedAt.timeIntervalSince(bundle.pushedAt)) < 0.001)
        decoded.pushedAt = bundle.pushedAt
        #expect(decoded == bundle)
        #expect(bundle.files["rules.d/10-systems.policy"]!.chunks.allSatisfy { chunks[$0] != nil })
        #expect(bundle.digest == first.digest)

        var files = first.files
        files[1].content.append(contentsOf: Data("[system] late: {\n    address: 10.9.9.9\n}\n".utf8))
        files.append(("rules.d/20-more.policy", Data("# nothing yet\n".utf8)))
        let (second, secondChunks) = FleetBundle.make(SourceSnapshot(files: files), pushedBy: "bob", message: nil, checkedAt: 7)
        #expect(second.changedPaths(since: bundle) == ["rules.d/10-systems.policy", "rules.d/20-more.policy"])
        #expect(second.changedPaths(since: nil) == ["enforcer.conf", "rules.d/10-systems.policy", "rules.d/20-more.policy"])
        // Appending at the end leaves every chunk but the last as it was.
        let new = Set(secondChunks.keys).subtracting(chunks.keys)
        #expect(new.count <= 3, "\(new.count) new chunks")
        #expect(throws: FleetError.self) { try FleetBundle.decode(Data("{\"files\": 3}".utf8)) }
    }

    /// The edits a push makes, at one or two places of a 14 MB-like file.
    enum Edit: String, CaseIterable { case changeOneByte, insertLine, deleteLine, twoPlaces, appendAtEnd, newFirstLine }

    static func apply(_ edit: Edit, to data: Data, seed: UInt64) -> Data {
        var generator = SeededGenerator(seed: seed)
        var bytes = [UInt8](data)
        func lineStart(near fraction: Double) -> Int {
            let at = Int(Double(bytes.count) * fraction) + Int.random(in: 0..<1_000, using: &generator)
            return (bytes[..<at].lastIndex(of: UInt8(ascii: "\n")) ?? -1) + 1
        }
        switch edit {
        case .changeOneByte: bytes[lineStart(near: 0.5) + 3] ^= 1
        case .insertLine: bytes.insert(contentsOf: Array("    description: one more line\n".utf8), at: lineStart(near: 0.4))
        case .deleteLine:
            let start = lineStart(near: 0.6)
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n"))!
            bytes.removeSubrange(start...end)
        case .twoPlaces:
            bytes[lineStart(near: 0.2) + 2] ^= 1
            bytes.insert(contentsOf: Array("    tags: moved\n".utf8), at: lineStart(near: 0.8))
        case .appendAtEnd: bytes += Array("[system] late: {\n    address: 10.9.9.9\n}\n".utf8)
        case .newFirstLine: bytes.insert(contentsOf: Array("# a new first line\n".utf8), at: 0)
        }
        return Data(bytes)
    }

    @Test("every chunk a small edit makes is a patch of a chunk held before, small, and the manifest carries it", arguments: Edit.allCases)
    func smallEditsArePatches(_ edit: Edit) throws {
        let before = Self.text(systems: 60_000, seed: 11)
        let after = Self.apply(edit, to: before, seed: 5)
        let (old, oldChunks) = FleetBundle.make(SourceSnapshot(files: [("rules.d/10-systems.policy", before)]), pushedBy: "a", message: nil, checkedAt: 0)
        let (plain, newChunks) = FleetBundle.make(SourceSnapshot(files: [("rules.d/10-systems.policy", after)]), pushedBy: "a", message: nil, checkedAt: 1)
        let bundle = plain.withPatches(bases: plain.patchBases(from: old), old: oldChunks, chunks: newChunks)
        let fresh = Set(newChunks.keys).subtracting(oldChunks.keys)
        #expect(!fresh.isEmpty)
        #expect(Set(bundle.patches.keys) == fresh, "\(edit): \(bundle.patches.count) patches for \(fresh.count) new chunks")
        for patch in bundle.patches.values { #expect(patch.insert.count < 200, "\(edit): a patch sends \(patch.insert.count) bytes") }
        // An agent holding the old chunks makes every new one, checked by digest.
        let decoded = try FleetBundle.decode(bundle.encoded())
        #expect(decoded.patches == bundle.patches)
        let made = decoded.patched(from: oldChunks)
        #expect(Set(made.keys) == fresh)
        for (digest, data) in made { #expect(newChunks[digest] == data) }
        // Without the base, or with another chunk in its place, nothing is made.
        #expect(decoded.patched(from: [:]).isEmpty)
        let wrong = Dictionary(uniqueKeysWithValues: decoded.patches.values.map { ($0.base, Data("other bytes\n".utf8)) })
        #expect(decoded.patched(from: wrong).isEmpty)
        // What every agent receives is the head: a few hundred bytes, not the 16 KB table.
        let head = try bundle.head(since: old).encoded()
        #expect(head.count < 1_000, "\(edit): the head is \(head.count) bytes")
        let resolved = try FleetBundle.Head.decode(head).bundle(holding: old)
        #expect(resolved?.files == bundle.files && resolved?.patches == bundle.patches)
    }

    /// Files of a few sizes: a table of several files, one of them large.
    static let files: [(String, Data)] = [("enforcer.conf", Data("[kernel]\n".utf8)), ("rules.d/10-systems.policy", text(systems: 20_000, seed: 21)),
                                          ("rules.d/20-more.policy", text(systems: 300, seed: 22))]

    enum TableChange: CaseIterable { case fileAdded, fileRemoved, oneFileEdited, sameFiles }

    @Test("a head is the table's edit: an agent holding the bundle before makes the new table, any other reads it", arguments: TableChange.allCases)
    func headsEditTheTableHeld(_ change: TableChange) throws {
        var after = Self.files
        switch change {
        case .fileAdded: after.append(("rules.d/30-new.policy", Self.text(systems: 50, seed: 23)))
        case .fileRemoved: after.remove(at: 2)
        case .oneFileEdited: after[1].1 = Self.apply(.changeOneByte, to: after[1].1, seed: 3)
        case .sameFiles: break
        }
        let (old, _) = FleetBundle.make(SourceSnapshot(files: Self.files), pushedBy: "a", message: nil, checkedAt: 0)
        let (new, _) = FleetBundle.make(SourceSnapshot(files: after), pushedBy: "b", message: "why", checkedAt: 4, at: Date(timeIntervalSince1970: 1_800_000_000.123))
        let value = try new.head(since: old).encoded()
        #expect(value.count < 1_000 + (change == .fileAdded ? 100 : 0), "\(change): \(value.count) bytes")
        let head = try FleetBundle.Head.decode(value)
        #expect(head.table == new.table && head.since == old.table && head.digest == new.digest)
        let made = head.bundle(holding: old)
        #expect(made?.files == new.files && made?.message == "why" && made?.checkedAt == 4 && made?.pushedBy == "b")
        #expect(made.map { abs($0.pushedAt.timeIntervalSince(new.pushedAt)) < 0.001 } == true)
        // Holding nothing, or another bundle: the table must be read.
        let (other, _) = FleetBundle.make(SourceSnapshot(files: [("x.policy", Data("# x\n".utf8))]), pushedBy: "c", message: nil, checkedAt: 0)
        #expect(head.bundle(holding: nil) == nil)
        #expect(head.bundle(holding: other) == nil)
        #expect(try head.bundle(table: new.tableData()).files == new.files)
        #expect(throws: FleetError.self) { try head.bundle(table: Data("{\"files\": 3}".utf8)) }
    }

    @Test("a file's edit, applied to its old chunks, gives its new ones, whatever the lists", arguments: Array(UInt64(1)...40))
    func editsOfChunkListsRoundTrip(_ seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        // Few distinct digests, so repeats and reorderings happen too.
        func list() -> [String] { (0..<Int.random(in: 0...30, using: &generator)).map { _ in "c\(Int.random(in: 0..<12, using: &generator))" } }
        let old = list()
        var new = old
        for _ in 0..<Int.random(in: 0...4, using: &generator) {
            let at = Int.random(in: 0...new.count, using: &generator)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0: new.insert("n\(Int.random(in: 0..<5, using: &generator))", at: at)
            case 1: if at < new.count { new.remove(at: at) }
            default: if at < new.count { new[at] = "n\(Int.random(in: 0..<5, using: &generator))" }
            }
        }
        for (a, b) in [(old, new), (new, old), (old, list()), ([], old), (old, [])] {
            let edit = FleetBundle.Edit.between(a, b, size: 0)
            #expect(edit.apply(to: a) == b, "\(a) → \(b): \(edit.hunks)")
        }
        // One chunk changed in the middle of many is one hunk of one chunk.
        let long = (0..<200).map { "k\($0)" }
        var one = long
        one[120] = "changed"
        #expect(FleetBundle.Edit.between(long, one, size: 0).hunks == [.init(at: 120, remove: 1, insert: ["changed"])])
    }

    @Test func aFirstHeadCarriesASmallTableAndALargeEditIsReadNotSent() throws {
        // A first push of a small policy: an edit of the empty table, made by any agent.
        let (small, _) = FleetBundle.make(SourceSnapshot(files: [("a.policy", Self.text(systems: 50, seed: 1))]), pushedBy: "a", message: nil, checkedAt: 0)
        let first = try FleetBundle.Head.decode(small.head(since: nil).encoded())
        #expect(first.since == nil && first.bundle(holding: nil)?.files == small.files)
        // A rewrite of 14 MB changes hundreds of chunks: the head names the table without the edits.
        let (old, _) = FleetBundle.make(SourceSnapshot(files: [("a.policy", Self.text(systems: 60_000, seed: 1))]), pushedBy: "a", message: nil, checkedAt: 0)
        let (new, _) = FleetBundle.make(SourceSnapshot(files: [("a.policy", Self.text(systems: 60_000, seed: 2))]), pushedBy: "a", message: nil, checkedAt: 1)
        #expect(new.files["a.policy"]!.chunks.count > FleetBundle.editLimit)
        let value = try new.head(since: old).encoded()
        #expect(value.count < 1_000)
        let head = try FleetBundle.Head.decode(value)
        #expect(head.edits == nil && head.bundle(holding: old) == nil)
        #expect(try head.bundle(table: new.tableData()).files == new.files)
    }

    @Test func aHeadWhoseEditsDoNotMakeItsTableIsNotTaken() throws {
        let (old, _) = FleetBundle.make(SourceSnapshot(files: Self.files), pushedBy: "a", message: nil, checkedAt: 0)
        var after = Self.files
        after[1].1 = Self.apply(.insertLine, to: after[1].1, seed: 4)
        let (new, _) = FleetBundle.make(SourceSnapshot(files: after), pushedBy: "a", message: nil, checkedAt: 1)
        var head = new.head(since: old)
        let path = "rules.d/10-systems.policy"
        // Out of bounds, and in bounds but not the table named: neither makes a bundle.
        var outOfBounds = head
        outOfBounds.edits?[path]?.hunks[0].remove += 10_000
        #expect(outOfBounds.bundle(holding: old) == nil)
        head.edits?[path]?.hunks[0].insert.append(String(repeating: "0", count: 64))
        #expect(head.bundle(holding: old) == nil)
        // A value this enforcer does not know says so.
        #expect(throws: FleetError.self) { try FleetBundle.Head.decode(Data("{\"format\": 3, \"table\": \"x\", \"digest\": \"d\", \"pushed_by\": \"a\", \"pushed_at\": \"\", \"checked_at\": 0}".utf8)) }
    }

    @Test func aRewrittenFileHasNoPatchesAndAnOldManifestDecodes() throws {
        let (old, oldChunks) = FleetBundle.make(SourceSnapshot(files: [("a.policy", Self.text(systems: 20_000, seed: 1))]), pushedBy: "a", message: nil, checkedAt: 0)
        let (plain, newChunks) = FleetBundle.make(SourceSnapshot(files: [("a.policy", Self.text(systems: 20_000, seed: 2))]), pushedBy: "a", message: nil, checkedAt: 1)
        let bundle = plain.withPatches(bases: plain.patchBases(from: old), old: oldChunks, chunks: newChunks)
        #expect(bundle.patches.isEmpty)
        // A manifest written before patches existed has no such key.
        let text = String(decoding: try old.encoded(), as: UTF8.self)
        #expect(!text.contains("patches"))
        #expect(try FleetBundle.decode(Data(text.utf8)).patches.isEmpty)
    }

    @Test("fleet names", arguments: [("prod", true), ("eu-west.1_b", true), ("", false), ("a/b", false), ("x y", false), ("..", false), (".", false)])
    func fleetNames(_ name: String, _ valid: Bool) {
        #expect(((try? FleetLayout(fleet: name)) != nil) == valid)
    }
}

/// splitmix64: reproducible test data.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
