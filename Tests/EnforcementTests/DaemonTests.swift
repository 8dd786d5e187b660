import Compiler
import Foundation
import Kernel
import Testing
@testable import Enforcement

/// A dataplane that keeps the plans it is given instead of loading them.
final class RecordingDataplane: Dataplane {
    var plans: [CheckedPlan] = []
    var options: [ApplyOptions] = []
    var flushes = 0
    /// Refuse the next apply, as a kernel would refuse a batch.
    var refuseNext = false
    /// Called in each apply before it returns (a test's clock moving on while the kernel works).
    var onApply: () -> Void = {}

    func apply(_ plan: CheckedPlan, state: StateDirectory, options: ApplyOptions) throws(EnforcementError) -> AppliedGeneration {
        if refuseNext {
            refuseNext = false
            throw .refused(["enforcer: the kernel refused (test)"])
        }
        onApply()
        plans.append(plan)
        self.options.append(options)
        return AppliedGeneration(generation: plans.count, changed: true, report: "applied generation \(plans.count)")
    }

    func flush(_ config: Config, state: StateDirectory) throws(EnforcementError) { flushes += 1 }

    /// The promises it kept: the pending confirms it found overdue (and removed).
    var restored: [PendingConfirm] = []

    func restoreIfOverdue(state: StateDirectory, now: Date) throws(EnforcementError) -> String? {
        guard let pending = PendingConfirm.read(from: state), pending.deadline <= now else { return nil }
        restored.append(pending)
        PendingConfirm.remove(from: state)
        return "restored generation \(pending.previous ?? 0)"
    }

    /// Whether policy `name` grants anything in the plan applied last.
    func active(_ name: String) -> Bool? {
        plans.last?.compiled.enforced.first { $0.entry.policy.name == name }.map { $0.inactiveReason == nil }
    }
}

