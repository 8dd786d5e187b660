import Foundation
import Testing
@testable import Compiler

// Small policies built in code, and random edits of them, for the incremental compile's
// tests: the tests keep their own list of systems and policies and build a fresh
// `PolicySet` from it for each full compile, so the incremental side is checked against
// an independent truth.

let testPlace = SourceLocation(file: "test.policy", line: 1, column: 1)
let utcZone = TimeZone(identifier: "UTC")!

func system(_ name: String, _ addresses: [String], tags: [String]) -> SystemDefinition {
    SystemDefinition(name: name, location: testPlace, addresses: addresses.map { try! AddressBlock.parse($0) }, tags: tags)
}

func policy(_ name: String, senders: [String], receivers: [String], allow: [String]?, hours: String? = nil, enabled: Bool = true,
            trust: [String] = [], gateway: (String, [String])? = nil) -> AccessPolicy {
    let reach: AccessPolicy.Reach = gateway.map { .gateway(gateway: $0.0, subnets: $0.1.map { try! AddressBlock.parse($0) }) }
        ?? .direct(receivers: receivers)
    return AccessPolicy(name: name, location: testPlace, order: 0, senders: senders, reach: reach,
                        allow: allow.map { $0.map { try! Service.parse($0) } },
                        schedule: Schedule(activeHours: hours.map { try! TimeSpec.parse($0) }, timeZone: utcZone, expires: nil, enabled: enabled),
                        trust: trust)
}

/// Systems and policies in order, and the runtime state: what a policy directory and a
/// state directory would hold.
struct TestWorld {
    var systems: [SystemDefinition]
    var policies: [AccessPolicy]
    var overrides = RuntimeOverrides()
    var instant = TestWorld.start
    /// Systems expired by now (not in `systems`): their flows are cut.
    var expired: [SystemDefinition] = []

    static let start = try! Instant.parse("2026-11-23T10:00:00Z", defaultZone: utcZone)

    var policySet: PolicySet {
        var set = PolicySet(directory: "/test", config: Config(), systems: systems, policies: policies, webRules: [], expectations: [], files: [])
        set.expired = expired
        return set
    }

    func system(named name: String) -> SystemDefinition? { systems.first { $0.name == name } }

    /// The same edit made to the lists, as the incremental host makes it to its own.
    mutating func make(_ edit: PolicyEdit) {
        switch edit {
        case .setSystem(let new):
            if let index = systems.firstIndex(where: { $0.name == new.name }) { systems[index] = new } else { systems.append(new) }
        case .removeSystem(let name): systems.removeAll { $0.name == name }
        case .setPolicy(let new):
            if let index = policies.firstIndex(where: { $0.name == new.name }) { policies[index] = new } else { policies.append(new) }
        case .removePolicy(let name): policies.removeAll { $0.name == name }
        case .overrides(let new): overrides = new
        case .instant(let new): instant = new
        case .setExpired(let new): expired = new
        }
    }

    /// `HostCompiler` from scratch, as `enforcer apply` runs it.
    func fullCompile(host: String, ids: PolicyIDs) throws -> Ruleset { try fullCompiledHost(host: host, ids: ids).ruleset }

    func fullCompiledHost(host: String, ids: PolicyIDs) throws -> CompiledHost {
        let graph = AccessGraph(policySet, overrides: overrides, at: instant, ids: ids)
        return try HostCompiler(graph: graph, system: system(named: host)!, at: instant).compile()
    }
}

/// SplitMix64: small, seeded, the same sequence on every machine.
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

/// A ruleset with its sets and chains in name order: the order the kernel does not keep.
func byName(_ ruleset: Ruleset) -> Ruleset {
    var table = ruleset.table
    table.sets.sort { $0.name < $1.name }
    table.chains.sort { $0.name < $1.name }
    table.counters.sort()
    return Ruleset(table: table)
}

/// The first set or chain where two rulesets differ, for a failure message.
func firstDifference(_ a: Ruleset, _ b: Ruleset) -> String {
    let x = byName(a).table, y = byName(b).table
    if x.counters != y.counters {
        return "counters: only left \(Set(x.counters).subtracting(y.counters).sorted()), only right \(Set(y.counters).subtracting(x.counters).sorted())"
    }
    if x.sets.map(\.name) != y.sets.map(\.name) {
        return "sets: only left \(Set(x.sets.map(\.name)).subtracting(y.sets.map(\.name)).sorted()), only right \(Set(y.sets.map(\.name)).subtracting(x.sets.map(\.name)).sorted())"
    }
    for (s, t) in zip(x.sets, y.sets) where s != t {
        return "set \(s.name): left \(s.elements.map(NFTText.elementText)) size \(s.size.map(String.init) ?? "-"), right \(t.elements.map(NFTText.elementText)) size \(t.size.map(String.init) ?? "-")"
    }
    if x.chains.map(\.name) != y.chains.map(\.name) {
        return "chains: only left \(Set(x.chains.map(\.name)).subtracting(y.chains.map(\.name)).sorted()), only right \(Set(y.chains.map(\.name)).subtracting(x.chains.map(\.name)).sorted())"
    }
    for (s, t) in zip(x.chains, y.chains) where s != t { return "chain \(s.name) differs" }
    return a == b ? "none" : "order of sets or chains"
}
