import Compiler
import Foundation
import Testing

/// Counter objects are named after a policy's id and a hook, never after free text.
struct CounterNamesTests {
    @Test("names and their way back", arguments: [
        ("policy_3", 3, nil), ("policy_120", 120, nil), ("deny_input", nil, Hook.input), ("deny_forward", nil, .forward),
        ("policy_", nil, nil), ("policy_x", nil, nil), ("deny_output2", nil, nil), ("grant_3", nil, nil),
    ] as [(String, Int?, Hook?)])
    func roundTrip(_ name: String, _ id: Int?, _ hook: Hook?) {
        #expect(CounterNames.policyID(of: name) == id)
        #expect(CounterNames.defaultDenyHook(of: name) == hook)
        if let id { #expect(CounterNames.policy(id) == name) }
        if let hook { #expect(CounterNames.defaultDeny(hook) == name) }
    }

    /// Every grant chain counts into its policy's counter before it marks the flow, and every
    /// base chain ends by counting what its default deny drops; the table holds each counter
    /// a rule names, and no other.
    @Test func everyCounterIsUsedAndEveryUseHasACounter() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let set = try #require(PolicyLoader.load(directory: root.path + "/examples/enclave").policySet)
        for system in ["db-1", "router-1"] {
            let host = try #require(set.system(named: system))
            let table = try HostCompiler(graph: AccessGraph(set), system: host, at: Date(timeIntervalSince1970: 1_795_442_400)).compile().ruleset.table
            var used: [String] = []
            for chain in table.chains {
                for rule in chain.rules {
                    for case .namedCounter(let name) in rule.expressions { used.append(name) }
                }
                if chain.name.hasPrefix("grant_") {
                    #expect(chain.rules.first?.expressions.first == .namedCounter("policy_" + chain.name.dropFirst("grant_".count)))
                }
                if let base = chain.base, base.policy == .drop {
                    #expect(chain.rules.last == Rule([.namedCounter(CounterNames.defaultDeny(base.hook)), .verdict(.drop)], comment: "default deny"))
                }
            }
            #expect(used.sorted() == table.counters.sorted(), "\(system)")
            #expect(Set(used).count == used.count, "each counter is counted into by one rule")
        }
    }
}