/// A policy directory in /tmp for one test, removed at the end.
final class PolicyDirectoryFixture {
    let path = NSTemporaryDirectory() + "enforcer-daemon-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    init(config: String = "[policy]\ntime_window_tz = \"utc\"\n", files: [String: String]) throws {
        try FileManager.default.createDirectory(atPath: path + "/rules.d", withIntermediateDirectories: true)
        try (config + "\n[state]\ndirectory = \"\(path)/state\"\n").write(toFile: path + "/enforcer.conf", atomically: true, encoding: .utf8)
        for (name, text) in files { try write(name, text) }
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path + "/rules.d/" + name, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The daemon's handlers, driven by hand: a clock the test sets, events the test sends, and
/// the plans a recording dataplane received. No kernel, no descriptors.
@Suite("Daemon handlers")
struct DaemonTests {
    static let systems = """
        [system] db-1: {
            address: 10.0.0.1
            tags: db
        }
        [system] ws-1: {
            address: 10.0.0.2
            tags: dev
        }
        """
    static let office = """
        [policy] "Dev to DB": {
            senders: dev
            receivers: db
            allow: tcp/5432
            active-hours: mon-fri 08:00-18:00
        }
        """

    /// Monday 2026-11-23 at `time` UTC.
    static func monday(_ time: String) -> Date { ISO8601.date("2026-11-23T\(time)Z")! }

    final class Clock {
        var now: Date
        init(_ now: Date) { self.now = now }
    }

    struct Harness {
        let fixture: PolicyDirectoryFixture
        let clock: Clock
        let dataplane = RecordingDataplane()
        let daemon: Daemon
        let log: LogLines

        init(files: [String: String], at start: Date, config: String? = nil) throws {
            fixture = try config.map { try PolicyDirectoryFixture(config: $0, files: files) } ?? PolicyDirectoryFixture(files: files)
            let clock = Clock(start)
            self.clock = clock
            let log = LogLines()
            self.log = log
            daemon = try Daemon(pipeline: Pipeline(directory: fixture.path), options: .init(system: "db-1"), dataplane: dataplane,
                                now: { clock.now }, log: { log.lines.append($0.message) })
        }
    }

    final class LogLines { var lines: [String] = [] }

    @Test("started before a window: applied inactive, the timer set to the window's start")
    func startsBeforeTheWindow() throws {
        let h = try Harness(files: ["10-base.policy": Self.systems, "20-office.policy": Self.office], at: Self.monday("07:59:30"))
        #expect(h.dataplane.plans.count == 1)
        #expect(h.dataplane.active("Dev to DB") == false)
        #expect(h.daemon.nextWake == Self.monday("08:00:00"))
        #expect(h.daemon.report.nextFlip?.policies == ["Dev to DB"])
        #expect(h.daemon.report.lastReload?.message == "started")
    }

    /// The drift monitor takes an overflow of the kernel's notices for the daemon's own within
    /// two seconds of `lastApplied`: a first table that took nine seconds to commit must count
    /// from its end, or its own notices are "repaired" by a second full replacement.
    @Test("the first apply counts as applied when it ends, not when it began")
    func firstApplyIsDatedAtItsEnd() throws {
        let fixture = try PolicyDirectoryFixture(files: ["10-base.policy": Self.systems])
        let clock = Clock(Self.monday("09:00:00"))
        let dataplane = RecordingDataplane()
        dataplane.onApply = { clock.now += 9 }
        let daemon = try Daemon(pipeline: Pipeline(directory: fixture.path), options: .init(system: "db-1"), dataplane: dataplane,
                                now: { clock.now }, log: { _ in })
        #expect(dataplane.plans.count == 1)
        #expect(daemon.lastApplied == Self.monday("09:00:09"))
    }

    @Test("the timer at the boundary applies the window; a timer a hair early still compiles at the boundary")
    func flipsAtTheBoundary() throws {
        let h = try Harness(files: ["10-base.policy": Self.systems, "20-office.policy": Self.office], at: Self.monday("07:59:30"))
        h.clock.now = Self.monday("07:59:59.990")
        #expect(h.daemon.handle(.timerFired) == .replanned)
        #expect(h.dataplane.plans.count == 2)
        #expect(h.dataplane.plans.last?.instant == Self.monday("08:00:00"))
        #expect(h.dataplane.active("Dev to DB") == true)
        #expect(h.daemon.nextWake == Self.monday("18:00:00"))
        #expect(h.log.lines.last?.hasPrefix("flip (time): 'Dev to DB' activates — applied generation 2") == true)
        // Recorded in the history as a flip, with what flipped as its reason.
        #expect(h.dataplane.options.last?.event == .flip && h.dataplane.options.last?.reason == "time: 'Dev to DB' activates")

        h.clock.now = Self.monday("18:00:00.004")
        h.daemon.handle(.timerFired)
        #expect(h.dataplane.active("Dev to DB") == false)
        #expect(h.daemon.nextWake == ISO8601.date("2026-11-24T08:00:00Z"))
    }

    @Test("a clock set forward recomputes at the new time")
    func clockSet() throws {
        let h = try Harness(files: ["10-base.policy": Self.systems, "20-office.policy": Self.office], at: Self.monday("06:00:00"))
        h.clock.now = Self.monday("12:00:00")
        #expect(h.daemon.handle(.clockSet) == .replanned)
        #expect(h.dataplane.plans.last?.instant == Self.monday("12:00:00"))
        #expect(h.dataplane.active("Dev to DB") == true)
        #expect(h.log.lines.last?.hasPrefix("flip (the wall clock was set)") == true)
    }

    @Test("a broken file is refused and nothing is applied; a fixed one is applied")
    func reloads() throws {
        let h = try Harness(files: ["10-base.policy": Self.systems, "20-office.policy": Self.office], at: Self.monday("09:00:00"))
        try h.fixture.write("30-broken.policy", "[policy] broken: {\n    senders: dev\n    allow: tcp/99999\n}\n")
        #expect(h.daemon.handle(.reload(reason: "SIGHUP")) == .refused)
        #expect(h.dataplane.plans.count == 1)
        #expect(h.daemon.report.lastReload?.ok == false)
        #expect(h.log.lines.contains { $0.contains("30-broken.policy:3:") })
        #expect(h.log.lines.last?.hasPrefix("reload (SIGHUP) refused: ") == true)
        #expect(h.log.lines.last?.hasSuffix("generation - stays live") == true)
        let refusal = try #require(try h.daemon.state.generations.events(kinds: [.refusal]).last)
        #expect(refusal.reason == "SIGHUP" && refusal.summary.hasPrefix("reload refused: 2 errors in "), "\(refusal)")
        #expect(refusal.detail?.contains("30-broken.policy:3:") == true, "\(refusal)")

        try h.fixture.write("30-broken.policy", "[policy] fixed: {\n    senders: dev\n    receivers: db\n    allow: tcp/22\n}\n")
        #expect(h.daemon.handle(.reload(reason: "files changed")) == .reloaded)
        #expect(h.dataplane.plans.count == 2)
        #expect(h.dataplane.active("fixed") == true)
        #expect(h.daemon.report.lastReload?.ok == true)
        #expect(h.dataplane.options.last?.event == .reload && h.dataplane.options.last?.reason == "files changed")
    }

    @Test("a failing expectation refuses the reload; the kernel refusing one keeps the plan")
    func refusals() throws {
        let h = try Harness(files: ["10-base.policy": Self.systems, "20-office.policy": Self.office], at: Self.monday("09:00:00"))
        try h.fixture.write("90-expect.policy", "[expect] no-ssh: {\n    from: ws-1\n    to: db-1\n    allow: tcp/22\n}\n")
        #expect(h.daemon.handle(.reload(reason: "SIGHUP")) == .refused)
        #expect(h.log.lines.last?.hasSuffix("1 expectation failed") == true)
        #expect(h.dataplane.plans.count == 1)

        try FileManager.default.removeItem(atPath: h.fixture.path + "/rules.d/90-expect.policy")
        h.dataplane.refuseNext = true
        try h.fixture.write("30-more.policy", "[policy] more: {\n    senders: dev\n    receivers: db\n    allow: tcp/22\n}\n")
        #expect(h.daemon.handle(.reload(reason: "SIGHUP")) == .refused)
        #expect(h.daemon.plan.policy.policies.count == 1)
        #expect(h.log.lines.last?.contains("the kernel refused (test)") == true)
        // The flip that follows still uses the plan that is live.
        h.clock.now = Self.monday("18:00:00")
        h.daemon.handle(.timerFired)
        #expect(h.dataplane.plans.last?.policy.policies.map(\.name) == ["Dev to DB"])
    }

    @Test("a policy enabled for a while flips off when its grant runs out")
    func overrideRunsOut() throws {
        let off = "[policy] ssh: {\n    senders: dev\n    receivers: db\n    allow: tcp/22\n    enabled: no\n}\n"
        let h = try Harness(files: ["10-base.policy": Self.systems, "20-ssh.policy": off], at: Self.monday("20:00:00"))
        let until = Self.monday("21:00:00")
        #expect(h.dataplane.active("ssh") == false)
        _ = try h.daemon.pipeline.override(policy: "ssh") { _ in EnabledOverride(enabled: true, until: until) }
        #expect(h.daemon.handle(.reload(reason: "SIGHUP")) == .reloaded)
        #expect(h.dataplane.active("ssh") == true)
        #expect(h.daemon.nextWake == until)
        h.clock.now = until
        h.daemon.handle(.timerFired)
        #expect(h.dataplane.active("ssh") == false)
    }

    @Test("stop leaves the ruleset, or flushes it with on_stop = flush")
    func stops() throws {
        let kept = try Harness(files: ["10-base.policy": Self.systems], at: Self.monday("09:00:00"))
        #expect(kept.daemon.handle(.stop(reason: "SIGTERM")) == .stopping)
        kept.daemon.finish(workerSummary: "")
        #expect(kept.dataplane.flushes == 0 && kept.daemon.report.stoppedAt != nil)
        #expect(kept.log.lines.last == "run: stopped (SIGTERM); the ruleset stays in force")

        let flushed = try Harness(files: ["10-base.policy": Self.systems], at: Self.monday("09:00:00"), config: "[run]\non_stop = \"flush\"\n")
        flushed.daemon.handle(.stop(reason: "SIGINT"))
        flushed.daemon.finish(workerSummary: "")
        #expect(flushed.dataplane.flushes == 1)
    }

    @Test("a start that fails its expectations applies nothing")
    func startRefused() throws {
        let fixture = try PolicyDirectoryFixture(files: ["10-base.policy": Self.systems,
                                                         "90-expect.policy": "[expect] x: {\n    from: ws-1\n    to: db-1\n    allow: tcp/22\n}\n"])
        let dataplane = RecordingDataplane()
        #expect(throws: EnforcementError.self) {
            _ = try Daemon(pipeline: Pipeline(directory: fixture.path), options: .init(system: "db-1"), dataplane: dataplane, log: { _ in })
        }
        #expect(dataplane.plans.isEmpty)
    }

    @Test("keeps an apply --confirm promise: one overdue at start, one at its deadline, one confirmed meanwhile")
    func confirmPromises() throws {
        let fixture = try PolicyDirectoryFixture(files: ["10-base.policy": Self.systems])
        let state = StateDirectory(path: fixture.path + "/state")
        try FileManager.default.createDirectory(atPath: state.path, withIntermediateDirectories: true)
        let start = Self.monday("09:00:00")
        func promise(generation: Int, previous: Int, deadline: Date) throws {
            try PendingConfirm(generation: generation, previous: previous, deadline: deadline, table: "enforcer", requestedBy: "test").write(to: state)
        }
        // Broken while no daemon ran: kept before the daemon's own first apply.
        try promise(generation: 4, previous: 3, deadline: start.addingTimeInterval(-5))
        let clock = Clock(start)
        let dataplane = RecordingDataplane()
        let log = LogLines()
        let daemon = try Daemon(pipeline: Pipeline(directory: fixture.path), options: .init(system: "db-1"), dataplane: dataplane,
                                now: { clock.now }, log: { log.lines.append($0.message) })
        #expect(dataplane.restored.map(\.generation) == [4])
        #expect(log.lines.first == "confirm: restored generation 3")
        #expect(daemon.confirmDeadline == nil)

        // Asked for while the daemon runs (`apply --confirm` signals it): kept at the deadline.
        let deadline = start.addingTimeInterval(30)
        try promise(generation: 6, previous: 5, deadline: deadline)
        #expect(daemon.handle(.stateChanged) == .nothing)
        #expect(daemon.confirmDeadline == deadline)
        clock.now = deadline.addingTimeInterval(-0.5)
        daemon.handle(.confirmDue)  // early (a clock set): not yet
        #expect(dataplane.restored.count == 1 && daemon.confirmDeadline == deadline)
        clock.now = deadline
        daemon.handle(.confirmDue)
        #expect(dataplane.restored.map(\.generation) == [4, 6])
        #expect(daemon.confirmDeadline == nil)

        // Confirmed before its deadline: nothing restored when the timer fires.
        try promise(generation: 8, previous: 7, deadline: deadline.addingTimeInterval(30))
        daemon.handle(.stateChanged)
        PendingConfirm.remove(from: state)  // `enforcer confirm`
        clock.now = deadline.addingTimeInterval(31)
        daemon.handle(.confirmDue)
        #expect(dataplane.restored.count == 2 && daemon.confirmDeadline == nil)
        // The daemon's own applies never confirm a promise for the operator.
        #expect(dataplane.options.allSatisfy { !$0.confirmsPending })
    }

    @Test("drift: the live plan is put back whole, or only reported with on_drift = report")
    func drift() throws {
        let h = try Harness(files: ["10-base.policy": Self.systems], at: Self.monday("09:00:00"))
        #expect(h.daemon.handle(.drift(changes: ["rule added to chain input in table inet enforcer by nft (pid 7)"])) == .nothing)
        #expect(h.dataplane.plans.count == 2)
        #expect(h.dataplane.options.last?.replace == true && h.dataplane.options.last?.confirmsPending == false)
        #expect(h.daemon.report.drift?.count == 1 && h.daemon.report.drift?.restored == 1)
        #expect(h.log.lines.contains("drift: rule added to chain input in table inet enforcer by nft (pid 7)"))
        // One drift event in the history (the repair's apply records none of its own).
        #expect(h.dataplane.options.last?.event == nil)
        let restored = try h.daemon.state.generations.events(kinds: [.drift])
        #expect(restored.map(\.summary) == ["1 change by another process; restored as generation 2"])
        #expect(restored.first?.detail == "rule added to chain input in table inet enforcer by nft (pid 7)")

        let reporting = try Harness(files: ["10-base.policy": Self.systems], at: Self.monday("09:00:00"),
                                    config: "[kernel]\non_drift = \"report\"\n")
        reporting.daemon.handle(.drift(changes: ["table deleted in table inet enforcer by nft (pid 7)"]))
        #expect(reporting.dataplane.plans.count == 1)
        #expect(reporting.daemon.report.drift?.count == 1 && reporting.daemon.report.drift?.restored == 0)
        #expect(reporting.log.lines.last == "drift: left as it is ([kernel] on_drift is report)")
        #expect(try reporting.daemon.state.generations.events(kinds: [.drift]).map(\.summary)
                == ["1 change by another process, left as they are ([kernel] on_drift = \"report\")"])
    }
}

