import Foundation
import Testing
@testable import Compiler

/// Random edit sequences on generated policies: after every step the incremental ruleset
/// is the full compile's, and the changes it reports turn the previous ruleset into it.
/// A failure names the seed and the step; `IncrementalPropertyTests.run(seed:)` replays one.
struct IncrementalPropertyTests {
    // Four seeds of 80 steps: each case holds a core for seconds in a debug build, and the
    // other suites' timing (etcd's start, leases) runs beside them in the same process.
    static let seeds: [UInt64] = [1, 2, 3, 4]
    static let steps = 80

    @Test(arguments: seeds)
    func incrementalEqualsFullCompile(seed: UInt64) throws {
        try Self.run(seed: seed, steps: Self.steps)
    }

    /// Addresses near each other, so that senders join into runs, split, and fall inside
    /// each other's CIDR blocks.
    static let addressPool: [String] = (0..<40).map { "10.1.0.\($0)" } + ["10.1.0.0/29", "10.1.0.8/30", "10.1.0.32/28", "10.1.1.0/24", "10.1.0.20/31"]
        + (0..<8).map { "2001:db8::\($0)" } + ["2001:db8::/126", "2001:db8::10/124"]
        + ["10.0.0.1", "10.0.0.254"]  // the hosts' own: left out of the input maps
    static let tags = ["t0", "t1", "t2", "t3", "t4", "t5"]
    static let allows: [[String]?] = [["tcp/22"], ["tcp/80-90", "udp/53"], ["icmp"], ["any"], ["tcp"], ["tcp/443", "tcp/8000-8100"], nil]
    static let hours: [String?] = [nil, nil, "weekdays 08:00-18:00", "daily 12:00-13:00"]

    static func pick<T>(_ items: [T], _ random: inout SeededGenerator) -> T { items[Int(random.next() % UInt64(items.count))] }
    static func chance(_ percent: UInt64, _ random: inout SeededGenerator) -> Bool { random.next() % 100 < percent }

    static func randomAddresses(_ random: inout SeededGenerator) -> [String] {
        (0..<(1 + Int(random.next() % 3))).map { _ in pick(addressPool, &random) }
    }

    static func randomTags(_ random: inout SeededGenerator) -> [String] {
        Array(Set((0..<(1 + Int(random.next() % 2))).map { _ in pick(tags, &random) })).sorted()
    }

    static func randomPolicy(_ name: String, _ random: inout SeededGenerator) -> AccessPolicy {
        if chance(12, &random) {
            return policy(name, senders: randomTags(&random), receivers: [], allow: pick(allows, &random), hours: pick(hours, &random),
                          gateway: ("gw", [pick(["192.168.0.0/24", "192.168.1.0/25", "10.1.0.0/28"], &random)]))
        }
        let receivers = Array(Set([pick(["web", "gw-side", "t0", "t3"], &random)] + (chance(30, &random) ? [pick(tags, &random)] : []))).sorted()
        return policy(name, senders: randomTags(&random), receivers: receivers, allow: pick(allows, &random), hours: pick(hours, &random),
                      enabled: !chance(10, &random), trust: chance(25, &random) ? ["mfa"] : [])
    }

    static func world(_ random: inout SeededGenerator) -> TestWorld {
        var systems = [
            system("recv", ["10.0.0.1", "2001:db8::1"], tags: ["web", "t3"]),
            system("gw", ["10.0.0.254"], tags: ["gw-side", "t0"]),
        ]
        for index in 0..<24 { systems.append(system("s\(index)", randomAddresses(&random), tags: randomTags(&random))) }
        let policies = (0..<12).map { randomPolicy("p\($0)", &random) }
        return TestWorld(systems: systems, policies: policies)
    }

