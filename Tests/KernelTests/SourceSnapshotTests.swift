import Compiler
import Foundation
import Glibc
import Testing
@testable import Kernel

/// The policy source's digest from the files' own digests: the same whether the files are
/// read whole or known from before, and a file is read again exactly when it may have changed.
struct SourceSnapshotTests {
    static func directory(_ files: [String: String]) throws -> String {
        let root = NSTemporaryDirectory() + "enforcer-snapshot-\(UUID().uuidString)"
        for (path, text) in files {
            try FileManager.default.createDirectory(atPath: ((root + "/" + path) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: root + "/" + path, atomically: false, encoding: .utf8)
        }
        return root
    }

    /// Sets a file's modification time `seconds` back (its change time becomes now).
    static func age(_ path: String, by seconds: Int) {
        var times = [timespec(tv_sec: time(nil) - seconds, tv_nsec: 0), timespec(tv_sec: time(nil) - seconds, tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    @Test func theDigestIsTheSameReadWholeOrFromDigests() throws {
        let root = try Self.directory(["enforcer.conf": "[kernel]\n", "rules.d/10-a.policy": "[system] a: {\n}\n", "rules.d/a.c": "x", "a.c": "y"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let whole = try SourceSnapshot(directory: root)
        let digests = try SourceSnapshot.digests(directory: root)
        #expect(whole.digest == digests.digest)
        #expect(whole.files.map(\.path) == digests.files.map(\.path))
        #expect(whole.files.map(\.path) == ["a.c", "enforcer.conf", "rules.d/10-a.policy", "rules.d/a.c"])
        #expect(SourceSnapshot(files: whole.files).digest == whole.digest)
        // The documented framing: path NUL length NUL sha256-hex, per file in path order.
        var framed: [UInt8] = []
        for file in whole.files { framed += Array(file.path.utf8) + [0] + Array(String(file.content.count).utf8) + [0] + Array(SHA256.hex(file.content).utf8) }
        #expect(whole.digest == SHA256.hex(framed))
    }

    /// A hash ahead (the daemon's first apply starts one while it compiles) leaves the
    /// digests known to the record's own reading, which waits for it instead of hashing the
    /// same files beside it; without one, the first reading hashes every file.
    @Test func aHashAheadIsWhatTheRecordReads() throws {
        let files = ["enforcer.conf": "[kernel]\n", "rules.d/10-systems.policy": String(repeating: "[system] a: { address: 10.0.0.1 }\n", count: 20_000)]
        let ahead = try Self.directory(files), plain = try Self.directory(files)
        defer { for root in [ahead, plain] { try? FileManager.default.removeItem(atPath: root) } }
        // Settled: changed more than 50 ms before they are read.
        Thread.sleep(forTimeInterval: 0.2)
        SourceSnapshot.hashAhead(directory: ahead)
        SourceSnapshot.hashAhead(directory: ahead)  // a second ask while the first works: the same one
        let taken = try SourceSnapshot.digests(directory: ahead)
        #expect(taken.files.map(\.path) == ["enforcer.conf", "rules.d/10-systems.policy"])
        #expect(taken.files.allSatisfy { $0.content == nil }, "the hash ahead's digests are taken, not worked out again")
        let fresh = try SourceSnapshot.digests(directory: plain)
        #expect(fresh.files.allSatisfy { $0.content != nil })
        let whole = try SourceSnapshot(directory: ahead).digest
        #expect(taken.digest == fresh.digest && taken.digest == whole)
        // A directory that is not there: the hash ahead finds nothing, and the reading after it neither.
        SourceSnapshot.hashAhead(directory: ahead + "-gone")
        #expect(try SourceSnapshot.digests(directory: ahead + "-gone").files.isEmpty)
    }

    /// The record stores a file's bytes under the digest known for it only while the file is
    /// still the one hashed; bytes read from a file changed since are hashed again.
    @Test func aKnownDigestHoldsOnlyForTheSameFile() throws {
        let root = try Self.directory(["a.policy": "[system] a: { address: 10.0.0.1 }\n"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/a.policy"
        Self.age(path, by: 10)
        Thread.sleep(forTimeInterval: 0.1)
        _ = try SourceSnapshot.digests(directory: root)
        let known = try #require(try SourceSnapshot.digests(directory: root).files.first)
        #expect(known.content == nil)
        let bytes = try #require(FileManager.default.contents(atPath: path))
        #expect(known.stillDescribes(bytes, at: path))
        #expect(!known.stillDescribes(bytes + Data("x".utf8), at: path), "other bytes than the file's size")
        try "[system] a: { address: 10.0.0.2 }\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(!known.stillDescribes(try #require(FileManager.default.contents(atPath: path)), at: path), "the file changed since")
        let read = try SourceSnapshot.digests(directory: root).files[0]
        #expect(read.content != nil && read.digest != known.digest)
    }

    @Test func aFileIsReadAgainOnlyWhenItMayHaveChanged() throws {
        let root = try Self.directory(["old.policy": "settled\n", "new.policy": "written\n"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        func read(_ snapshot: SourceSnapshot.Digests) -> [String: Bool] {
            Dictionary(uniqueKeysWithValues: snapshot.files.map { ($0.path, $0.content != nil) })
        }
        // Wait until both are settled (50 ms old).
        Self.age(root + "/old.policy", by: 10)
        Thread.sleep(forTimeInterval: 0.2)
        let first = try SourceSnapshot.digests(directory: root)
        #expect(read(first) == ["old.policy": true, "new.policy": true])
        let second = try SourceSnapshot.digests(directory: root)
        #expect(read(second) == ["old.policy": false, "new.policy": false], "settled files are known by their digests")
        let whole2 = try SourceSnapshot(directory: root).digest
        #expect(second.digest == first.digest && second.digest == whole2)

        // Its change time moved (a link made to it): read again.
        #expect(link(root + "/old.policy", root + "/linked.policy") == 0)
        #expect(read(try SourceSnapshot.digests(directory: root))["old.policy"] == true)
        #expect(unlink(root + "/linked.policy") == 0)

        // Replaced by a file of the same size, its times set back: another inode.
        try "SETTLED\n".write(toFile: root + "/old.policy", atomically: true, encoding: .utf8)
        Self.age(root + "/old.policy", by: 10)
        let third = try SourceSnapshot.digests(directory: root)
        #expect(read(third) == ["old.policy": true, "new.policy": false])
        let whole3 = try SourceSnapshot(directory: root).digest
        #expect(third.digest == whole3 && third.digest != second.digest)

        // Written in place (the same inode) just now: read, and read again while it is this fresh.
        try "WRITTEN\n".write(toFile: root + "/new.policy", atomically: false, encoding: .utf8)
        let fourth = try SourceSnapshot.digests(directory: root)
        let fifth = try SourceSnapshot.digests(directory: root)
        #expect(read(fourth)["new.policy"] == true && read(fifth)["new.policy"] == true)
        let whole5 = try SourceSnapshot(directory: root).digest
        #expect(fifth.digest == whole5 && fifth.digest != third.digest)
    }
}