extension DaemonTests {
    /// The plan a full compile makes of the policy directory as it is, at `instant`.
    static func fullPlan(_ h: Harness, at instant: Date) throws -> CheckedPlan {
        let policy = try h.daemon.pipeline.load().policy
        return try h.daemon.pipeline.plan(policy, host: try #require(policy.system(named: "db-1")), at: instant,
                                          overrides: h.daemon.state.overrides.read(), ids: h.daemon.state.policyIDs(for: policy))
    }

    @Test("a system's expiry wakes the daemon: it is cut from the ruleset then, incrementally, to the plan a full compile makes")
    func aSystemExpires() throws {
        let expiring = Self.systems.replacingOccurrences(of: "tags: dev\n", with: "tags: dev\n    expires: 2026-11-23T10:00:00Z\n")
        #expect(expiring != Self.systems)
        let h = try Harness(files: ["10-base.policy": expiring, "20-office.policy": Self.office], at: Self.monday("09:00:00"))
        let before = try #require(h.dataplane.plans.last)
        #expect(before.policy.system(named: "ws-1") != nil)
        #expect(h.daemon.nextWake == Self.monday("10:00:00"))
        #expect(h.daemon.report.nextFlip?.policies == ["system ws-1"])

        h.clock.now = Self.monday("10:00:00.002")
        #expect(h.daemon.handle(.timerFired) == .replanned)
        let after = try #require(h.dataplane.plans.last)
        #expect(after.policy.system(named: "ws-1") == nil, "ws-1 is no sender once expired")
        #expect(after.compiled.ruleset == (try Self.fullPlan(h, at: Self.monday("10:00:00.002")).compiled.ruleset))
        #expect(after.compiled.ruleset != before.compiled.ruleset)
        let changes = try #require(after.changes)
        #expect(!changes.changes.compiledInFull && changes.changes.elementsRemoved >= 1, "\(changes.changes.summary)")
        #expect(h.log.lines.last?.hasPrefix("flip (time): system 'ws-1' expired — applied generation 2") == true, "\(h.log.lines)")
        #expect(h.daemon.nextWake == Self.monday("18:00:00"), "the window's end is next")
    }

