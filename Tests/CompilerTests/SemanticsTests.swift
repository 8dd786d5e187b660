import Foundation
import Testing
@testable import Compiler

/// What direct and gateway policies grant, one case per line: senders originate to receivers
/// (never to themselves), receivers only reply, each `allow` holds between its own policy's
/// sides, no `allow` grants nothing, and an inactive policy grants nothing.
struct SemanticsTests {
    static let lab = """
        [system] dev-1: {
            address: 10.0.1.1, fd00::1:1
            tags: developers
        }
        [system] dev-2: {
            address: 10.0.1.2
            tags: developers
        }
        [system] con-1: {
            address: 10.0.1.3
            tags: contractors
        }
        [system] pod-1: {
            address: 10.0.2.1, fd00::2:1
            tags: pods
        }
        [system] srv-1: {
            address: 10.0.3.1
            tags: servers, db
        }
        [system] srv-2: {
            address: 10.0.3.2
            tags: servers
        }
        [system] lonely: {
            address: 10.0.9.9
        }
        [system] gw: {
            address: 10.0.0.1
            tags: routers
        }
        [policy] kube: {
            senders: developers, contractors
            receivers: pods
            allow: tcp/443, icmp
        }
        [policy] mesh: {
            senders: servers
            receivers: servers
            allow: tcp/22
        }
        [policy] db-for-devs: {
            senders: developers
            receivers: db
            allow: tcp/5432
            active-hours: mon-fri 08:00-18:00
            timezone: America/New_York
        }
        [policy] db-web: {
            senders: developers
            receivers: db
            allow: tcp/8080
        }
        [policy] nothing: {
            senders: contractors
            receivers: servers
        }
        [policy] off: {
            senders: contractors
            receivers: db
            allow: any
            enabled: no
        }
        [policy] expired: {
            senders: contractors
            receivers: pods
            allow: tcp/22
            expires: 2026-11-01T00:00:00Z
        }
        [policy] trusted-only: {
            senders: developers
            receivers: servers
            allow: tcp/9000
            trust: mfa
        }
        [gateway-policy] printers: {
            senders: developers
            gateway: gw
            subnets: 10.50.0.0/24
            allow: tcp/631
        }
        """

    static let monday10NY = "2026-11-23T15:00:00Z"
    static let monday22NY = "2026-11-24T03:00:00Z"

