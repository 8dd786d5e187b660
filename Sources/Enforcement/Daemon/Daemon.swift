import Compiler
import Foundation
import Kernel
import NFQueue

/// `enforcer run`'s decisions, without its descriptors: what to apply when the policy is
/// loaded, when a flip is due, when the wall clock was set or a reload is asked for, and
/// what to report. Every change of the kernel state goes through the pipeline and the
/// dataplane, so each is one transaction and a refused one leaves the previous generation
/// live. A test drives it with a clock and events and reads the plans a recording
/// dataplane received; `DaemonProcess` drives it from the real sources.
public final class Daemon {
    public struct Options: Sendable {
        public var system: String?
        /// Apply even where the SSH guard objects.
        public var force: Bool
        public init(system: String? = nil, force: Bool = false) {
            self.system = system
            self.force = force
        }
    }

    /// What a handled event changed, for the process to follow (rebind the worker, rewatch
    /// the files, rearm the timer).
    public enum Outcome: Equatable, Sendable {
        case nothing
        /// The same policy at a new instant (a flip).
        case replanned
        /// A new policy is live.
        case reloaded
        /// The policy did not change (a refused reload).
        case refused
        case stopping
    }

    public let pipeline: Pipeline
    public let options: Options
    public let state: StateDirectory
    private let dataplane: any Dataplane
    private let now: () -> Date
    private let log: (LogEntry) -> Void

    /// The plan live now.
    public private(set) var plan: CheckedPlan
    /// What `enforcer status` reads.
    public internal(set) var report: DaemonReport
    /// When the plan changes next by itself (nil: never); the flip timer is set to it.
    public private(set) var nextWake: Date?
    /// The deadline of an `apply --confirm` waiting (nil: none); the daemon keeps its promise.
    public private(set) var confirmDeadline: Date?
    public private(set) var stopReason: String?
    /// The compile kept between changes (see `IncrementalHost`): a reload, flip or override
    /// change recompiles only what it touches. Nil after a failure, until a full compile.
    private var incremental: IncrementalHost?
    /// The policy `incremental` was last compiled from (not always the live plan's: an apply
    /// may have been refused since).
    private var incrementalSource: PolicySet?
    /// The generation that holds `incremental`'s ruleset (nil: none does, as after a refused
    /// apply); the next plan's changes are from it.
    private var incrementalGeneration: Int?

    /// Loads, checks and applies the policy. Any failure is thrown and nothing is applied.
    public init(pipeline: Pipeline, options: Options, dataplane: any Dataplane, now: @escaping () -> Date = Date.init,
                log: @escaping (LogEntry) -> Void = Log.emit) throws(EnforcementError) {
        self.pipeline = pipeline
        self.options = options
        self.dataplane = dataplane
        self.now = now
        self.log = log
        let instant = now()
        let policy = try pipeline.load().policy
        // The first apply records the whole policy source; its digests are worked out while
        // the policy compiles (a fleet agent's cold start waits for that record).
        dataplane.willApply(from: pipeline.source.location)
        let host = try pipeline.host(options.system, in: policy)
        state = pipeline.state(for: policy)
        var compiled: IncrementalHost?
        plan = try pipeline.plan(policy, from: nil, incremental: &compiled, base: nil, system: host, at: instant, overrides: state.overrides.read(),
                                 ids: state.policyIDs(for: policy))
        incremental = compiled
        incrementalSource = policy
        let standardized = (pipeline.source as? PolicyDirectory)?.standardizedPath ?? pipeline.source.location
        report = DaemonReport(pid: getpid(), startedAt: instant, system: host.name, policyDirectory: standardized)
        // A promise broken while no daemon ran (at boot, say) is kept before anything else.
        if let restored = try dataplane.restoreIfOverdue(state: state, now: instant) { log(.warning("confirm: " + restored, ["event": "confirm"])) }
        let applied = try dataplane.apply(plan, state: state, options: ApplyOptions(force: options.force, confirmsPending: false, purpose: "enforcer run start"))
        // When the apply ended, not began: a first table of a million elements takes seconds
        // to commit, and the kernel's notices of it, overflowing, must still read as our own.
        lastApplied = now()
        incrementalGeneration = applied.generation
        log(.info(applied.report, ["event": "start", "generation": applied.generation.map(String.init) ?? "-"]))
        report.record(compiled: plan.compiled, generation: applied.generation, at: instant)
        report.lastReload = .init(at: instant, ok: true, message: "started")
        scheduleNextWake(after: instant)
        readConfirmDeadline()
    }

