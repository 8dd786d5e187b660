import Compiler
import Foundation
import Testing
@testable import Kernel

/// A delta built from the incremental compile's changes leaves the kernel exactly as the
/// delta found by comparing the two rulesets does: two namespaces take the same edits of
/// the enclave example, one each way, and list the same ruleset after every edit, with the
/// recent table in play (every added sender goes there) and without it.
@Suite(.serialized)
struct ChangeDeltaTests {
    init() {
        precondition(getuid() == 0, "ChangeDeltaTests load rulesets into network namespaces and must run as root (CI does)")
    }

    static func enclave() throws -> PolicySet {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try #require(PolicyLoader.load(directory: root.path + "/examples/enclave").policySet)
    }

    static func system(_ name: String, _ addresses: [String], tags: [String]) throws -> SystemDefinition {
        SystemDefinition(name: name, location: Compiler.SourceLocation(file: "test.policy", line: 1, column: 1),
                         addresses: try addresses.map { try AddressBlock.parse($0) }, tags: tags)
    }

    /// Edits of every kind the kernel side meets: senders moving within a hash map and within
    /// an interval map, a sender joining and leaving a class, a class chain rewritten, a class
    /// coming and going, and the clock closing a policy's window.
    static func edits(_ policySet: PolicySet) throws -> [(String, PolicyEdit)] {
        var sre = try #require(policySet.policies.first { $0.name == "Database Servers for SRE" })
        var wider = sre
        wider.allow = (sre.allow ?? []) + [try Service.parse("tcp/443")]
        sre.allow = [try Service.parse("tcp/5432"), try Service.parse("tcp/22")]
        return [
            ("the SRE policy gains tcp/443, a jump in its class's map", .setPolicy(wider)),
            ("sre-1 moves", .setSystem(try system("sre-1", ["10.10.1.99", "fd00:10:1::31"], tags: ["sre"]))),
            ("sre-2 joins the sre class", .setSystem(try system("sre-2", ["10.10.1.77", "fd00:10:1::77"], tags: ["sre"]))),
            ("ws-1 leaves the range it shared with ws-2", .setSystem(try system("ws-1", ["10.10.2.51", "fd00:10:2::11"], tags: ["workstations"]))),
            ("the SRE policy gains tcp/22", .setPolicy(sre)),
            ("sre-1 goes", .removeSystem("sre-1")),
            ("sre-2 goes, and the sre class with it", .removeSystem("sre-2")),
            ("a sender of a class of its own", .setSystem(try system("dev-laptop-3", ["10.10.1.13"], tags: ["developers", "contractors"]))),
            ("it moves", .setSystem(try system("dev-laptop-3", ["10.10.1.113"], tags: ["developers", "contractors"]))),
            ("night in New York: the developers' window closes", .instant(try Instant.parse("2026-11-23T04:00:00Z", defaultZone: TimeZone(identifier: "UTC")!))),
        ]
    }

    @Test(arguments: [0, Int.max])
    func theKernelEndsTheSameEitherWay(recentFrom: Int) throws {
        let policySet = try Self.enclave()
        var host = try IncrementalHost(policySet: policySet, host: try #require(policySet.system(named: "db-1")),
                                       at: try Instant.parse("2026-11-23T15:00:00Z", defaultZone: TimeZone(identifier: "UTC")!))
        let fast = try TestNamespace("enfk-chg-a"), compared = try TestNamespace("enfk-chg-b")
        var states: [String] = []
        defer { for state in states { try? FileManager.default.removeItem(atPath: state) } }
        func applier(_ namespace: TestNamespace) throws -> Applier {
            let state = NSTemporaryDirectory() + "enforcer-chg-\(UUID().uuidString)"
            states.append(state)
            var applier = Applier(stateDirectory: state, connection: try namespace.connection())
            applier.recentFrom = recentFrom
            return applier
        }
        let fastApplier = try applier(fast), comparedApplier = try applier(compared)
        var generation = try fastApplier.apply(host.ruleset, system: "db-1", policyDirectory: nil).generation
        _ = try comparedApplier.apply(host.ruleset, system: "db-1", policyDirectory: nil)

        var sawRecent = false
        for (what, edit) in try Self.edits(policySet) {
            let changes = try host.apply([edit])
            #expect(!changes.compiledInFull, "\(what)")
            let outcome = try fastApplier.apply(host.ruleset, system: "db-1", policyDirectory: nil, changes: (base: generation, changes: changes))
            let reference = try comparedApplier.apply(host.ruleset, system: "db-1", policyDirectory: nil)
            #expect(outcome.mode == .delta && outcome.fromChanges, "\(what): \(outcome.mode) \(outcome.summary)")
            #expect(!reference.fromChanges)
            let listed = try fast.nft("list", "ruleset")
            #expect(listed == (try compared.nft("list", "ruleset")), "\(what): the kernels differ")
            #expect(outcome.summary == reference.summary, "\(what)")
            sawRecent = sawRecent || listed.contains("table inet enforcer_recent")
            if what.hasPrefix("the SRE policy gains tcp/443") && recentFrom == 0 {
                // Its class (sre-1 alone, one address of each family) moved whole to the recent table, with the new port,
                // so that the main table gained no jump element.
                #expect(outcome.summary.contains("2 senders in table inet enforcer_recent"), "\(outcome.summary)")
                let main = try fast.nft("list", "map", "inet", "enforcer", "in_hosts_v4")
                #expect(!main.contains("10.10.1.31"), "\(main)")
                let recent = try fast.nft("list", "table", "inet", "enforcer_recent")
                #expect(recent.contains("10.10.1.31 : jump") && recent.contains("tcp . 443 : goto"), "\(recent)")
            }
            generation = outcome.generation
        }
        #expect(sawRecent == (recentFrom == 0), "the recent table is in play exactly when the hosts maps count from 0")

        // Changes from a generation that is not the live one are not used.
        let changes = try host.apply([.setSystem(try Self.system("sre-3", ["10.10.1.78"], tags: ["sre"]))])
        let stale = try fastApplier.apply(host.ruleset, system: "db-1", policyDirectory: nil, changes: (base: generation - 1, changes: changes))
        _ = try comparedApplier.apply(host.ruleset, system: "db-1", policyDirectory: nil)
        #expect(stale.mode == .delta && !stale.fromChanges)
        #expect(try fast.nft("list", "ruleset") == (try compared.nft("list", "ruleset")))
    }