    @Test("reloads and flips compile only what changed, to the plan a full compile makes, with the changes from the live generation")
    func incrementalPlans() throws {
        let more = "[system] ws-2: {\n    address: 10.0.0.9\n    tags: dev\n}\n"
        let h = try Harness(files: ["10-base.policy": Self.systems, "20-office.policy": Self.office], at: Self.monday("09:00:00"))
        #expect(h.dataplane.plans.last?.changes == nil, "the first plan is compiled in full")

        // A system comes: only its address is new.
        try h.fixture.write("15-more.policy", more)
        #expect(h.daemon.handle(.reload(reason: "files changed")) == .reloaded)
        var applied = try #require(h.dataplane.plans.last)
        #expect(applied.compiled.ruleset == (try Self.fullPlan(h, at: Self.monday("09:00:00")).compiled.ruleset))
        var changes = try #require(applied.changes)
        #expect(changes.base == 1 && !changes.changes.compiledInFull && changes.changes.elementsAdded == 1 && changes.changes.elementsRemoved == 0,
                "\(changes.changes.summary)")

        // The window closes: a flip from generation 2.
        h.clock.now = Self.monday("18:00:00")
        #expect(h.daemon.handle(.timerFired) == .replanned)
        applied = try #require(h.dataplane.plans.last)
        #expect(applied.compiled.ruleset == (try Self.fullPlan(h, at: Self.monday("18:00:00")).compiled.ruleset))
        changes = try #require(applied.changes)
        #expect(changes.base == 2 && !changes.changes.isEmpty)
        #expect(h.daemon.plan.changes == nil, "the live plan keeps no changes to lead a later apply astray")