    static func randomEdit(_ world: TestWorld, _ random: inout SeededGenerator, serial: inout Int) -> PolicyEdit {
        let senders = world.systems.filter { $0.name != "recv" && $0.name != "gw" }
        switch random.next() % 100 {
        case 0..<25 where !senders.isEmpty:  // an address moves
            let old = pick(senders, &random)
            var addresses = old.addresses.map(\.description)
            let slot = Int(random.next() % UInt64(addresses.count + 1))
            if slot < addresses.count && chance(70, &random) { addresses[slot] = pick(addressPool, &random) }
            else if slot < addresses.count && addresses.count > 1 { addresses.remove(at: slot) }
            else { addresses.append(pick(addressPool, &random)) }
            return .setSystem(system(old.name, addresses, tags: old.tags))
        case 25..<40 where !senders.isEmpty:  // tags change
            let old = pick(senders, &random)
            return .setSystem(system(old.name, old.addresses.map(\.description), tags: randomTags(&random)))
        case 40..<45:
            serial += 1
            return .setSystem(system("new\(serial)", randomAddresses(&random), tags: randomTags(&random)))
        case 45..<49 where !senders.isEmpty:
            return .removeSystem(pick(senders, &random).name)
        case 49..<70 where !world.policies.isEmpty:  // one part of a policy changes
            var changed = pick(world.policies, &random)
            switch random.next() % 5 {
            case 0: changed.allow = pick(allows, &random).map { $0.map { try! Service.parse($0) } }
            case 1: changed.senders = randomTags(&random)
            case 2: if case .direct = changed.reach { changed.reach = .direct(receivers: [pick(["web", "gw-side", "t0", "t3", "t5"], &random)]) }
            case 3: changed.schedule.activeHours = pick(hours, &random).map { try! TimeSpec.parse($0) }
            default: changed.trust = changed.trust.isEmpty ? ["mfa"] : []
            }
            return .setPolicy(changed)
        case 70..<74:
            serial += 1
            return .setPolicy(randomPolicy("q\(serial)", &random))
        case 74..<77 where !world.policies.isEmpty:
            return .removePolicy(pick(world.policies, &random).name)
        case 77..<85 where !world.policies.isEmpty:  // policy enable / disable
            var overrides = world.overrides
            let name = pick(world.policies, &random).name
            switch random.next() % 4 {
            case 0: overrides.policies[name] = EnabledOverride(enabled: false)
            case 1: overrides.policies[name] = EnabledOverride(enabled: true, until: world.instant.addingTimeInterval(Double(1 + random.next() % 5) * 3600))
            case 2: overrides.policies[name] = EnabledOverride(enabled: true)
            default: overrides.policies[name] = nil
            }
            return .overrides(overrides)
        case 85..<93 where !senders.isEmpty:  // trust grant / revoke
            var overrides = world.overrides
            let name = pick(senders, &random).name
            switch random.next() % 3 {
            case 0: overrides.trust[name, default: [:]]["mfa"] = TrustRecord(granted: true)
            case 1: overrides.trust[name, default: [:]]["mfa"] = TrustRecord(granted: true, until: world.instant.addingTimeInterval(Double(1 + random.next() % 5) * 3600))
            default: overrides.trust[name, default: [:]]["mfa"] = TrustRecord(granted: false)
            }
            return .overrides(overrides)
        case 93..<96:
            return .instant(world.instant.addingTimeInterval(Double(1 + random.next() % 12) * 3600))
        case 96..<98:  // systems that expired (gone from the list): the flows they opened are cut
            return .setExpired((0..<Int(random.next() % 3)).map { index in system("gone\(index)", [pick(addressPool, &random)], tags: randomTags(&random)) })
        default:  // the receiver's own system: compiled in full
            let host = world.system(named: "recv")!
            return .setSystem(system("recv", host.addresses.map(\.description), tags: chance(50, &random) ? ["web", "t3"] : ["web", "t1"]))
        }
    }

    static func describe(_ edit: PolicyEdit) -> String {
        switch edit {
        case .setSystem(let s): "set system \(s.name) address \(s.addresses.map(\.description)) tags \(s.tags)"
        case .removeSystem(let name): "remove system \(name)"
        case .setPolicy(let p): "set policy \(p.name) senders \(p.senders) reach \(p.reach) allow \(p.allow.map { $0.map(\.description) } ?? []) trust \(p.trust) hours \(p.schedule.activeHours.map { "\($0)" } ?? "-")"
        case .removePolicy(let name): "remove policy \(name)"
        case .overrides(let o): "overrides policies \(o.policies.keys.sorted()) trust \(o.trust.keys.sorted())"
        case .instant(let d): "instant \(ISO8601.string(d))"
        case .setExpired(let systems): "expired \(systems.map { "\($0.name) \($0.tags)" })"
        }
    }

    static func run(seed: UInt64, steps: Int) throws {
        var random = SeededGenerator(seed: seed)
        var world = Self.world(&random)
        var hosts = try ["recv", "gw"].map { name in
            try IncrementalHost(policySet: world.policySet, host: world.system(named: name)!, at: world.instant)
        }
        for host in hosts {
            #expect(host.ruleset == (try world.fullCompile(host: host.hostName, ids: host.policyIDs)), "seed \(seed), start, host \(host.hostName)")
        }
        var serial = 0
        for step in 1...steps {
            let edit = randomEdit(world, &random, serial: &serial)
            world.make(edit)
            for index in hosts.indices {
                let before = hosts[index].ruleset
                let changes = try hosts[index].apply([edit])
                // A set keeps the size it had while its elements fit (`keepingSetSizes`), as the kernel does.
                let fullHost = try world.fullCompiledHost(host: hosts[index].hostName, ids: hosts[index].policyIDs)
                let full = fullHost.ruleset.keepingSetSizes(of: before)
                let where_ = "seed \(seed), step \(step), host \(hosts[index].hostName), edit: \(describe(edit))"
                // What the plan and `status` show of each policy enforced: in force, or why not.
                func shown(_ compiled: CompiledHost) -> [String] { compiled.enforced.map { "\($0.entry.id) \($0.hook) \($0.inactiveReason ?? "in force")" } }
                guard shown(hosts[index].compiled) == shown(fullHost) else {
                    Issue.record("incremental's enforced policies != full compile's; \(where_): \(shown(hosts[index].compiled)) against \(shown(fullHost))")
                    return
                }
                guard hosts[index].ruleset == full else {
                    Issue.record("incremental != full compile; \(where_); first difference: \(firstDifference(hosts[index].ruleset, full))")
                    return
                }
                let applied = changes.applied(to: before)
                guard byName(applied) == byName(full) else {
                    Issue.record("changes applied to the previous ruleset != full compile; \(where_); first difference: \(firstDifference(applied, full))")
                    return
                }
            }
        }
        // The common edits went the incremental way; only the host's own changes fell back.
        let receiver = hosts[0]
        #expect(receiver.incrementalEdits > steps / 2, "seed \(seed): \(receiver.incrementalEdits) incremental, fallbacks \(receiver.fallbacks)")
        #expect(Set(receiver.fallbacks.keys).isSubset(of: ["the host's own system changed"]), "seed \(seed): fallbacks \(receiver.fallbacks)")
    }
}
