import Compiler
import Foundation
import Testing
@testable import Kernel

/// Recorded generations read back: from this process's memory while the files are the ones
/// it wrote, from disk once another writer has replaced them.
@Suite struct GenerationStoreTests {
    static func temporaryDirectory() -> String { NSTemporaryDirectory() + "enforcer-store-\(UUID().uuidString)" }

    static func info(_ number: Int, summary: String) -> GenerationInfo {
        GenerationInfo(number: number, appliedAt: Date(), system: "db-1", policyDirectory: "", tableHandle: 7, networkNamespace: nil, summary: summary)
    }

    @Test func aRecordedGenerationReadsBackTheSame() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = GenerationStore(directory: directory)
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        try store.record(ruleset, info: Self.info(1, summary: "first"), policySource: nil)
        #expect(try store.ruleset(1) == ruleset)
        // A second store on the same directory (another process's view) reads the files.
        #expect(try GenerationStore(directory: directory + "/.").ruleset(1) == ruleset)
    }

    @Test func filesReplacedByAnotherWriterAreReadFromDisk() throws {
        let mine = Self.temporaryDirectory(), theirs = Self.temporaryDirectory()
        defer { for d in [mine, theirs] { try? FileManager.default.removeItem(atPath: d) } }
        let first = try exampleRuleset("enclave", system: "db-1")
        let other = try exampleRuleset("enclave", system: "sre-1")
        #expect(first != other)
        try GenerationStore(directory: mine).record(first, info: Self.info(1, summary: "mine"), policySource: nil)
        // Another writer wipes the state directory and records its own generation 1 there.
        try GenerationStore(directory: theirs).record(other, info: Self.info(1, summary: "theirs"), policySource: nil)
        try FileManager.default.removeItem(atPath: mine + "/generations/000001")
        try FileManager.default.copyItem(atPath: theirs + "/generations/000001", toPath: mine + "/generations/000001")
        #expect(try GenerationStore(directory: mine).ruleset(1) == other)
    }

    /// A generation recorded before sets carried a role reads back with the roles the
    /// compiler gives them now, so the first apply after an upgrade can still be a delta.
    @Test func aRecordWithoutSetRolesReadsBackWithThem() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        try GenerationStore(directory: directory).record(ruleset, info: Self.info(1, summary: "old"), policySource: nil)
        let file = directory + "/generations/000001/table.json"
        var table = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
        let sets = try #require(table["sets"] as? [[String: Any]])
        table["sets"] = sets.map { $0.filter { $0.key != "role" } }
        try JSONSerialization.data(withJSONObject: table).write(to: URL(fileURLWithPath: file))
        let read = try GenerationStore(directory: directory + "/.").ruleset(1)
        #expect(read == ruleset)
        #expect(read.table.sets(withRole: .timedGrants).map(\.name) == ["timed_policies"])
        #expect(Set(read.table.sets(withRole: .senderHostsMap).map(\.name)) == ["in_hosts_v4", "in_hosts_v6"])
    }

    /// Instants recorded by Foundation's `.iso8601` strategy (earlier generations) read back,
    /// and are written again as the same text.
    @Test func instantsOfEarlierRecordsReadBack() throws {
        let old = JSONEncoder()
        old.dateEncodingStrategy = .iso8601
        let info = GenerationInfo(number: 3, appliedAt: Date(timeIntervalSince1970: 1_795_442_400), system: "db-1", policyDirectory: "/p",
                                  tableHandle: 7, networkNamespace: 4_026_531_840, summary: "table replaced")
        let written = try old.encode(info)
        #expect(try GenerationStore.decoder.decode(GenerationInfo.self, from: written) == info)
        let text = String(decoding: try GenerationStore.encoder.encode(info), as: UTF8.self)
        #expect(text.contains(#""appliedAt":"2026-11-23T14:00:00Z""#), "\(text)")
        #expect(String(decoding: written, as: UTF8.self).contains(#""appliedAt":"2026-11-23T14:00:00Z""#))
    }
}