        // The kernel refuses a reload: the next plan is the full compile's, with no changes to
        // go by (no generation holds what the refused one compiled), and without the refused policy.
        h.dataplane.refuseNext = true
        try h.fixture.write("30-more.policy", "[policy] more: {\n    senders: dev\n    receivers: db\n    allow: tcp/22\n}\n")
        #expect(h.daemon.handle(.reload(reason: "SIGHUP")) == .refused)
        try FileManager.default.removeItem(atPath: h.fixture.path + "/rules.d/30-more.policy")
        h.clock.now = Self.monday("19:00:00")
        h.daemon.handle(.clockSet)
        applied = try #require(h.dataplane.plans.last)
        #expect(applied.policy.policies.map(\.name) == ["Dev to DB"])
        #expect(applied.compiled.ruleset == (try Self.fullPlan(h, at: Self.monday("19:00:00")).compiled.ruleset))
        #expect(applied.changes == nil)

        // enforcer.conf changes: compiled in full.
        try ("[policy]\ntime_window_tz = \"utc\"\n[kernel]\ntable = \"other\"\n[state]\ndirectory = \"\(h.fixture.path)/state\"\n")
            .write(toFile: h.fixture.path + "/enforcer.conf", atomically: true, encoding: .utf8)
        #expect(h.daemon.handle(.reload(reason: "SIGHUP")) == .reloaded)
        applied = try #require(h.dataplane.plans.last)
        #expect(applied.changes == nil && applied.compiled.ruleset.table.name == "other")
    }
}
