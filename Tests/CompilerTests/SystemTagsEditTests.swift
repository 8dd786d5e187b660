import Foundation
import Testing
@testable import Compiler

/// `SystemTagsEdit`: the tags of one system change, every other byte of the file stays.
@Suite struct SystemTagsEditTests {
    static let file = """
        # servers
        [system] db-1: {
            address: 10.20.2.11
            tags: servers, database-servers   # the primary
        }
        [system] "ops: on-call": {
          address: 10.0.0.9
          tags: "on-call", ops
        }
        [system] kiosk-1: {
            address: 10.10.2.99
        }
        [system] split-1: {
            address: 10.0.0.7
            tags: a
            tags: b, c
        }
        [system] keeper: {
            address: 10.0.0.8
            tags: keep
        }
        [policy] "db-1": {
            senders: keep
            receivers: keep
            allow: any
        }

        """

    /// (system, add, remove, the file's text expected after: each change given as the old and new line)
    static let cases: [(String, [String], [String], [(String, String)], [String])] = [
        ("db-1", ["pci"], [], [("    tags: servers, database-servers   # the primary", "    tags: servers, database-servers, pci   # the primary")],
         ["servers", "database-servers", "pci"]),
        ("db-1", [], ["servers"], [("    tags: servers, database-servers   # the primary", "    tags: database-servers   # the primary")],
         ["database-servers"]),
        ("db-1", ["legacy"], ["servers", "database-servers"], [("    tags: servers, database-servers   # the primary", "    tags: legacy   # the primary")],
         ["legacy"]),
        // A quoted item keeps its quotes; the quoted name is found.
        ("ops: on-call", ["pager"], ["ops"], [("  tags: \"on-call\", ops", "  tags: \"on-call\", pager")], ["on-call", "pager"]),
        // No tags yet: a line after the last entry, indented as it is.
        ("kiosk-1", ["kiosks", "lobby"], [], [("    address: 10.10.2.99\n", "    address: 10.10.2.99\n    tags: kiosks, lobby\n")], ["kiosks", "lobby"]),
        // Every tag of a line removed: the line goes; additions go to the last line left.
        ("split-1", ["d"], ["a"], [("    tags: a\n", ""), ("    tags: b, c", "    tags: b, c, d")], ["b", "c", "d"]),
        ("split-1", [], ["b", "c"], [("    tags: b, c\n", "")], ["a"]),
        // Nothing to do: the same bytes.
        ("db-1", ["servers"], ["nosuch"], [], ["servers", "database-servers"]),
    ]

    @Test(arguments: cases.indices)
    func retags(_ index: Int) throws {
        let (system, add, remove, changes, tags) = Self.cases[index]
        let result = try #require(try SystemTagsEdit.retag(system: system, in: Array(Self.file.utf8), file: "00-systems.policy", add: add, remove: remove))
        var expected = Self.file
        for (old, new) in changes {
            #expect(expected.contains(old), "\(old)")
            expected = expected.replacingOccurrences(of: old, with: new)
        }
        #expect(String(decoding: result.bytes, as: UTF8.self) == expected)
        #expect(result.after == tags)
        // The loader reads the new text as the system with those tags.
        let parsed = PolicyLoaderTestSupport.systems(in: result.bytes)
        #expect(parsed[system] == tags, "\(parsed)")
    }

    @Test func aSystemNotInTheFileIsNil() throws {
        // A policy of that name is not a system.
        #expect(try SystemTagsEdit.retag(system: "nosuch", in: Array(Self.file.utf8), file: "f", add: ["x"], remove: []) == nil)
        #expect(try SystemTagsEdit.retag(system: "\"db-1\"", in: Array(Self.file.utf8), file: "f", add: ["x"], remove: []) == nil)
    }

    @Test(arguments: [
        ("[system] a: { address: 10.0.0.1 }\n", ["x"], "written on one line"),
        ("[system] a: {\n    address: 10.0.0.1\n}\n", ["bad tag"], "bad tag 'bad tag'"),
        ("[system] a: {\n    address: 10.0.0.1\n}\n[system] a: {\n    address: 10.0.0.2\n}\n", ["x"], "written 2 times"),
        ("[system] a: {\n    address: 10.0.0.1\n    tags: \"x\", \"y\n}\n", ["z"], "unterminated quoted name"),
    ])
    func whatItCannotEditIsRefused(text: String, add: [String], message: String) {
        #expect { try SystemTagsEdit.retag(system: "a", in: Array(text.utf8), file: "f", add: add, remove: []) } throws: { error in
            "\(error)".contains(message)
        }
    }
}

/// Loads one file's text as a policy directory: each system's tags by name.
enum PolicyLoaderTestSupport {
    static func systems(in bytes: [UInt8]) -> [String: [String]] {
        let directory = NSTemporaryDirectory() + "enforcer-retag-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try? FileManager.default.createDirectory(atPath: directory + "/rules.d", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: directory + "/rules.d/00-systems.policy", contents: Data(bytes))
        let loaded = PolicyLoader.load(directory: directory)
        return Dictionary(uniqueKeysWithValues: (loaded.policySet?.systems ?? []).map { ($0.name, $0.tags) })
    }
}
