import Foundation
import Testing
@testable import Compiler

/// `PolicySet.edits(to:)`: what a reload tells the incremental compile, or nil where only a
/// full compile can say it.
@Suite struct PolicyEditsTests {
    static let base = TestWorld(
        systems: [system("a", ["10.0.0.1"], tags: ["dev"]), system("b", ["10.0.0.2"], tags: ["db"]), system("c", ["10.0.0.3"], tags: ["dev"])],
        policies: [policy("p", senders: ["dev"], receivers: ["db"], allow: ["tcp/22"]), policy("q", senders: ["db"], receivers: ["dev"], allow: nil)])

    static func described(_ edits: [PolicyEdit]?) -> [String]? {
        edits?.map { edit in
            switch edit {
            case .setSystem(let system): "set system \(system.name)"
            case .removeSystem(let name): "remove system \(name)"
            case .setPolicy(let policy): "set policy \(policy.name)"
            case .removePolicy(let name): "remove policy \(name)"
            case .overrides: "overrides"
            case .instant: "instant"
            case .setExpired(let systems): "expired \(systems.map(\.name).joined(separator: ","))"
            }
        }
    }

    nonisolated(unsafe) static let cases: [(String, @Sendable (inout TestWorld) -> Void, [String]?)] = [
        ("nothing changes", { _ in }, []),
        ("a system's address", { $0.systems[1] = system("b", ["10.0.0.9"], tags: ["db"]) }, ["set system b"]),
        ("a system's tags", { $0.systems[0] = system("a", ["10.0.0.1"], tags: ["dev", "db"]) }, ["set system a"]),
        ("only where a system is written", {
            let old = $0.systems[2]
            $0.systems[2] = SystemDefinition(name: old.name, location: SourceLocation(file: "other.policy", line: 9, column: 1), addresses: old.addresses, tags: old.tags)
        }, []),
        ("a system comes last", { $0.systems.append(system("d", ["10.0.0.4"], tags: ["db"])) }, ["set system d"]),
        ("a system goes from the middle", { $0.systems.remove(at: 1) }, ["remove system b"]),
        ("a system comes in the middle", { $0.systems.insert(system("d", ["10.0.0.4"], tags: ["db"]), at: 1) }, nil),
        ("two systems swap places", { $0.systems.swapAt(0, 2) }, nil),
        ("a policy's ports", { $0.policies[0] = policy("p", senders: ["dev"], receivers: ["db"], allow: ["tcp/22", "tcp/443"]) }, ["set policy p"]),
        ("a policy's hours", { $0.policies[1] = policy("q", senders: ["db"], receivers: ["dev"], allow: nil, hours: "mon-fri 08:00-18:00") }, ["set policy q"]),
        ("a policy's load order only", { $0.policies[1].order = 7 }, []),
        ("a policy goes, another comes", { $0.policies.remove(at: 0); $0.policies.append(policy("r", senders: ["dev"], receivers: ["dev"], allow: ["icmp"])) },
         ["remove policy p", "set policy r"]),
        ("policies swap places", { $0.policies.swapAt(0, 1) }, nil),
    ]

    @Test(arguments: cases.indices)
    func edits(_ index: Int) {
        let (what, change, expected) = Self.cases[index]
        var world = Self.base
        change(&world)
        #expect(Self.described(Self.base.policySet.edits(to: world.policySet)) == expected, "\(what)")
    }

    @Test func enforcerConfOrWebRulesAreCompiledInFull() {
        var changed = Self.base.policySet
        changed.config.table = "other"
        #expect(Self.base.policySet.edits(to: changed) == nil)
        changed = Self.base.policySet
        changed.webRules = [WebRule(name: "w", location: testPlace, order: 0, domains: [], domainListPaths: [], sni: nil, uriPatterns: [],
                                    hostPatterns: [], userAgentPatterns: [], sources: [], action: .deny, description: nil, timeWindow: nil, timeZone: utcZone)]
        #expect(Self.base.policySet.edits(to: changed) == nil)
        #expect(changed.edits(to: changed) == nil)
    }
}
