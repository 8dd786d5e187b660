import Foundation
import Testing
@testable import Compiler

/// `enforcer policy enable|disable` over the file's `enabled`: when the policy is in force,
/// when it flips next, and what the compiled ruleset puts where.
struct OverrideTests {
    static let utc = TimeZone(identifier: "UTC")!
    static let hours = try! TimeSpec.parse("daily 08:00-18:00")

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var schedule: Schedule
        /// instant → in force?
        var states: [(String, Bool)]
        var nextFlipAfter: String
        var nextFlip: String?
        var testDescription: String { name }
    }

    static func schedule(enabled: Bool = true, hours: TimeSpec? = nil, expires: String? = nil, _ override: EnabledOverride?) -> Schedule {
        Schedule(activeHours: hours, timeZone: utc, expires: expires.map(instant), enabled: enabled, override: override)
    }

    static let cases: [Case] = [
        Case(name: "enable --for on a file-disabled policy", schedule: schedule(enabled: false, EnabledOverride(enabled: true, until: instant("2026-11-23T12:00:00Z"))),
             states: [("2026-11-23T11:59:59Z", true), ("2026-11-23T12:00:00Z", false)],
             nextFlipAfter: "2026-11-23T10:00:00Z", nextFlip: "2026-11-23T12:00:00Z"),
        Case(name: "after the --for ran out nothing flips any more", schedule: schedule(enabled: false, EnabledOverride(enabled: true, until: instant("2026-11-23T12:00:00Z"))),
             states: [("2026-11-24T12:00:00Z", false)], nextFlipAfter: "2026-11-23T12:00:00Z", nextFlip: nil),
        Case(name: "enable for good", schedule: schedule(enabled: false, EnabledOverride(enabled: true)),
             states: [("2030-01-01T00:00:00Z", true)], nextFlipAfter: "2026-11-23T10:00:00Z", nextFlip: nil),
        Case(name: "enable --for keeps the active hours", schedule: schedule(enabled: false, hours: hours, EnabledOverride(enabled: true, until: instant("2026-11-24T12:00:00Z"))),
             states: [("2026-11-23T07:00:00Z", false), ("2026-11-23T09:00:00Z", true), ("2026-11-23T19:00:00Z", false), ("2026-11-24T11:00:00Z", true), ("2026-11-24T13:00:00Z", false)],
             nextFlipAfter: "2026-11-23T19:00:00Z", nextFlip: "2026-11-24T08:00:00Z"),
        Case(name: "the --for ends inside the window", schedule: schedule(enabled: false, hours: hours, EnabledOverride(enabled: true, until: instant("2026-11-24T12:00:00Z"))),
             states: [], nextFlipAfter: "2026-11-24T09:00:00Z", nextFlip: "2026-11-24T12:00:00Z"),
        Case(name: "disable --after", schedule: schedule(EnabledOverride(enabled: false, from: instant("2026-11-23T10:30:00Z"))),
             states: [("2026-11-23T10:29:59Z", true), ("2026-11-23T10:30:00Z", false), ("2027-01-01T00:00:00Z", false)],
             nextFlipAfter: "2026-11-23T10:00:00Z", nextFlip: "2026-11-23T10:30:00Z"),
        Case(name: "disable now is off for good", schedule: schedule(hours: hours, EnabledOverride(enabled: false)),
             states: [("2026-11-23T09:00:00Z", false)], nextFlipAfter: "2026-11-23T07:00:00Z", nextFlip: nil),
        Case(name: "the file's expiry still ends an enabled policy", schedule: schedule(enabled: false, expires: "2026-11-23T11:00:00Z", EnabledOverride(enabled: true)),
             states: [("2026-11-23T10:59:00Z", true), ("2026-11-23T11:00:00Z", false)], nextFlipAfter: "2026-11-23T10:00:00Z", nextFlip: "2026-11-23T11:00:00Z"),
    ]

    @Test(arguments: cases)
    func inForceAndNextFlip(_ c: Case) {
        for (at, expected) in c.states {
            #expect((c.schedule.inactiveReason(at: instant(at)) == nil) == expected, "\(c.name) at \(at): \(c.schedule.inactiveReason(at: instant(at)) ?? "in force")")
        }
        #expect(c.schedule.nextFlip(after: instant(c.nextFlipAfter)) == c.nextFlip.map(instant), "\(c.name)")
    }

    static let policy = """
        [system] db: {
            address: 10.0.0.1
            tags: db
        }
        [system] ops: {
            address: 10.0.0.2
            tags: ops
        }
        [policy] break-glass: {
            senders: ops
            receivers: db
            allow: tcp/22
            enabled: no
        }
        [policy] always: {
            senders: ops
            receivers: db
            allow: tcp/5432
        }
        """

    @Test func aTimedGrantIsInTheClassMapsButNotInActivePolicies() throws {
        let file = try PolicyFixture(policy: Self.policy).policySet()
        let until = instant("2026-11-23T12:00:00Z")
        let set = RuntimeOverrides(policies: ["break-glass": EnabledOverride(enabled: true, until: until)]).applied(to: file)
        let graph = AccessGraph(set)
        let db = try #require(set.system(named: "db"))
        let compiled = try HostCompiler(graph: graph, system: db, at: instant("2026-11-23T10:00:00Z")).compile()
        let id = try #require(graph.entries.first { $0.policy.name == "break-glass" }?.id)
        let layout = MarkLayout(mask: set.config.markMask)
        #expect(compiled.timedGrants.map(\.policy) == ["break-glass"])
        #expect(compiled.timedGrants.first?.until == until)
        let active = try #require(compiled.ruleset.table.set(named: "active_policies"))
        #expect(!active.elements.contains { $0.key == [.mark(layout.policyMark(id))] }, "a timed grant must run out in the kernel, not stay in active_policies")
        #expect(active.elements.count == 1, "'always' stays in active_policies")
        #expect(compiled.ruleset.table.set(named: "timed_policies")?.flags.contains(.timeout) == true)
        let text = NFTText.render(compiled.ruleset)
        #expect(text.contains("tcp . 22 : goto grant_\(id)"), "the class map grants tcp/22 while the override holds:\n\(text)")
        // After it ran out, nothing of it is left.
        let later = try HostCompiler(graph: graph, system: db, at: until).compile()
        #expect(later.timedGrants.isEmpty)
        #expect(!NFTText.render(later.ruleset).contains("tcp . 22 : goto"))
        #expect(RuntimeOverrides(policies: ["break-glass": EnabledOverride(enabled: true, until: until)]).pruned(at: until).policies.isEmpty)
    }

    @Test func trustGrantsRunOutAndRevokesAreRemembered() throws {
        let until = instant("2026-11-23T12:00:00Z")
        let overrides = RuntimeOverrides(trust: [
            "ops": ["mfa": TrustRecord(granted: true, until: until)],
            "dev": ["mfa": TrustRecord(granted: false), "vpn": TrustRecord(granted: true)],
        ])
        let before = instant("2026-11-23T11:00:00Z")
        #expect(overrides.trustGrants(at: before).granted == ["ops": ["mfa"], "dev": ["vpn"]])
        #expect(overrides.revokedTrust(at: before) == ["dev": ["mfa"]])
        #expect(overrides.nextTrustChange(after: before) == until)
        #expect(overrides.trustGrants(at: until).granted == ["dev": ["vpn"]], "a grant --for ends at its instant")
        #expect(overrides.revokedTrust(at: until) == ["ops": ["mfa"], "dev": ["mfa"]], "and then counts as revoked: its flows are cut")
        #expect(overrides.nextTrustChange(after: until) == nil)
        // A state file written before trust existed still reads.
        let old = try JSONDecoder().decode(RuntimeOverrides.self, from: Data(#"{"policies": {}}"#.utf8))
        #expect(old.trust.isEmpty)
    }

    @Test func aRevokedSenderIsOutOfTheClassMapsAndInTheRevokedSet() throws {
        let file = try PolicyFixture(policy: """
            [system] db: {
                address: 10.0.0.1
                tags: db
            }
            [system] ops-1: {
                address: 10.0.0.2
                tags: ops
            }
            [system] ops-2: {
                address: 10.0.1.0/24
                tags: ops
            }
            [policy] admin: {
                senders: ops
                receivers: db
                allow: tcp/22
                trust: mfa
            }
            """).policySet()
        let now = instant("2026-11-23T10:00:00Z")
        let overrides = RuntimeOverrides(trust: ["ops-1": ["mfa": TrustRecord(granted: true)], "ops-2": ["mfa": TrustRecord(granted: false)]])
        let graph = AccessGraph(file, trust: overrides.trustGrants(at: now), revoked: overrides.revokedTrust(at: now))
        let compiled = try HostCompiler(graph: graph, system: try #require(file.system(named: "db")), at: now).compile()
        let mark = MarkLayout(mask: file.config.markMask).policyMark(try #require(graph.entries.first?.id))
        let revoked = try #require(compiled.ruleset.table.set(named: "revoked_v4"))
        #expect(revoked.elements.map(\.key) == [[.addresses(try AddressBlock.parse("10.0.1.0/24").range), .mark(mark)]])
        let text = NFTText.render(compiled.ruleset)
        #expect(text.contains("10.0.0.2 : jump"), "the trusted sender is classified")
        #expect(!text.contains("10.0.1.0/24 : jump") && !text.contains("10.0.1.0-10.0.1.255 : jump"), "the revoked one is not")
        #expect(text.contains("ip saddr . ct mark & 0x00fffc00 @revoked_v4 reject with tcp reset"), "\(text)")
    }
}
