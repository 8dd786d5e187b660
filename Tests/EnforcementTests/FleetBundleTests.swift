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
