import Foundation
import Glibc
import Testing
@testable import Enforcement

/// The fleet's mirror of the store's bundle: a new revision writes only the files that
/// changed (the others keep their inode and times), and a crash at any step leaves one
/// revision or the other, whole.
struct StoreMirrorTests {
    static func mirror() throws -> (StoreMirror, String) {
        let state = NSTemporaryDirectory() + "enforcer-mirror-\(UUID().uuidString)"
        return (StoreMirror(stateDirectory: state, layout: try FleetLayout(fleet: "lab")), state)
    }

    static func stamp(_ path: String) -> (ino_t, Int, Int)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (info.st_ino, info.st_ctim.tv_sec, info.st_ctim.tv_nsec)
    }

    static func files(_ mirror: StoreMirror) -> [String: String] {
        var out: [String: String] = [:]
        for path in FileManager.default.subpaths(atPath: mirror.directory) ?? [] {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: mirror.directory + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                out[path] = try? String(contentsOfFile: mirror.directory + "/" + path, encoding: .utf8)
            }
        }
        return out
    }

    static let first: [(path: String, content: Data)] = [
        ("enforcer.conf", Data("[kernel]\n".utf8)), ("rules.d/10-systems.policy", Data("systems 1\n".utf8)), ("rules.d/20-old.policy", Data("old\n".utf8)),
    ]
    static let second: [(path: String, content: Data)] = [
        ("enforcer.conf", Data("[kernel]\n".utf8)), ("rules.d/10-systems.policy", Data("systems 2\n".utf8)), ("rules.d/30-new.policy", Data("new\n".utf8)),
    ]

    @Test func aNewRevisionWritesOnlyWhatChanged() throws {
        let (mirror, state) = try Self.mirror()
        defer { try? FileManager.default.removeItem(atPath: state) }
        try mirror.write(Self.first, revision: 5, digest: "aaa")
        try mirror.writeEnrolled("# enrolled\n")
        let conf = try #require(Self.stamp(mirror.directory + "/enforcer.conf"))
        Thread.sleep(forTimeInterval: 0.01)
        // Said unchanged since a bundle the mirror does not hold (a write failed in between):
        // compared, and written since it differs.
        try mirror.write(Self.second, revision: 9, digest: "bbb", unchanged: (since: "zzz", paths: ["rules.d/10-systems.policy", "enforcer.conf"]))
        #expect(mirror.held()! == (9, "bbb"))
        #expect(Self.files(mirror) == ["enforcer.conf": "[kernel]\n", "rules.d/10-systems.policy": "systems 2\n", "rules.d/30-new.policy": "new\n",
                                       "rules.d/" + StoreMirror.enrolledFileName: "# enrolled\n"])
        // Left alone: the same inode, the same change time.
        let after = try #require(Self.stamp(mirror.directory + "/enforcer.conf"))
        #expect(after == conf)
    }

    @Test("a crash before the journal keeps the old revision; after it, the swap is finished", arguments: [false, true])
    func aCrashLeavesOneRevisionWhole(journalWritten: Bool) throws {
        let (mirror, state) = try Self.mirror()
        defer { try? FileManager.default.removeItem(atPath: state) }
        try mirror.write(Self.first, revision: 5, digest: "aaa")
        // What a write of the second revision leaves when it stops before its renames.
        try "systems 2\n".write(toFile: mirror.directory + "/rules.d/10-systems.policy.next", atomically: false, encoding: .utf8)
        try "new\n".write(toFile: mirror.directory + "/rules.d/30-new.policy.next", atomically: false, encoding: .utf8)
        if journalWritten {
            try "9 bbb\nput rules.d/10-systems.policy\nput rules.d/30-new.policy\nremove rules.d/20-old.policy\n"
                .write(toFile: mirror.base + "/revision.next", atomically: false, encoding: .utf8)
            // The first rename was done when it stopped.
            #expect(rename(mirror.directory + "/rules.d/10-systems.policy.next", mirror.directory + "/rules.d/10-systems.policy") == 0)
        }
        let held = try #require(mirror.held())
        if journalWritten {
            #expect(held == (9, "bbb"))
            #expect(Self.files(mirror) == ["enforcer.conf": "[kernel]\n", "rules.d/10-systems.policy": "systems 2\n", "rules.d/30-new.policy": "new\n"])
        } else {
            #expect(held == (5, "aaa"))
            #expect(Self.files(mirror) == ["enforcer.conf": "[kernel]\n", "rules.d/10-systems.policy": "systems 1\n", "rules.d/20-old.policy": "old\n"])
        }
        #expect(!FileManager.default.fileExists(atPath: mirror.base + "/revision.next"))
    }

    @Test func aPathOutsideTheMirrorIsRefused() throws {
        let (mirror, state) = try Self.mirror()
        defer { try? FileManager.default.removeItem(atPath: state) }
        for path in ["../escape", "/etc/passwd", "rules.d/a\nput x", "rules.d/" + StoreMirror.enrolledFileName] {
            #expect(throws: FleetError.self) { try mirror.write([(path, Data("x".utf8))], revision: 1, digest: "d") }
        }
        #expect(mirror.held() == nil)
    }
}
