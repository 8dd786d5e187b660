import Compiler
import Foundation
import Kernel

/// Plans into the kernel: one netlink transaction each (a delta against the live
/// generation where the kernel still holds it), recorded as a generation in the state
/// directory; `--confirm`'s watchdog, rollback and flush.
public final class KernelDataplane: Dataplane {
    public init() {}

    /// Asks, on another core, which queue encoding the kernel takes, so the answer is ready
    /// when the first apply needs it (the probe is asked once per process).
    public static func probeQueueEncodingEarly() {
        _ = Concurrently { try? KernelTable.queueEncoding(connection: NFTablesConnection()) }
    }

    public func apply(_ plan: CheckedPlan, state: StateDirectory, options: ApplyOptions) throws(EnforcementError) -> AppliedGeneration {
        if !options.force, let session = SSHSession.current(), session.wouldBeCut(graph: plan.graph, system: plan.host, at: plan.instant) {
            throw .refused(["enforcer: refusing to apply: this ruleset would cut the SSH session it runs in (\(session)); use --force to apply anyway"])
        }
        do {
            try state.generations.recordPolicyIDs(plan.policyIDs)
            let previous = state.generations.currentNumber()
            var applier = try Applier(stateDirectory: state.path)
            let config = plan.policy.config
            applier.recentFrom = config.recentFrom
            // Timed grants live outside the generation. A replaced table gets them in its own
            // transaction (it starts with none, and their flows must not see it so); a table
            // kept has them re-asserted after, and those that no longer hold taken out.
            let grants = plan.compiled.timedGrants.map { (mark: $0.mark, until: $0.until) }
            let outcome = try applier.apply(plan.compiled.ruleset, system: plan.host.name, policyDirectory: plan.location,
                                            forceReplace: options.replace, timedGrants: grants)
            if outcome.mode != .replaced {
                let layout = MarkLayout(mask: config.markMask)
                let timed = Set(plan.compiled.timedGrants.map(\.id))
                let revoked = plan.graph.entries.filter { $0.policy.schedule.override != nil && !timed.contains($0.id) }.map { layout.policyMark($0.id) }
                try applier.setTimedGrants(grants, revoked: revoked, ruleset: plan.compiled.ruleset)
                Trace.phase("timed grants")
            }
            switch outcome.mode {
            case .unchanged:
                return AppliedGeneration(generation: outcome.generation, changed: false,
                                         report: "unchanged: generation \(outcome.generation) is live and matches the policy; nothing sent")
            case .delta, .replaced:
                let milliseconds = { (seconds: Double) in String(format: "%.1f", seconds * 1000) }
                var report = "applied generation \(outcome.generation) for \(plan.host.name): \(outcome.summary) (\(outcome.messages) messages, \(outcome.bytes) bytes in one transaction of \(milliseconds(outcome.transactionSeconds)) ms, \(milliseconds(outcome.kernelSeconds)) ms of it in the kernel; queue via \(outcome.queue.rawValue))"
                if let seconds = options.confirmSeconds {
                    try armWatchdog(state, generation: outcome.generation, previous: previous, seconds: seconds)
                    report += "\nrun `enforcer confirm` within \(seconds) s, or \(previous.map { "generation \($0)" } ?? "the state before (no enforcer table)") is restored"
                }
                return AppliedGeneration(generation: outcome.generation, changed: true, report: report)
            }
        } catch {
            throw .refused(["enforcer: \(error)", "enforcer: nothing was changed; the previous ruleset stays live"])
        }
    }

    public func flush(_ config: Config, state: StateDirectory) throws(EnforcementError) {
        do { try Applier(stateDirectory: state.path).flush(family: .inet, name: config.table) } catch {
            throw .refused(["enforcer: \(error)"])
        }
    }

    /// The name of the table that holds senders added by deltas, beside `table`.
    public static func recentTableName(of table: String) -> String { RecentTable.name(of: table) }

    /// Makes generation `target` (default: the one before the current) live again, recorded
    /// as a new generation; returns what to report.
    public func rollback(to target: Int?, state: StateDirectory) throws(EnforcementError) -> String {
        let store = state.generations
        let numbers = store.numbers()
        guard let target = target ?? store.currentNumber().flatMap({ current in numbers.last { $0 < current } }) else {
            throw .refused(["enforcer: no earlier generation in \(store.directory)"])
        }
        guard numbers.contains(target) else {
            throw .refused(["enforcer: generation \(target) is not kept in \(store.directory) (kept: \(numbers.map(String.init).joined(separator: ", ")))"])
        }
        do {
            let outcome = try Applier(stateDirectory: store.directory).rollback(to: target)
            PendingConfirm.remove(from: state)
            return "restored generation \(target) as generation \(outcome.generation): \(outcome.summary)"
        } catch {
            throw .refused(["enforcer: \(error)", "enforcer: nothing was changed; the previous ruleset stays live"])
        }
    }

    /// Keeps the generation applied with `--confirm`: the generation confirmed, if one waited.
    public func confirm(state: StateDirectory) throws -> Int? {
        guard let pending = PendingConfirm.read(from: state) else { return nil }
        try FileManager.default.removeItem(atPath: state.pendingConfirm)
        return pending.generation
    }

    /// A detached watchdog restores the previous generation at the deadline unless `enforcer
    /// confirm` removed the pending record first. Being its own session, it outlives the
    /// `apply` that started it (and an SSH session that just got cut).
    private func armWatchdog(_ state: StateDirectory, generation: Int, previous: Int?, seconds: Int) throws {
        try PendingConfirm(generation: generation, previous: previous, deadline: Date().addingTimeInterval(TimeInterval(seconds))).write(to: state)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let pid = spawnDetached([executable, "confirm-watchdog", "--state-dir", state.path, "--generation", String(generation)], log: state.watchdogLog)
        guard pid > 0 else {
            PendingConfirm.remove(from: state)
            throw SystemError(operation: "cannot start the confirm watchdog", errno: -pid)
        }
    }

    /// The watchdog's own work (`enforcer confirm-watchdog`): waits for the deadline, then
    /// restores unless generation `generation` was confirmed or superseded meanwhile.
    /// Returns the line for its log, nil when there was nothing to do.
    public func watchConfirm(state: StateDirectory, generation: Int) throws(EnforcementError) -> String? {
        guard let pending = PendingConfirm.read(from: state), pending.generation == generation else { return nil }
        let wait = pending.deadline.timeIntervalSinceNow
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        // Confirmed meanwhile, or superseded by a newer apply --confirm.
        guard let still = PendingConfirm.read(from: state), still.generation == generation else { return nil }
        do {
            let applier = try Applier(stateDirectory: state.path)
            let line: String
            if let previous = still.previous {
                let outcome = try applier.rollback(to: previous)
                line = "\(Date()): generation \(generation) was not confirmed; restored generation \(previous) as generation \(outcome.generation)"
            } else {
                let table = try state.generations.ruleset(generation).table
                try applier.flush(family: table.family, name: table.name)
                line = "\(Date()): generation \(generation) was not confirmed; removed table \(table.name) (there was none before)"
            }
            PendingConfirm.remove(from: state)
            return line
        } catch {
            throw .refused(["\(Date()): generation \(generation) was not confirmed, and restoring failed: \(error)"])
        }
    }
}
