import Foundation
import Testing
@testable import Compiler

/// `SystemExpiryEdit`: the `expires:` of one system is set, changed or removed; every other
/// byte of the file stays, and the file loads with the system expiring as asked.
@Suite struct SystemExpiryEditTests {
    static let file = """
        [system] db-1: {
            address: 10.20.2.11
            tags: servers   # the primary
        }
        [system] "ops: on-call": {
          address: 10.0.0.9
          expires: 2027-01-01T00:00:00Z
        }
        [system] last: {
            address: 10.0.0.8
        }
        """

    /// (system, value, the file expected after, as the text around the change)
    static let cases: [(String, String?, String)] = [
        // Added after the last entry, indented as it is.
        ("db-1", "2026-12-31T18:00:00Z", "    tags: servers   # the primary\n    expires: 2026-12-31T18:00:00Z\n}"),
        // Changed where it stands.
        ("ops: on-call", "2026-12-31T18:00:00Z", "  address: 10.0.0.9\n  expires: 2026-12-31T18:00:00Z\n}"),
        // Removed, its line too.
        ("ops: on-call", nil, "  address: 10.0.0.9\n}"),
        // The file's last block, which ends without a newline.
        ("last", "2026-12-31T18:00:00Z", "    address: 10.0.0.8\n    expires: 2026-12-31T18:00:00Z\n}"),
    ]

    @Test("set, change, remove", arguments: 0..<4)
    func edits(_ index: Int) throws {
        let (name, value, expected) = Self.cases[index]
        let result = try #require(try SystemExpiryEdit.setExpiry(system: name, in: Array(Self.file.utf8), file: "rules.d/00-systems.policy", to: value))
        let text = String(decoding: result.bytes, as: UTF8.self)
        #expect(text.contains(expected), "\(text)")
        #expect(result.after == value)
        // Only that block changed: the others are as they were.
        for other in ["db-1", "ops: on-call", "last"] where other != name {
            let block = Self.file.components(separatedBy: "[system] ").first { $0.hasPrefix(other) || $0.hasPrefix("\"\(other)\"") }!
            #expect(text.contains(block.trimmingCharacters(in: .newlines)), "\(other) changed: \(text)")
        }
        // The file loads, with the system expiring as asked.
        let loaded = try #require(PolicyFixture(policy: text).load().policySet)
        #expect(loaded.system(named: name)?.expires == value.flatMap(ISO8601.date))
    }

    @Test func nothingToRemoveChangesNothingAndUnknownNamesAreNil() throws {
        let same = try #require(try SystemExpiryEdit.setExpiry(system: "db-1", in: Array(Self.file.utf8), file: "f", to: nil))
        #expect(same.bytes == Array(Self.file.utf8) && same.before == nil)
        #expect(try SystemExpiryEdit.setExpiry(system: "nosuch", in: Array(Self.file.utf8), file: "f", to: "2026-12-31T18:00:00Z") == nil)
        #expect(throws: SystemTagsEdit.Failure.self) {
            try SystemExpiryEdit.setExpiry(system: "one", in: Array("[system] one: { address: 10.0.0.1 }\n".utf8), file: "f", to: "2026-12-31T18:00:00Z")
        }
    }
}
