import Foundation
import Testing
@testable import Compiler

/// The daemon's schedule: from any instant (the injected clock), the next flip of the
/// policies a host enforces, and at that flip which policies change state. Chained, this is
/// exactly the sequence of applies `enforcer run` makes.
struct FlipScheduleTests {
    static let policy = """
        [system] db: {
            address: 10.0.0.1
            tags: db
        }
        [system] ops: {
            address: 10.0.0.2
            tags: ops
        }
        [policy] night: {
            senders: ops
            receivers: db
            allow: tcp/22
            active-hours: daily 22:00-06:00
        }
        [policy] office-ny: {
            senders: ops
            receivers: db
            allow: tcp/5432
            active-hours: mon-fri 08:00-18:00
            timezone: America/New_York
        }
        [policy] weekend-wrap: {
            senders: ops
            receivers: db
            allow: tcp/8080
            active-hours: fri 22:00-02:00
        }
        [policy] temporary: {
            senders: ops
            receivers: db
            allow: tcp/9000
            expires: 2026-11-03T12:30:00Z
        }
        [policy] switched-off: {
            senders: ops
            receivers: db
            allow: tcp/9100
            enabled: no
            active-hours: daily 09:00-10:00
        }
        """

    /// Flips from `from` for `count` steps, each as "instant policy on|off".
    static func flips(from: String, count: Int) throws -> [String] {
        let set = try PolicyFixture(policy: policy).policySet()
        let graph = AccessGraph(set)
        let db = try #require(set.system(named: "db"))
        var cursor = instant(from)
        var current = try HostCompiler(graph: graph, system: db, at: cursor).compile()
        var out: [String] = []
        while out.count < count, let next = current.nextFlip(after: cursor) {
            let compiled = try HostCompiler(graph: graph, system: db, at: next).compile()
            let before = Dictionary(current.enforced.map { ($0.entry.policy.name, $0.inactiveReason == nil) }, uniquingKeysWith: { a, _ in a })
            for item in compiled.enforced where before[item.entry.policy.name] != (item.inactiveReason == nil) {
                out.append("\(ISO8601.string(next)) \(item.entry.policy.name) \(item.inactiveReason == nil ? "on" : "off")")
            }
            #expect(RulesetDiff(from: current.ruleset, to: compiled.ruleset).lines.isEmpty == false, "a flip at \(next) changes the ruleset")
            current = compiled
            cursor = next
        }
        return out
    }

    @Test func aWeekAroundTheEndOfDST() throws {
        // Sunday 2026-11-01 02:00 EDT → 01:00 EST: New York is UTC-4 before, UTC-5 after.
        #expect(try Self.flips(from: "2026-10-29T23:00:00Z", count: 14) == [
            "2026-10-30T06:00:00Z night off",
            "2026-10-30T12:00:00Z office-ny on",          // Fri 08:00 EDT
            "2026-10-30T22:00:00Z night on",
            "2026-10-30T22:00:00Z office-ny off",         // Fri 18:00 EDT
            "2026-10-30T22:00:00Z weekend-wrap on",
            "2026-10-31T02:00:00Z weekend-wrap off",      // Friday's window ends on Saturday
            "2026-10-31T06:00:00Z night off",
            "2026-10-31T22:00:00Z night on",
            "2026-11-01T06:00:00Z night off",
            "2026-11-01T22:00:00Z night on",
            "2026-11-02T06:00:00Z night off",
            "2026-11-02T13:00:00Z office-ny on",          // Mon 08:00 EST
            "2026-11-02T22:00:00Z night on",
            "2026-11-02T23:00:00Z office-ny off",         // Mon 18:00 EST
        ])
    }

    @Test func anExpiryIsTheLastFlipOfItsPolicy() throws {
        let flips = try Self.flips(from: "2026-11-03T07:00:00Z", count: 4)
        #expect(flips == [
            "2026-11-03T12:30:00Z temporary off",
            "2026-11-03T13:00:00Z office-ny on",
            "2026-11-03T22:00:00Z night on",
            "2026-11-03T23:00:00Z office-ny off",
        ])
        #expect(try Self.flips(from: "2026-11-04T00:00:00Z", count: 40).allSatisfy { !$0.contains("temporary") })
    }

    @Test func theStartOfDSTShiftsTheUTCBoundaries() throws {
        // Sunday 2026-03-08 02:00 EST → 03:00 EDT.
        let flips = try Self.flips(from: "2026-03-06T12:00:00Z", count: 12).filter { $0.contains("office-ny") }
        #expect(flips == [
            "2026-03-06T13:00:00Z office-ny on",   // Fri 08:00 EST
            "2026-03-06T23:00:00Z office-ny off",
            "2026-03-09T12:00:00Z office-ny on",   // Mon 08:00 EDT
            "2026-03-09T22:00:00Z office-ny off",
        ])
    }

    @Test func aDisabledPolicyNeverFlips() throws {
        #expect(try Self.flips(from: "2026-11-02T00:00:00Z", count: 60).allSatisfy { !$0.contains("switched-off") })
    }
}