    /// Handles one event; says what changed.
    @discardableResult
    public func handle(_ event: DaemonEvent) -> Outcome {
        switch event {
        case .timerFired: return replan(because: "time", notBefore: report.nextFlip?.at)
        case .clockSet: return replan(because: "the wall clock was set", notBefore: nil)
        case .reload(let reason): return reload(because: reason)
        case .confirmDue: return keepConfirmPromise()
        case .drift(let changes): return repairDrift(changes)
        case .stateChanged:
            readConfirmDeadline()
            return .nothing
        case .stop(let reason):
            stopReason = reason
            return .stopping
        }
    }

    /// The worker's counters, for the report; whether they changed.
    public func record(counters: WorkerCounters) -> Bool {
        guard report.counters != counters else { return false }
        report.counters = counters
        return true
    }

    /// The policy directory's files and list folders, to watch for changes.
    public var watchedDirectories: [String] { pipeline.source.watchedDirectories(of: plan.policy) }

    /// The same policy at a new instant: a flip (`notBefore` its boundary), or the clock moved
    /// (now, whatever was scheduled).
    private func replan(because reason: String, notBefore boundary: Date?) -> Outcome {
        // A timer fires at or just after its instant; never compile a hair before the boundary.
        let instant = max(now(), boundary ?? .distantPast)
        defer { scheduleNextWake(after: instant) }
        do {
            let next = try incrementalPlan(plan.loaded, host: plan.host, at: instant, expectations: false)
            let flipped = next.flips(from: plan)
            // A flip is the policy's own schedule: it happens even where the SSH guard would object.
            let applied = try timedApply(next, state: state, options: ApplyOptions(force: true, confirmsPending: false, purpose: "enforcer run flip",
                                                                                           event: .flip, reason: "\(reason): " + (flipped.isEmpty ? "no policy changed state" : flipped.joined(separator: "; "))))
            lastApplied = now()
            adopt(next, generation: applied.generation)
            log(.info("flip (\(reason)): \(flipped.isEmpty ? "no policy changed state" : flipped.joined(separator: "; ")) — \(applied.report)",
                      ["event": "flip", "generation": applied.generation.map(String.init) ?? "-"]))
            report.record(compiled: plan.compiled, generation: applied.generation, at: instant)
            tally.flips += 1
            return .replanned
        } catch {
            log(.error("flip (\(reason)) failed, the previous generation stays live: \(error)", ["event": "flip"]))
            return .nothing
        }
    }

