import Compiler
import Foundation
import Testing
@testable import Kernel

/// The table's counter objects: created with the table, read back in one dump, left alone
/// (counts and all) by a delta that rewrites the chains counting into them, carried over by
/// a whole-table replacement, and removed with the policy they count for.
@Suite(.serialized)
struct CounterTests {
    init() {
        precondition(getuid() == 0, "CounterTests load rulesets into network namespaces and must run as root (CI does)")
    }

    @Test func countsSurviveDeltasAndReplacements() throws {
        let namespace = try TestNamespace("enfk-count")
        let connection = try namespace.connection()
        let encoder = RulesetEncoder(queue: try KernelTable.probeQueueEncoding(connection: connection))
        let first = try exampleRuleset("enclave", system: "db-1")
        #expect(first.table.counters == ["deny_input", "policy_2", "policy_3", "policy_4", "policy_5"])
        let table = KernelTable(name: first.table.name, connection: connection)

        // A table made with counts (as a replacement makes it) starts from them.
        let counted = CounterValue(packets: 7, bytes: 420)
        try connection.commit(try encoder.create(first, tableComment: nil, counts: ["policy_4": counted]))
        var read = try table.counters()
        #expect(Set(read.keys) == Set(first.table.counters))
        #expect(read["policy_4"] == counted)
        #expect(read["deny_input"] == CounterValue(packets: 0, bytes: 0))
        #expect(try namespace.nft("list", "chain", "inet", "enforcer", "grant_4").contains("counter name \"policy_4\""))

        // A delta that rewrites the grant chain keeps the object and its count.
        var rewritten = first
        let grant = try #require(rewritten.table.chains.firstIndex { $0.name == "grant_4" })
        rewritten.table.chains[grant].rules[0].comment = "rewritten"
        let delta = try #require(try Delta.between(Snapshot(first), rewritten, encoder: encoder))
        #expect(delta.summary.chainsRewritten == 1 && delta.summary.countersAdded == 0 && delta.summary.countersRemoved == 0)
        try table.update(delta)
        read = try table.counters()
        #expect(read["policy_4"] == counted)

        // A replacement carries the counts over, the recent table's added to the main table's.
        let recent = Ruleset(table: Table(family: .inet, name: RecentTable.name(of: first.table.name), sets: [], chains: [], counters: ["policy_4"]))
        try connection.commit(try encoder.create(recent, tableComment: nil, counts: ["policy_4": CounterValue(packets: 1, bytes: 60)]))
        try table.replace(with: Snapshot(rewritten), comment: nil, encoder: encoder, alsoRemoving: [RecentTable.name(of: first.table.name)])
        read = try table.counters()
        #expect(read["policy_4"] == CounterValue(packets: 8, bytes: 480))
        #expect(try KernelTable(name: RecentTable.name(of: first.table.name), connection: connection).counters().isEmpty)

        // A policy that goes takes its counter with it; the others keep theirs.
        var fewer = rewritten
        fewer.table.counters.removeAll { $0 == "policy_5" }
        fewer.table.chains.removeAll { $0.name == "grant_5" }
        for index in fewer.table.sets.indices {
            fewer.table.sets[index].elements = SetElements(fewer.table.sets[index].elements.filter { $0.verdict != .goto("grant_5") })
        }
        let removal = try #require(try Delta.between(Snapshot(rewritten), fewer, encoder: encoder))
        #expect(removal.summary.countersRemoved == 1)
        try table.update(removal)
        read = try table.counters()
        #expect(read["policy_5"] == nil)
        #expect(read["policy_4"] == CounterValue(packets: 8, bytes: 480))
    }

    /// The reply to a GETOBJ dump, as the kernel writes it, parsed without a kernel.
    @Test func aCounterObjectReplyParses() {
        func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
            let length = UInt16(4 + value.count)
            var out = [UInt8(length & 0xff), UInt8(length >> 8), UInt8(type & 0xff), UInt8(type >> 8)] + value
            while out.count % 4 != 0 { out.append(0) }
            return out
        }
        func be64(_ value: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }
        let data = attribute(4 | 0x8000, attribute(1, be64(1234)) + attribute(2, be64(5)))
        let body = [UInt8](arrayLiteral: 1, 0, 0, 0) + attribute(1, Array("enforcer".utf8) + [0]) + attribute(2, Array("policy_7".utf8) + [0])
            + attribute(3, [0, 0, 0, 1]) + data
        let length = UInt32(16 + body.count)
        let type = UInt16(10 << 8 | 18)
        var message: [UInt8] = [UInt8(length & 0xff), UInt8((length >> 8) & 0xff), 0, 0, UInt8(type & 0xff), UInt8(type >> 8), 2, 0, 42, 0, 0, 0, 0, 0, 0, 0]
        message += body
        let replies = NetlinkReply.parse(message)
        guard case let .counter(sequence, table, name, value)? = replies.first else {
            Issue.record("not parsed as a counter: \(replies)")
            return
        }
        #expect(sequence == 42 && table == "enforcer" && name == "policy_7", "\(sequence) \(table) \(name)")
        #expect(value == CounterValue(packets: 5, bytes: 1234))
    }
}
