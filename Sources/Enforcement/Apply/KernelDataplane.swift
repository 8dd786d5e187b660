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

    /// The policy source's digests, worked out while the plan compiles (see `SourceSnapshot.hashAhead`).
    public func willApply(from directory: String) { SourceSnapshot.hashAhead(directory: directory) }

    public func apply(_ plan: CheckedPlan, state: StateDirectory, options: ApplyOptions) throws(EnforcementError) -> AppliedGeneration {
        do {
            let (applied, line) = try applyLocked(plan, state: state, options: options)
            if let kind = options.event {
                state.record(HistoryEvent(kind: kind, generation: applied.generation, reason: options.reason,
                                          summary: line + (options.confirmSeconds.map { " (with --confirm \($0))" } ?? ""),
                                          detail: applied.report == line ? nil : applied.report), purpose: options.purpose)
            }
            return applied
        } catch {
            state.recordRefusal(error.messageLines, purpose: options.purpose, reason: options.reason)
            throw error
        }
    }

    /// The apply, and its own line of the report (what the transaction did) for the history.
    private func applyLocked(_ plan: CheckedPlan, state: StateDirectory, options: ApplyOptions) throws(EnforcementError) -> (AppliedGeneration, String) {
        // With --confirm a cut session is the case the promise is for: the watchdog restores
        // what was live when the operator can no longer confirm. Without it, only --force.
        let session = options.force ? nil : SSHSession.current()
        let cut = session.map { $0.wouldBeCut(graph: plan.graph, system: plan.host, at: plan.instant) } ?? false
        if let session, cut, options.confirmSeconds == nil {
            throw .refused(["enforcer: refusing to apply: this ruleset would cut the SSH session it runs in (\(session)); "
                + "use --confirm DURATION to have it undone unless `enforcer confirm` follows in time, or --force to apply anyway"])
        }
        let lock = try state.lock(for: options.purpose)
        defer { lock.release() }
        Trace.phase("state locked")
        // A promise already broken is kept before anything else changes.
        var lines: [String] = []
        if let restored = try restoreIfOverdueLocked(state: state, now: Date()) { lines.append(restored) }
        let waiting = PendingConfirm.read(from: state)
        let previous = state.generations.currentNumber()
        var promise: PendingConfirm?
        if let seconds = options.confirmSeconds {
            // On record before the commit: whatever happens to this process from here, the
            // change it makes comes with the promise to undo it. A second --confirm keeps the
            // first one's restore point: the last generation somebody confirmed.
            promise = PendingConfirm(generation: nil, previous: waiting.map(\.previous) ?? previous,
                                     deadline: Date().addingTimeInterval(TimeInterval(seconds)), table: plan.policy.config.table,
                                     requestedBy: "pid \(getpid()) (\(options.purpose) --confirm \(seconds))")
            try promise!.write(to: state)
        }
        let applied: AppliedGeneration
        do {
            applied = try commit(plan, state: state, options: options)
        } catch {
            // Nothing changed: the promise on record is the one from before, if any.
            if promise != nil { if let waiting { try? waiting.write(to: state) } else { PendingConfirm.remove(from: state) } }
            throw error
        }
        lines.append(applied.report)
        if var promise, let seconds = options.confirmSeconds {
            if !applied.changed && waiting == nil {
                PendingConfirm.remove(from: state)
                lines.append("nothing changed, so there is nothing to confirm")
            } else {
                promise.generation = applied.generation
                try promise.write(to: state)
                let owner = armRestore(state, promise: promise)
                lines.append("run `enforcer confirm` within \(seconds) s, or \(promise.previous.map { "generation \($0)" } ?? "the state before (no enforcer table)") is restored (\(owner))")
                if let session, cut {
                    lines.append("this ruleset cuts the SSH session it runs in (\(session)): if it drops, the restore at the deadline lets you back in")
                }
            }
        } else if let waiting, options.confirmsPending {
            PendingConfirm.remove(from: state)
            lines.append("confirmed \(waiting.generation.map { "generation \($0)" } ?? "the pending change") applied with --confirm: a later apply confirms it")
        }
        return (AppliedGeneration(generation: applied.generation, changed: applied.changed, report: lines.joined(separator: "\n")), applied.report)
    }

    /// The transaction and its record, under the state lock.
    private func commit(_ plan: CheckedPlan, state: StateDirectory, options: ApplyOptions) throws(EnforcementError) -> AppliedGeneration {
        do {
            try state.generations.recordPolicyIDs(plan.policyIDs)
            var applier = try Applier(stateDirectory: state.path)
            Trace.phase("policy ids recorded")
            let config = plan.policy.config
            applier.recentFrom = config.recentFrom
            applier.actor = Actor.current(purpose: options.purpose)
            applier.reason = options.reason
            // Timed grants live outside the generation. A replaced table gets them in its own
            // transaction (it starts with none, and their flows must not see it so); a table
            // kept has them re-asserted after, and those that no longer hold taken out.
            let grants = plan.compiled.timedGrants.map { (mark: $0.mark, until: $0.until) }
            let outcome = try applier.apply(plan.compiled.ruleset, system: plan.host.name, policyDirectory: plan.location,
                                            forceReplace: options.replace, timedGrants: grants, changes: plan.changes)
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
                let report = "applied generation \(outcome.generation) for \(plan.host.name): \(outcome.summary) (\(outcome.messages) messages, \(outcome.bytes) bytes in one transaction of \(milliseconds(outcome.transactionSeconds)) ms, \(milliseconds(outcome.kernelSeconds)) ms of it in the kernel; queue via \(outcome.queue.rawValue))"
                return AppliedGeneration(generation: outcome.generation, changed: true, report: report)
            }
        } catch {
            throw .refused(["enforcer: \(error)", "enforcer: nothing was changed; the previous ruleset stays live"])
        }
    }

    public func flush(_ config: Config, state: StateDirectory) throws(EnforcementError) {
        try flush(config, state: state, reason: nil, purpose: "flush")
    }

    public func flush(_ config: Config, state: StateDirectory, reason: String?, purpose: String) throws(EnforcementError) {
        let lock = try state.lock(for: purpose)
        defer { lock.release() }
        let live = state.generations.currentNumber()
        do { try Applier(stateDirectory: state.path).flush(family: .inet, name: config.table) } catch {
            state.recordRefusal(["\(error)"], purpose: purpose, reason: reason)
            throw .refused(["enforcer: \(error)"])
        }
        // Nothing is left to restore or to confirm: the flush supersedes a pending promise.
        let waiting = PendingConfirm.read(from: state)
        PendingConfirm.remove(from: state)
        state.record(HistoryEvent(kind: .flush, generation: live, reason: reason,
                                  summary: "removed tables inet \(config.table) and inet \(RecentTable.name(of: config.table))"
                                      + (live.map { "; generation \($0) is no longer live" } ?? "")
                                      + (waiting != nil ? "; the pending confirm is void" : "")), purpose: purpose)
    }

    /// Which generation enforcer's table `table` says it holds (root or CAP_NET_ADMIN only).
    public static func kernelGeneration(table name: String) -> KernelGeneration {
        guard Privilege.mayAdministerNetwork() else { return .notAsked("reading the kernel's tables takes root or CAP_NET_ADMIN") }
        do {
            let connection = try NFTablesConnection()
            let table = KernelTable(family: .inet, name: name, connection: connection)
            guard try table.state() != nil else { return .noTable }
            return try table.generationMark().map { .holds($0) } ?? .unmarked
        } catch {
            return .notAsked("\(error)")
        }
    }

    /// The ruleset's nf_tables generation id now (root only): every commit by any process
    /// advances it, so one that differs from the record's says somebody committed since.
    public static func rulesetGeneration() -> UInt32? {
        guard Privilege.mayAdministerNetwork() else { return nil }
        return try? NFTablesConnection().followGeneration()
    }

    /// The name of the table that holds senders added by deltas, beside `table`.
    public static func recentTableName(of table: String) -> String { RecentTable.name(of: table) }

    /// Makes generation `target` (default: the one before the current) live again, recorded
    /// as a new generation; returns what to report. It supersedes an `apply --confirm`
    /// waiting: the operator has chosen what is live.
    public func rollback(to target: Int?, state: StateDirectory, reason: String? = nil) throws(EnforcementError) -> String {
        do {
            let (generation, restored, lines) = try rollbackLocked(to: target, state: state, reason: reason)
            state.record(HistoryEvent(kind: .rollback, generation: generation, reason: reason, summary: restored,
                                      detail: lines.count > 1 ? lines.joined(separator: "\n") : nil), purpose: "rollback")
            return lines.joined(separator: "\n")
        } catch {
            state.recordRefusal(error.messageLines, purpose: "rollback", reason: reason)
            throw error
        }
    }

    /// The rollback: the generation it recorded, its own line, and every line to report.
    private func rollbackLocked(to target: Int?, state: StateDirectory, reason: String?) throws(EnforcementError) -> (Int, String, [String]) {
        let lock = try state.lock(for: "rollback")
        defer { lock.release() }
        var lines: [String] = []
        if let restored = try restoreIfOverdueLocked(state: state, now: Date()) { lines.append(restored) }
        let store = state.generations
        let numbers = store.numbers()
        guard let target = target ?? store.currentNumber().flatMap({ current in numbers.last { $0 < current } }) else {
            throw .refused(["enforcer: no earlier generation in \(store.directory)"])
        }
        guard numbers.contains(target) else {
            throw .refused(["enforcer: generation \(target) is not kept in \(store.directory) (kept: \(numbers.map(String.init).joined(separator: ", ")))"])
        }
        do {
            var applier = try Applier(stateDirectory: store.directory)
            applier.actor = Actor.current(purpose: "rollback")
            applier.reason = reason
            let outcome = try applier.rollback(to: target)
            let restored = "restored generation \(target) as generation \(outcome.generation): \(outcome.summary)"
            lines.append(restored)
            if let waiting = PendingConfirm.read(from: state) {
                PendingConfirm.remove(from: state)
                lines.append("the pending confirm of \(waiting.generation.map { "generation \($0)" } ?? "an unfinished apply") is void: the rollback chose what is live")
            }
            return (outcome.generation, restored, lines)
        } catch {
            throw .refused(["enforcer: \(error)", "enforcer: nothing was changed; the previous ruleset stays live"])
        }
    }

    /// Keeps the generation applied with `--confirm`: the pending promise, if one waited.
    public func confirm(state: StateDirectory) throws(EnforcementError) -> PendingConfirm? {
        let lock = try state.lock(for: "confirm")
        defer { lock.release() }
        guard let pending = PendingConfirm.read(from: state) else { return nil }
        do { try FileManager.default.removeItem(atPath: state.pendingConfirm) } catch {
            throw .refused(["enforcer: cannot remove \(state.pendingConfirm): \(SystemErrno.describe(error))"])
        }
        state.record(HistoryEvent(kind: .confirm, generation: pending.generation,
                                  summary: "confirmed \(pending.generation.map { "generation \($0)" } ?? "the pending change") before its deadline \(ISO8601.string(pending.deadline))"),
                     purpose: "confirm")
        return pending
    }

    public func restoreIfOverdue(state: StateDirectory, now: Date) throws(EnforcementError) -> String? {
        // Most calls find nothing: ask before taking the lock.
        guard let pending = PendingConfirm.read(from: state), pending.deadline <= now else { return nil }
        let lock = try state.lock(for: "restoring an unconfirmed apply")
        defer { lock.release() }
        return try restoreIfOverdueLocked(state: state, now: now)
    }

    /// `restoreIfOverdue` with the lock held: restores, removes the promise, and appends
    /// what happened to watchdog.log.
    private func restoreIfOverdueLocked(state: StateDirectory, now: Date) throws(EnforcementError) -> String? {
        guard let pending = PendingConfirm.read(from: state), pending.deadline <= now else { return nil }
        let what = pending.generation.map { "generation \($0)" } ?? "an unfinished apply"
        let line: String
        do {
            var applier = try Applier(stateDirectory: state.path)
            applier.actor = Actor.current(purpose: "restoring an unconfirmed apply")
            applier.reason = "\(what) was not confirmed by \(ISO8601.string(pending.deadline))"
            if let previous = pending.previous {
                let outcome = try applier.rollback(to: previous)
                line = outcome.mode == .unchanged
                    ? "\(what) was not confirmed by \(ISO8601.string(pending.deadline)); generation \(previous) is live again (it already was)"
                    : "\(what) was not confirmed by \(ISO8601.string(pending.deadline)); restored generation \(previous) as generation \(outcome.generation)"
            } else {
                try applier.flush(family: .inet, name: pending.table)
                line = "\(what) was not confirmed by \(ISO8601.string(pending.deadline)); removed table inet \(pending.table) (there was none before)"
            }
        } catch {
            let failure = "\(what) was not confirmed by \(ISO8601.string(pending.deadline)), and restoring failed: \(error)"
            appendWatchdogLog(state, failure)
            state.recordRefusal([failure], purpose: "restoring an unconfirmed apply", reason: nil)
            throw .refused(["enforcer: " + failure])
        }
        PendingConfirm.remove(from: state)
        appendWatchdogLog(state, line)
        state.record(HistoryEvent(kind: .confirmExpired, generation: state.generations.currentNumber(), summary: line), purpose: "restoring an unconfirmed apply")
        return line
    }

    private func appendWatchdogLog(_ state: StateDirectory, _ line: String) {
        let descriptor = open(state.watchdogLog, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        let bytes = Array("\(ISO8601.string(Date())) \(line)\n".utf8)
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    }

    /// Who restores at the deadline: the running daemon (told by SIGUSR1), else a transient
    /// systemd timer where systemd runs the system, else a watchdog process of its own
    /// session. Each of them may die; the promise on disk does not, and every enforcer
    /// command and the daemon's start keep one past its deadline. Returns who, in words.
    private func armRestore(_ state: StateDirectory, promise: PendingConfirm) -> String {
        if let report = try? DaemonReport.read(from: state), report.isRunning, kill(report.pid, SIGUSR1) == 0 {
            return "by enforcer run, pid \(report.pid)"
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let seconds = max(0, promise.deadline.timeIntervalSinceNow)
        if let timer = ConfirmTimer.systemd(executable: executable, state: state.path, generation: promise.generation ?? 0, seconds: seconds),
           runAndWait(timer) == 0 {
            return "by the transient systemd timer \(ConfirmTimer.unitName(generation: promise.generation ?? 0))"
        }
        let pid = spawnDetached([executable, "confirm-watchdog", "--state-dir", state.path, "--generation", String(promise.generation ?? 0)],
                                log: state.watchdogLog)
        if pid > 0 { return "by the watchdog, pid \(pid); or by the next enforcer command after the deadline" }
        return "no watchdog could start (\(String(cString: strerror(-pid)))): the next enforcer command after the deadline restores"
    }

    /// The watchdog's own work (`enforcer confirm-watchdog`): waits for the deadline, then
    /// keeps the promise if nobody confirmed or superseded it meanwhile (a later deadline
    /// belongs to a later watchdog). Returns the line for its log, nil when there was
    /// nothing to do.
    public func watchConfirm(state: StateDirectory, generation: Int) throws(EnforcementError) -> String? {
        guard let pending = PendingConfirm.read(from: state) else { return nil }
        let wait = pending.deadline.timeIntervalSinceNow
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        return try restoreIfOverdue(state: state, now: Date())
    }
}