    /// The policy again: applied as a delta when valid, refused otherwise.
    private func reload(because reason: String) -> Outcome {
        Trace.phase("reload begins")
        let instant = now()
        let live = { self.state.generations.currentNumber().map(String.init) ?? "-" }
        let policy: PolicySet
        do {
            policy = try pipeline.load().policy
            Trace.phase("policy loaded")
        } catch {
            let errors = error.diagnostics.filter { $0.severity == .error }
            for line in DiagnosticText.render(errors) { log(.error(line, ["event": "diagnostic"])) }
            log(.warning("reload (\(reason)) refused: \(counted(errors.count, "error")); generation \(live()) stays live",
                         ["event": "reload", "outcome": "refused", "generation": live()]))
            state.recordRefusal(["\(counted(errors.count, "error")) in \(pipeline.source.location); generation \(live()) stays live"] + errors.map(\.description),
                                purpose: "reload", reason: reason, at: instant)
            report.lastReload = .init(at: instant, ok: false, message: "\(errors.count) error(s): \(errors.first?.description ?? "")")
            tally.reloadsRefused += 1
            return .refused
        }
        do {
            let host = try pipeline.host(options.system, in: policy)
            let next = try incrementalPlan(policy, host: host, at: instant, expectations: true)
            let applied = try timedApply(next, state: state, options: ApplyOptions(force: options.force, confirmsPending: false, purpose: "enforcer run reload",
                                                                                           event: .reload, reason: reason))
            lastApplied = now()
            adopt(next, generation: applied.generation)
            scheduleNextWake(after: instant)
            log(.info("reload (\(reason)): \(applied.report)", ["event": "reload", "outcome": "applied", "generation": applied.generation.map(String.init) ?? "-"]))
            report.record(compiled: plan.compiled, generation: applied.generation, at: instant)
            report.lastReload = .init(at: instant, ok: true, message: applied.report)
            tally.reloadsApplied += 1
            return .reloaded
        } catch {
            for line in DiagnosticText.render(error.diagnostics) { log(.error(line, ["event": "diagnostic"])) }
            log(.warning("reload (\(reason)) refused, generation \(live()) stays live: \(error)", ["event": "reload", "outcome": "refused", "generation": live()]))
            report.lastReload = .init(at: instant, ok: false, message: "\(error)")
            tally.reloadsRefused += 1
            return .refused
        }
    }

    /// A plan of `policy` from the kept compile.
    private func incrementalPlan(_ policy: PolicySet, host: SystemDefinition, at instant: Date, expectations: Bool) throws(EnforcementError) -> CheckedPlan {
        let base = incrementalGeneration
        // Until this plan is applied, no generation holds the kept compile's ruleset.
        incrementalGeneration = nil
        let next = try pipeline.plan(policy, from: incrementalSource, incremental: &incremental, base: base, system: host, at: instant,
                                     overrides: state.overrides.read(), ids: state.policyIDs(for: policy), expectations: expectations)
        incrementalSource = policy
        return next
    }

    /// `next` is live as `generation`.
    private func adopt(_ next: CheckedPlan, generation: Int?) {
        plan = next
        // Its changes led to it from a generation before: they mean nothing for a later apply.
        plan.changes = nil
        if incremental != nil { incrementalGeneration = generation }
    }

    /// When this process last changed the kernel (its own large transaction may overflow the
    /// drift monitor's notices).
    public private(set) var lastApplied: Date?

    /// What the metrics endpoint counts of the daemon's own doings since it started.
    public struct Tally: Sendable, Equatable {
        /// Flips applied (a time window or an expiry turned a policy on or off, or the clock moved).
        public var flips = 0
        public var reloadsApplied = 0
        /// Reloads refused, the previous generation staying live: policy errors, or the kernel's refusal.
        public var reloadsRefused = 0
        /// Seconds each apply took in the dataplane (compile excluded), until the metrics take them.
        public var applySeconds: [Double] = []
    }
    public private(set) var tally = Tally()

    /// The apply durations recorded since the last call.
    public func takeApplySeconds() -> [Double] {
        defer { tally.applySeconds.removeAll(keepingCapacity: true) }
        return tally.applySeconds
    }

    /// `dataplane.apply`, timed for the metrics (a refused apply is timed too).
    private func timedApply(_ plan: CheckedPlan, state: StateDirectory, options: ApplyOptions) throws(EnforcementError) -> AppliedGeneration {
        let started = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - started
            // Bounded: a daemon nobody scrapes keeps the last few thousand only.
            if tally.applySeconds.count >= 4096 { tally.applySeconds.removeFirst(2048) }
            tally.applySeconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        return try dataplane.apply(plan, state: state, options: options)
    }

