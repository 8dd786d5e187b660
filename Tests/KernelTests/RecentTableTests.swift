import Compiler
import Foundation
import Testing
@testable import Kernel

/// The split of a ruleset between the main table and the recent table: what each holds when
/// some senders live in the recent table.
@Suite struct RecentTableTests {
    static func element(_ ruleset: Ruleset, map: String, address: String) throws -> SetElement {
        let target = try IPAddress.parse(address)
        return try #require(ruleset.table.set(named: map)?.elements.first { element in
            if case .addresses(let range) = element.key[0] { return range.first == target && range.last == target }
            return false
        })
    }


    /// Two classes gain a port: the small one moves whole to the recent table, the one over
    /// `classMoveLimit` senders, and a class with a range among its senders, stay in the main
    /// table; a class whose maps only lose elements does not move.
    @Test func onlySmallClassesGainingAJumpMove() throws {
        func table(gaining: Bool) throws -> Table {
            var hosts = SetElements()
            hosts.appendHost(try IPAddress.parse("10.0.0.1"), verdict: .jump("in_small"))
            for n in 0..<(RecentTable.classMoveLimit + 1) {
                hosts.appendHost(IPAddress(v4: 0x0b00_0000 + UInt32(n)), verdict: .jump("in_large"))
            }
            hosts.appendHost(try IPAddress.parse("10.0.0.2"), verdict: .jump("in_ranged"))
            hosts.appendHost(try IPAddress.parse("10.0.0.3"), verdict: .jump("in_losing"))
            let ranges = [SetElement([.addresses(try AddressRange(first: IPAddress.parse("12.0.0.0"), last: IPAddress.parse("12.0.0.255")))], verdict: .jump("in_ranged"))]
            var sets = [NamedSet(name: "in_hosts_v4", key: [.ipv4Address], data: .verdict, elements: hosts, role: .senderHostsMap),
                        NamedSet(name: "in_senders_v4", key: [.ipv4Address], data: .verdict, flags: .interval, elements: ranges, role: .senderRangesMap)]
            var chains: [Chain] = []
            for name in ["in_small", "in_large", "in_ranged", "in_losing"] {
                var ports = [SetElement([.proto(.tcp), .ports(PortRange(22))], verdict: .goto("grant_1"))]
                if gaining && name != "in_losing" { ports.append(SetElement([.proto(.tcp), .ports(PortRange(443))], verdict: .goto("grant_1"))) }
                if !gaining && name == "in_losing" { ports.append(SetElement([.proto(.tcp), .ports(PortRange(80))], verdict: .goto("grant_1"))) }
                sets.append(NamedSet(name: name + "_ports", key: [.inetProtocol, .inetService], data: .verdict, flags: .interval, elements: ports))
                chains.append(Chain(name: name, rules: [Rule([.verdictMap([.l4Protocol, .transportDestinationPort], map: name + "_ports")])]))
            }
            return Table(family: .inet, name: "enforcer", sets: sets, chains: chains)
        }
        let moved = RecentTable.movedClasses(from: try table(gaining: false), to: try table(gaining: true), recent: [:])
        #expect(moved.keys.sorted() == ["in_hosts_v4"])
        #expect(moved["in_hosts_v4"]?.map(\.verdict) == [.jump("in_small")], "\(moved)")
        // Nothing gained: nothing moves.
        #expect(RecentTable.movedClasses(from: try table(gaining: true), to: try table(gaining: true), recent: [:]).isEmpty)
    }

    @Test func theMainTableLosesTheMovedSendersAndClassesNothingElseUses() throws {
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        let full = Snapshot(ruleset)
        // sre-1 (10.10.1.31, fd00:10:1::31) is the only sender of its class.
        let v4 = try Self.element(ruleset, map: "in_hosts_v4", address: "10.10.1.31")
        let v6 = try Self.element(ruleset, map: "in_hosts_v6", address: "fd00:10:1::31")
        guard case .jump(let sreClass)? = v4.verdict else { Issue.record("sre-1 does not jump to a class"); return }

        // One of its two addresses moves: the class stays for the other.
        let oneMoved = RecentTable.main(of: full, without: ["in_hosts_v4": Array(RulesetEncoder.kernelElements([v4], of: ruleset.table.set(named: "in_hosts_v4")!))])
        #expect(oneMoved.elements["in_hosts_v4"]?.count == (full.elements["in_hosts_v4"]?.count ?? 0) - 1)
        #expect(oneMoved.elements["in_hosts_v6"] == full.elements["in_hosts_v6"])
        #expect(oneMoved.table.chain(named: sreClass) != nil)

        // Both move: the class chain and its maps go; grant chains and other classes stay.
        let bothMoved = RecentTable.main(of: full, without: [
            "in_hosts_v4": Array(RulesetEncoder.kernelElements([v4], of: ruleset.table.set(named: "in_hosts_v4")!)),
            "in_hosts_v6": Array(RulesetEncoder.kernelElements([v6], of: ruleset.table.set(named: "in_hosts_v6")!)),
        ])
        #expect(bothMoved.table.chain(named: sreClass) == nil)
        #expect(bothMoved.table.set(named: sreClass + "_ports") == nil && bothMoved.elements[sreClass + "_ports"] == nil)
        #expect(bothMoved.table.set(named: sreClass + "_protocols") == nil)
        let grants = ruleset.table.chains.map(\.name).filter { $0.hasPrefix("grant_") }
        #expect(!grants.isEmpty && grants.allSatisfy { bothMoved.table.chain(named: $0) != nil })
        let otherClasses = ruleset.table.chains.map(\.name).filter { $0.hasPrefix("in_") && $0 != sreClass }
        #expect(!otherClasses.isEmpty && otherClasses.allSatisfy { bothMoved.table.chain(named: $0) != nil })

        // Nothing moves: the main table is the whole ruleset.
        #expect(RecentTable.main(of: full, without: [:]) == full)
    }

    @Test func theRecentTableHoldsTheSendersAndWhatTheyReachOnly() throws {
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        var moved = try Self.element(ruleset, map: "in_hosts_v4", address: "10.10.1.31")
        moved.key = [.addresses(AddressRange(first: try IPAddress.parse("10.10.1.32"), last: try IPAddress.parse("10.10.1.32")))]
        guard case .jump(let sreClass)? = moved.verdict else { Issue.record("no class"); return }
        let recent = try #require(RecentTable.table(for: ruleset, recent: ["in_hosts_v4": [moved]]))
        let table = recent.table
        #expect(table.name == "enforcer_recent" && table.family == ruleset.table.family)

        let input = try #require(table.chain(named: "input"))
        #expect(input.base == BaseChain(hook: .input, priority: -1, policy: .accept))
        #expect(table.chain(named: "forward") == nil, "db-1 routes nothing")
        let texts = input.rules.map(NFTText.text)
        #expect(texts.first == "ct direction reply accept")
        #expect(texts.contains { $0.hasPrefix("ct mark & 0x00fffc00 @active_policies accept") })
        #expect(texts.contains { $0.hasPrefix("ct mark & 0x00fffc00 @timed_policies accept") })
        #expect(texts.last == "ip saddr vmap @in_hosts_v4")

        #expect(table.set(named: "in_hosts_v4")?.elements == [moved])
        #expect(table.set(named: "in_hosts_v6") == nil && table.set(named: "in_senders_v4") == nil && table.set(named: "revoked_v4") == nil)
        #expect(table.set(named: "active_policies") == ruleset.table.set(named: "active_policies"))
        #expect(table.chain(named: sreClass) == ruleset.table.chain(named: sreClass))
        #expect(table.set(named: sreClass + "_ports") == ruleset.table.set(named: sreClass + "_ports"))
        // Exactly the class and the grant chains its maps go to.
        let reached = Set((Array(ruleset.table.set(named: sreClass + "_ports")!.elements) + ruleset.table.set(named: sreClass + "_protocols")!.elements)
            .compactMap { element -> String? in if case .goto(let chain)? = element.verdict { chain } else { nil } })
        #expect(Set(table.chains.filter { $0.base == nil }.map(\.name)) == reached.union([sreClass]))

        #expect(RecentTable.table(for: ruleset, recent: [:]) == nil)
        #expect(RecentTable.table(for: ruleset, recent: ["in_hosts_v4": []]) == nil)
    }
}