    /// A hosts map that grows past 4,096 senders, where the compile starts giving it a size,
    /// keeps the size the kernel holds (none) and takes only the senders that came, by both
    /// paths; a replacement gives it its size, which a map shrinking below 4,096 then keeps.
    @Test func aHostsMapCrossingItsSizeHintKeepsTheKernelsSet() throws {
        let policySet = try Self.enclave()
        var host = try IncrementalHost(policySet: policySet, host: try #require(policySet.system(named: "db-1")),
                                       at: try Instant.parse("2026-11-23T15:00:00Z", defaultZone: TimeZone(identifier: "UTC")!))
        func workstation(_ index: Int) throws -> PolicyEdit {
            // Every other address: neighbours of one class would merge into a range.
            .setSystem(try Self.system("ws-bulk-\(index)", ["10.200.\(index / 128).\(index % 128 * 2)"], tags: ["workstations"]))
        }
        func hostsCount() -> Int { host.ruleset.table.sets.first { $0.name == "in_hosts_v4" }?.elements.count ?? 0 }
        _ = try host.apply((0..<4_000).map(workstation))
        let below = 4_090 - hostsCount()
        _ = try host.apply((4_000..<(4_000 + below)).map(workstation))
        #expect(hostsCount() == 4_090)
        #expect(NamedSet.sizeHint(for: 4_090) == nil && NamedSet.sizeHint(for: 4_110) == 16_384)

        let namespace = try TestNamespace("enfk-chg-size")
        let state = NSTemporaryDirectory() + "enforcer-chg-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applier = Applier(stateDirectory: state, connection: try namespace.connection())
        var generation = try applier.apply(host.ruleset, system: "db-1", policyDirectory: nil).generation
        func listed() throws -> String { try namespace.nft("list", "map", "inet", "enforcer", "in_hosts_v4") }
        #expect(try !listed().contains("size "))

        // 20 more senders: the compile says size 16384, the kernel's map takes 20 elements.
        let grow = try host.apply((5_000..<5_020).map(workstation))
        #expect(grow.redefinedSets.isEmpty && grow.addedElements["in_hosts_v4"]?.count == 20, "\(grow.summary)")
        #expect(host.ruleset.table.sets.first { $0.name == "in_hosts_v4" }?.size == nil)
        let grown = try applier.apply(host.ruleset, system: "db-1", policyDirectory: nil, changes: (base: generation, changes: grow))
        #expect(grown.mode == .delta && grown.fromChanges && grown.summary.hasPrefix("20 elements added") && !grown.summary.contains("redefined"),
                "\(grown.summary)")
        #expect(try !listed().contains("size "))
        generation = grown.generation
        // The same by the comparing path, from a full compile that gives the size.
        let full = try HostCompiler(graph: host.graph, system: try #require(host.graph.policySet.system(named: "db-1")), at: host.instant).compile().ruleset
        #expect(full.table.sets.first { $0.name == "in_hosts_v4" }?.size == 16_384)
        let same = try applier.apply(full, system: "db-1", policyDirectory: nil)
        #expect(same.mode == .unchanged, "\(same.summary)")

        // A replacement gives the map its size; 30 senders going keep it.
        let replaced = try applier.apply(full, system: "db-1", policyDirectory: nil, forceReplace: true)
        #expect(replaced.mode == .replaced)
        #expect(try listed().contains("size 16384"))
        let shrink = (5_000..<5_030).map { PolicyEdit.removeSystem("ws-bulk-\($0 - 1_000)") }
        _ = try host.apply(shrink)
        let shrunk = try applier.apply(host.ruleset, system: "db-1", policyDirectory: nil)
        #expect(shrunk.mode == .delta && shrunk.summary.hasPrefix("30 elements removed") && !shrunk.summary.contains("redefined"), "\(shrunk.summary)")
        #expect(try listed().contains("size 16384"))
        // What the kernel holds is what the generation says: the same again is no change.
        #expect(try applier.apply(host.ruleset, system: "db-1", policyDirectory: nil).mode == .unchanged)
    }
}