    @Test(arguments: [
        // from, to, proto, port, at, allowed, deciding policy (nil: default deny)
        ("dev-1", "pod-1", "tcp", 443, monday10NY, true, "kube"),
        ("con-1", "pod-1", "icmp", 0, monday10NY, true, "kube"),
        ("pod-1", "dev-1", "tcp", 443, monday10NY, false, nil),          // receivers may only reply
        ("dev-1", "dev-2", "tcp", 443, monday10NY, false, nil),          // same side never connected
        ("dev-1", "con-1", "tcp", 443, monday10NY, false, nil),
        ("dev-1", "pod-1", "tcp", 22, monday10NY, false, "kube"),        // port not in kube's allow
        ("srv-1", "srv-2", "tcp", 22, monday10NY, true, "mesh"),         // full mesh both ways
        ("srv-2", "srv-1", "tcp", 22, monday10NY, true, "mesh"),
        ("srv-1", "srv-2", "tcp", 443, monday10NY, false, "mesh"),
        ("dev-1", "srv-1", "tcp", 22, monday10NY, false, "db-for-devs"), // mesh grants tcp/22 to servers only
        ("dev-1", "srv-1", "tcp", 5432, monday10NY, true, "db-for-devs"),
        ("dev-1", "srv-1", "tcp", 5432, monday22NY, false, "db-for-devs"), // outside active hours
        ("dev-1", "srv-1", "tcp", 8080, monday22NY, true, "db-web"),     // additive, own port
        ("dev-1", "srv-2", "tcp", 8080, monday10NY, false, "trusted-only"), // db-web scoped to db; trusted-only allows 9000 only
        ("con-1", "srv-2", "tcp", 22, monday10NY, false, "nothing"),     // no allow: grants nothing
        ("con-1", "srv-1", "tcp", 22, monday10NY, false, "off"),         // enabled: no
        ("con-1", "srv-1", "udp", 53, monday10NY, false, "off"),
        ("con-1", "pod-1", "tcp", 22, monday10NY, false, "expired"),
        ("dev-1", "srv-1", "tcp", 9000, monday10NY, false, "trusted-only"), // no trust granted
        ("dev-1", "10.50.0.7", "tcp", 631, monday10NY, true, "printers"),
        ("10.50.0.7", "dev-1", "tcp", 631, monday10NY, false, nil),       // subnets cannot initiate back
        ("dev-1", "10.50.0.7", "tcp", 22, monday10NY, false, "printers"),
        ("srv-1", "lonely", "tcp", 22, monday10NY, false, nil),           // untagged gets nothing
        ("lonely", "srv-1", "tcp", 22, monday10NY, false, nil),
    ] as [(String, String, String, Int, String, Bool, String?)])
    func flowVerdicts(from: String, to: String, proto: String, port: Int, at: String, allowed: Bool, policy: String?) throws {
        let set = try PolicyFixture(policy: Self.lab).policySet()
        let evaluator = FlowEvaluator(graph: AccessGraph(set))
        let endpoint = { (text: String) in set.system(named: text)?.addresses.first?.address ?? address(text) }
        let p = FlowProtocol(rawValue: proto)!
        let decision = evaluator.decide(FlowQuery(from: endpoint(from), to: endpoint(to), proto: p,
                                                  port: p == .icmp ? nil : UInt16(port), at: instant(at)))
        #expect(decision.allowed == allowed, "\(decision)")
        #expect(decision.policy == policy, "\(decision)")
    }

    @Test func trustGrantEnablesThePolicy() throws {
        let set = try PolicyFixture(policy: Self.lab).policySet()
        let graph = AccessGraph(set, trust: TrustGrants(["dev-1": ["mfa"]]))
        let query = FlowQuery(from: address("10.0.1.1"), to: address("10.0.3.1"), proto: .tcp, port: 9000, at: instant(Self.monday10NY))
        #expect(FlowEvaluator(graph: graph).decide(query).allowed)
        let other = FlowQuery(from: address("10.0.1.2"), to: address("10.0.3.1"), proto: .tcp, port: 9000, at: instant(Self.monday10NY))
        #expect(!FlowEvaluator(graph: graph).decide(other).allowed)
    }

    @Test(arguments: [(16, 120), (32, 496), (2, 1), (1, 0)])
    func fullMeshPairs(systemCount: Int, pairs: Int) throws {
        let text = systems(systemCount, tag: "mesh", prefix: "m", block: 1)
            + "[policy] all: {\n    senders: mesh\n    receivers: mesh\n    allow: any\n}\n"
        let graph = AccessGraph(try PolicyFixture(policy: text).policySet())
        #expect(graph.entries[0].connectedPairs == pairs)
    }

    @Test func partialMeshAndOverlappingSidesCountPairs() throws {
        // 3 senders, 4 receivers, one system on both sides: 3*4 - 1 self pair - 0 double counts.
        let text = systems(3, tag: "a", prefix: "a", block: 1) + systems(3, tag: "b", prefix: "b", block: 2)
            + "[system] both: {\n    address: 10.3.0.1\n    tags: a, b\n}\n"
            + "[policy] p: {\n    senders: a\n    receivers: b\n    allow: any\n}\n"
        let graph = AccessGraph(try PolicyFixture(policy: text).policySet())
        // senders {a0,a1,a2,both}, receivers {b0,b1,b2,both}: 16 - 1 = 15 unordered pairs.
        #expect(graph.entries[0].connectedPairs == 15)
    }

    @Test func policyWithoutAllowGrantsNothingAndWarns() throws {
        let fixture = PolicyFixture(policy: Self.lab)
        let warnings = fixture.load().diagnostics.filter { $0.severity == .warning }
        #expect(warnings.contains { $0.message.hasPrefix("policy 'nothing' has no 'allow': it grants nothing") })
    }
}

