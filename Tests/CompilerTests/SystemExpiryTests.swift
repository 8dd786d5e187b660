import Foundation
import Testing
@testable import Compiler

/// `expires:` on a system: from that instant it is no sender anywhere, as if its block were
/// gone; until then nothing about it changes.
struct SystemExpiryTests {
    static let policy = """
        [system] srv-1: {
            address: 10.0.0.1
            tags: servers
        }
        [system] ws-1: {
            address: 10.0.1.1
            tags: workstations
            expires: 2026-12-01T12:00:00Z
        }
        [system] ws-2: {
            address: 10.0.1.2
            tags: workstations
            expires: 2026-12-01T14:30
        }
        [policy] ssh: {
            senders: workstations
            receivers: servers
            allow: tcp/22
        }
        """

    static func date(_ text: String) -> Date { ISO8601.date(text)! }

    static func loaded() throws -> PolicySet {
        // Times without a zone are in enforcer.conf's zone (UTC here).
        try #require(PolicyFixture(policy: policy).load().policySet)
    }

    @Test func anExpiryIsReadInTheConfiguredZone() throws {
        let set = try Self.loaded()
        #expect(set.system(named: "ws-1")?.expires == Self.date("2026-12-01T12:00:00Z"))
        #expect(set.system(named: "ws-2")?.expires == Self.date("2026-12-01T14:30:00Z"))
        #expect(set.system(named: "srv-1")?.expires == nil)
    }

    @Test("who may reach srv-1 over SSH, before, at and after each expiry", arguments: [
        ("2026-12-01T11:59:59Z", true, true, "2026-12-01T12:00:00Z"),
        ("2026-12-01T12:00:00Z", false, true, "2026-12-01T14:30:00Z"),
        ("2026-12-01T14:29:59Z", false, true, "2026-12-01T14:30:00Z"),
        ("2026-12-01T14:30:00Z", false, false, nil),
    ] as [(String, Bool, Bool, String?)])
    func sendersGoAtTheirExpiry(_ at: String, _ first: Bool, _ second: Bool, _ next: String?) throws {
        let set = try Self.loaded()
        let instant = Self.date(at)
        let graph = AccessGraph(set.systemsInForce(at: instant))
        func allowed(_ from: String) throws -> Bool {
            FlowEvaluator(graph: graph).decide(FlowQuery(from: try IPAddress.parse(from), to: try IPAddress.parse("10.0.0.1"), proto: .tcp, port: 22, at: instant)).allowed
        }
        #expect(try allowed("10.0.1.1") == first)
        #expect(try allowed("10.0.1.2") == second)
        #expect(set.nextSystemExpiry(after: instant) == next.map(Self.date))
        #expect(set.systemsInForce(at: instant).systems.map(\.name) == ["srv-1"] + (first ? ["ws-1"] : []) + (second ? ["ws-2"] : []))
    }