    /// Another process changed enforcer's tables: logged and counted, and the live plan
    /// put back whole (`[kernel] on_drift = "restore"`, the default) in one transaction.
    private func repairDrift(_ changes: [String]) -> Outcome {
        let instant = now()
        var drift = report.drift ?? DaemonReport.Drift()
        drift.count += 1
        drift.lastAt = instant
        drift.lastChanges = changes
        for change in changes { log(.warning("drift: \(change)", ["event": "drift"])) }
        defer { report.drift = drift }
        let detail = changes.joined(separator: "\n")
        let purpose = "enforcer run drift repair"
        guard plan.policy.config.onDrift == .restore else {
            drift.lastOutcome = "reported only ([kernel] on_drift = \"report\")"
            log(.warning("drift: left as it is ([kernel] on_drift is report)", ["event": "drift", "outcome": "reported"]))
            state.record(HistoryEvent(at: instant, kind: .drift, generation: state.generations.currentNumber(),
                                      summary: "\(counted(changes.count, "change")) by another process, left as they are ([kernel] on_drift = \"report\")",
                                      detail: detail), purpose: purpose)
            return .nothing
        }
        do {
            let applied = try timedApply(plan, state: state, options: ApplyOptions(replace: true, force: true, confirmsPending: false,
                                                                                      purpose: purpose, event: nil))
            lastApplied = now()
            // The same ruleset, now as a new generation.
            if incrementalGeneration != nil { incrementalGeneration = applied.generation }
            drift.restored += 1
            drift.lastOutcome = "restored: \(applied.report)"
            log(.info("drift: restored — \(applied.report)", ["event": "drift", "outcome": "restored"]))
            report.record(compiled: plan.compiled, generation: applied.generation, at: instant)
            state.record(HistoryEvent(at: instant, kind: .drift, generation: applied.generation,
                                      summary: "\(counted(changes.count, "change")) by another process; restored as generation \(applied.generation.map(String.init) ?? "-")",
                                      detail: detail), purpose: purpose)
        } catch {
            drift.lastOutcome = "restoring failed: \(error)"
            log(.error("drift: restoring failed: \(error)", ["event": "drift", "outcome": "failed"]))
            state.record(HistoryEvent(at: instant, kind: .drift, generation: state.generations.currentNumber(),
                                      summary: "\(counted(changes.count, "change")) by another process; restoring failed: \(error)",
                                      detail: detail), purpose: purpose)
        }
        return .nothing
    }

    /// At the deadline of an `apply --confirm`: restores unless it was confirmed meanwhile.
    private func keepConfirmPromise() -> Outcome {
        defer { readConfirmDeadline() }
        do {
            guard let line = try dataplane.restoreIfOverdue(state: state, now: now()) else { return .nothing }
            log(.info("confirm: " + line, ["event": "confirm"]))
            return .nothing
        } catch {
            log(.error("confirm: \(error)", ["event": "confirm"]))
            return .nothing
        }
    }

    private func readConfirmDeadline() {
        confirmDeadline = PendingConfirm.read(from: state)?.deadline
    }

    /// The next window, expiry or trust change, and the policies that flip then.
    private func scheduleNextWake(after instant: Date) {
        let next = plan.nextChange(after: instant, overrides: state.overrides.read())
        nextWake = next?.at
        report.nextFlip = next.map { DaemonReport.NextFlip(at: $0.at, policies: $0.flipping) }
    }

    /// Stopping: leaves the ruleset in place, or removes enforcer's table (`[run] on_stop`).
    /// `workerSummary` ends the last line (the worker's counters).
    public func finish(workerSummary: String) {
        let reason = stopReason ?? "stop"
        let config = plan.policy.config
        if config.onStop == .flush {
            do {
                try dataplane.flush(config, state: state)
                log(.info("run: stopped (\(reason)); enforcer's table removed ([run] on_stop is flush)\(workerSummary)", ["event": "stop"]))
            } catch {
                log(.error("run: stopped (\(reason)); removing enforcer's table failed: \(error)\(workerSummary)", ["event": "stop"]))
            }
        } else {
            log(.info("run: stopped (\(reason)); the ruleset stays in force\(workerSummary)", ["event": "stop"]))
        }
        report.stoppedAt = now()
    }
}