/// The compiled ruleset, walked like the kernel walks it, agrees with `enforcer test` for
/// every pair of lab systems, several services, at several instants.
struct RulesetAgreesWithEvaluatorTests {
    @Test(arguments: ["2026-11-23T15:00:00Z", "2026-11-24T03:00:00Z", "2026-11-28T15:00:00Z"])
    func everyFlowAgrees(at: String) throws {
        let set = try PolicyFixture(policy: SemanticsTests.lab).policySet()
        let graph = AccessGraph(set, trust: TrustGrants(["dev-2": ["mfa"]]))
        let when = instant(at)
        let services: [(FlowProtocol, UInt16?)] = [(.tcp, 22), (.tcp, 443), (.tcp, 631), (.tcp, 5432), (.tcp, 8080), (.tcp, 9000), (.udp, 53), (.icmp, nil)]
        var checked = 0
        for receiver in set.systems {
            let compiled = try HostCompiler(graph: graph, system: receiver, at: when).compile()
            let interpreter = RulesetInterpreter(compiled.ruleset)
            let evaluator = FlowEvaluator(graph: graph, system: receiver)
            for sender in set.systems where sender.name != receiver.name {
                for source in sender.addresses.map(\.address) {
                    let destinations = receiver.addresses.map(\.address).filter { $0.family == source.family }
                        + (compiled.isGateway ? [address("10.50.0.7")] : [])
                    for destination in destinations where destination.family == source.family {
                        for (proto, port) in services {
                            let hook: Hook = receiver.addresses.contains { $0.contains(destination) } ? .input : .forward
                            let kernelProto: IPProtocol = proto == .icmp ? (source.family == .v4 ? .icmp : .icmpv6) : (proto == .tcp ? .tcp : .udp)
                            let packet = RulesetInterpreter.Packet(source: source, destination: destination, proto: kernelProto, port: port ?? 0)
                            let (outcome, mark) = interpreter.run(packet, hook: hook)
                            let decision = evaluator.decide(FlowQuery(from: source, to: destination, proto: proto, port: port, at: when))
                            #expect((outcome == .accept) == decision.allowed,
                                    "\(hook) on \(receiver.name): \(source) → \(destination) \(proto) \(port.map(String.init) ?? ""): ruleset \(outcome), test says \(decision)")
                            if decision.allowed, let policy = decision.policy, let id = graph.entries.first(where: { $0.policy.name == policy })?.id {
                                let layout = MarkLayout(mask: set.config.markMask)
                                #expect(mark & layout.policyMask == layout.policyMark(id), "mark names the deciding policy \(policy)")
                            }
                            checked += 1
                        }
                    }
                }
            }
        }
        #expect(checked > 500)
    }
}

/// A receiver never classifies its own addresses as senders, also when a sender system
/// lists one of them too (the 4096-bit filter in front of the set must let them through).
struct OwnAddressTests {
    @Test func aReceiversOwnAddressIsNoSender() throws {
        let policy = """
            [system] srv-1: {
                address: 10.0.3.1, 10.0.3.9, \((0..<300).map { "10.7.\($0 / 200).\($0 % 200)" }.joined(separator: ", "))
                tags: servers
            }
            [system] dev-1: {
                address: 10.0.1.1, 10.0.3.9, 10.7.0.17, 10.7.1.5
                tags: developers
            }
            [policy] web: {
                senders: developers
                receivers: servers
                allow: tcp/443
            }
            """
        let set = try PolicyFixture(policy: policy).policySet()
        let receiver = try #require(set.system(named: "srv-1"))
        let ruleset = try HostCompiler(graph: AccessGraph(set), system: receiver, at: instant("2026-11-23T15:00:00Z")).compile().ruleset
        let hosts = try #require(ruleset.table.set(named: SenderMaps.hosts("in", .v4)))
        let senders = hosts.elements.compactMap { element -> String? in
            guard case .addresses(let range)? = element.key.first else { return nil }
            return range.description
        }
        #expect(senders == ["10.0.1.1"])
    }
}