    @Test func anExpiredSendersFlowsAreCutByTheReceiver() throws {
        let set = try Self.loaded()
        let srv = try #require(set.system(named: "srv-1"))
        func compiled(at text: String) throws -> (Ruleset, AccessGraph) {
            let graph = AccessGraph(set.systemsInForce(at: Self.date(text)))
            return (try HostCompiler(graph: graph, system: srv, at: Self.date(text)).compile().ruleset, graph)
        }
        let (before, _) = try compiled(at: "2026-12-01T11:00:00Z")
        #expect(before.table.set(named: "revoked_v4")?.elements.isEmpty != false, "nothing to cut before an expiry")
        let (after, graph) = try compiled(at: "2026-12-01T13:00:00Z")
        let mark = MarkLayout(mask: set.config.markMask).policyMark(try #require(graph.entries.first?.id))
        let revoked = try #require(after.table.set(named: "revoked_v4"))
        #expect(revoked.elements.map(\.key) == [[.addresses(try AddressBlock.parse("10.0.1.1").range), .mark(mark)]])
        let text = NFTText.render(after)
        #expect(text.contains("ip saddr . ct mark & 0x00fffc00 @revoked_v4 reject with tcp reset"), "\(text)")
        #expect(!text.contains("10.0.1.1 : jump"), "ws-1 is no sender")
        #expect(text.contains("10.0.1.2 : jump"), "ws-2 still is")
    }

    /// ws-1 expires; ws-3 holds the same address (given again to another host) and is in force.
    static let reused = """
        [system] srv-1: {
            address: 10.0.0.1
            tags: servers
        }
        [system] ws-1: {
            address: 10.0.1.1, 10.0.1.7
            tags: workstations
            expires: 2026-12-01T12:00:00Z
        }
        [system] ws-3: {
            address: 10.0.1.1
            tags: workstations
        }
        [policy] ssh: {
            senders: workstations
            receivers: servers
            allow: tcp/22
        }
        [policy] back: {
            senders: servers
            receivers: workstations
            allow: tcp/8080
        }
        """

    @Test func anAddressASenderInForceHoldsIsNotCut() throws {
        let set = try #require(PolicyFixture(policy: Self.reused).load().policySet)
        let at = Self.date("2026-12-01T13:00:00Z")
        let graph = AccessGraph(set.systemsInForce(at: at))
        let ruleset = try HostCompiler(graph: graph, system: try #require(set.system(named: "srv-1")), at: at).compile().ruleset
        let mark = MarkLayout(mask: set.config.markMask).policyMark(try #require(graph.entries.first?.id))
        // Only the address ws-1 alone held: ws-3's flows from 10.0.1.1 are ws-3's own.
        #expect(ruleset.table.set(named: "revoked_v4")?.elements.map(\.key) == [[.addresses(try AddressBlock.parse("10.0.1.7").range), .mark(mark)]])
        #expect(NFTText.render(ruleset).contains("10.0.1.1 : jump"), "ws-3 is a sender")
    }

    @Test func anExpiredHostKeepsEnforcingWhatItReceives() throws {
        let set = try #require(PolicyFixture(policy: Self.reused).load().policySet)
        let at = Self.date("2026-12-01T13:00:00Z")
        let host = try #require(set.system(named: "ws-1"))
        // Compiled for ws-1 itself, the policy keeps it: it still receives 'back' from srv-1.
        let own = set.systemsInForce(at: at, keeping: "ws-1")
        #expect(own.system(named: "ws-1") != nil && own.expired.isEmpty)
        let ruleset = try HostCompiler(graph: AccessGraph(own), system: host, at: at).compile().ruleset
        #expect(NFTText.render(ruleset).contains("10.0.0.1 : jump"), "srv-1 still reaches ws-1 on 8080")
        // For any other host, ws-1 is gone.
        #expect(set.systemsInForce(at: at, keeping: "srv-1").system(named: "ws-1") == nil)
    }

    @Test func whatExpiresBetweenTwoInstantsIsNamed() throws {
        let set = try Self.loaded()
        #expect(set.systemsExpiring(after: Self.date("2026-12-01T11:00:00Z"), through: Self.date("2026-12-01T12:00:00Z")) == ["ws-1"])
        #expect(set.systemsExpiring(after: Self.date("2026-12-01T12:00:00Z"), through: Self.date("2026-12-02T00:00:00Z")) == ["ws-2"])
        #expect(set.systemsExpiring(after: Self.date("2026-12-02T00:00:00Z"), through: Self.date("2027-01-01T00:00:00Z")).isEmpty)
    }

    @Test func anEditOfTheExpiryAloneIsNoEditOfTheCompile() throws {
        let before = try Self.loaded()
        let after = try #require(PolicyFixture(policy: Self.policy.replacingOccurrences(of: "2026-12-01T12:00:00Z", with: "2027-01-01T00:00:00Z")).load().policySet)
        #expect(before.edits(to: after)?.isEmpty == true)
        // The expiry itself is two edits, the removal of that system and the list of those
        // expired (whose flows are cut): the daemon compiles them incrementally.
        let edits = before.systemsInForce(at: Self.date("2026-12-01T11:00:00Z")).edits(to: before.systemsInForce(at: Self.date("2026-12-01T13:00:00Z")))
        #expect(edits?.count == 2)
        if case .removeSystem(let name)? = edits?.first { #expect(name == "ws-1") } else { Issue.record("\(String(describing: edits))") }
        if case .setExpired(let systems)? = edits?.last { #expect(systems.map(\.name) == ["ws-1"]) } else { Issue.record("\(String(describing: edits))") }
    }
}
