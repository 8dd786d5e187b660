import Compiler
import Foundation

/// Which generation the kernel's table says it holds (its generation mark).
public enum KernelGeneration: Sendable, Equatable {
    case holds(Int)
    /// A table without a mark: made by an older enforcer, or by hand.
    case unmarked
    case noTable
    /// Not asked, and why (it takes root).
    case notAsked(String)
}

/// `enforcer status`: what the kernel, the state directory and the running daemon's report say.
public struct StatusReport {
    public let state: StateDirectory
    public let live: Int?
    public let daemon: DaemonReport?
    public let overrides: RuntimeOverrides
    public let running: Bool
    public let recentSenders: Int
    /// An `apply --confirm` waiting for `enforcer confirm`.
    public let pendingConfirm: PendingConfirm?
    public let kernel: KernelGeneration
    /// The nf_tables generation id now, and the one at which the record last knew enforcer's
    /// table to be as it left it.
    public let rulesetGeneration: UInt32?
    public let recordedRulesetGeneration: UInt32?
    /// The kernel's counters (flows per policy, default-deny drops), or why they were not read.
    public let counters: Result<PolicyCounters, CountersUnread>
    let now: Date

    public init(state: StateDirectory, kernel: KernelGeneration, rulesetGeneration: UInt32? = nil,
                counters: Result<PolicyCounters, CountersUnread> = .failure(CountersUnread(reason: "not asked")), now: Date = Date()) {
        self.state = state
        self.counters = counters
        self.kernel = kernel
        self.rulesetGeneration = rulesetGeneration
        self.now = now
        recordedRulesetGeneration = state.generations.currentNumber().flatMap { state.generations.kernelGeneration(of: $0) }
        live = state.generations.currentNumber()
        daemon = try? DaemonReport.read(from: state)
        overrides = state.overrides.read().pruned(at: now)
        running = daemon?.isRunning ?? false
        recentSenders = state.recentSenders()
        pendingConfirm = PendingConfirm.read(from: state)
    }

    /// `status --json`: one object, every key always present (null when there is nothing
    /// to say), documented in the README under "status --json".
    public func json() -> String {
        let pending = pendingConfirm.map { pending -> [String: Any?] in
            ["generation": pending.generation, "restores": pending.previous, "deadline": pending.deadline,
             "requested_by": pending.requestedBy, "overdue": pending.deadline <= now]
        }
        let intent = state.generations.intent().map { intent -> [String: Any?] in
            ["generation": intent.number, "system": intent.system, "pid": intent.pid, "started_at": intent.startedAt,
             "interrupted": !intent.isUnderWay]
        }
        return JSONText.document(["state_directory": state.path, "generation": live, "recent_senders": recentSenders,
                                  "running": running, "daemon": daemon, "overrides": overrides, "pending_confirm": pending,
                                  "applying": intent, "kernel": kernelJSON(), "counters": countersJSON()])
    }

    /// The kernel's counters, or why they were not read: `read` says which.
    private func countersJSON() -> [String: Any?] {
        switch counters {
        case .success(let counters):
            let object = counters.jsonObject
            return ["read": true, "not_read": nil, "policies": object["policies"], "default_deny": object["default_deny"]]
        case .failure(let unread):
            return ["read": false, "not_read": unread.reason, "policies": nil, "default_deny": nil]
        }
    }

    /// What the kernel says beside the record: the same keys whether it was asked or not.
    private func kernelJSON() -> [String: Any?] {
        var asked = true, notAsked: String?, table: Bool?, mark: Int?, agrees: Bool?
        switch kernel {
        case .holds(let number): table = true; mark = number; agrees = number == live
        case .unmarked: table = true; agrees = false
        case .noTable: table = false; agrees = live == nil
        case .notAsked(let why): asked = false; notAsked = why
        }
        return ["asked": asked, "not_asked": notAsked, "table": table, "generation": mark, "agrees": agrees,
                "ruleset_generation": rulesetGeneration, "recorded_ruleset_generation": recordedRulesetGeneration,
                "untouched_since_recorded": rulesetGeneration.map { $0 == recordedRulesetGeneration }]
    }

    /// Which generation is live, by the kernel's mark and the record; what to do when they
    /// disagree.
    func generationLine() -> String {
        let intent = state.generations.intent()
        let recorded = live.map { "generation \($0)" } ?? "no generation"
        let under = intent.flatMap { $0.isUnderWay ? "; pid \($0.pid) is applying generation \($0.number)" : nil } ?? ""
        let replace = "the next apply replaces enforcer's table whole"
        let line: String
        switch kernel {
        case .holds(let number) where number == live:
            line = "generation \(number) is live (the kernel's table says so too)" + movedSince(number)
        case .holds(let number):
            if let intent, !intent.isUnderWay, intent.number == number {
                line = "generation \(number) is live, by the kernel's table: its apply (pid \(intent.pid)) was interrupted before it was recorded, so the record still names \(recorded); \(replace)"
            } else {
                line = "the kernel's table holds generation \(number), the record names \(recorded): they disagree; \(replace)"
            }
        case .unmarked:
            line = "the record names \(recorded); the kernel's table carries no generation mark (made by an older enforcer, or by hand); \(replace)"
        case .noTable:
            line = live == nil ? "none applied" : "the record names \(recorded), but the kernel holds no enforcer table (removed by hand, or the system restarted); `enforcer apply` loads one again"
        case .notAsked(let why):
            if let intent, !intent.isUnderWay {
                line = "in doubt: the apply of generation \(intent.number) for \(intent.system) (pid \(intent.pid), started \(ISO8601.string(intent.startedAt))) was interrupted; the kernel holds it or \(recorded); \(replace) (the kernel was not asked: \(why))"
            } else {
                line = (live.map { "generation \($0) is live, by the record" } ?? "none applied") + " (the kernel was not asked: \(why))"
            }
        }
        return "generation: \(line)\(under) (\(state.path))"
    }

    /// When another process has committed since the record last knew the table untouched.
    private func movedSince(_ number: Int) -> String {
        guard let now = rulesetGeneration, now != recordedRulesetGeneration else { return "" }
        let then = recordedRulesetGeneration.map { "ruleset generation \($0) then, \(now) now" } ?? "ruleset generation \(now) now, none on record"
        return "; but nftables has changed since it was applied (\(then)) and no enforcer daemon saw that its table was left alone: the next apply replaces it whole"
    }

    /// What a person reads, a line each.
    public func lines() -> [String] {
        var out = [generationLine()]
        if let pending = pendingConfirm {
            let left = pending.deadline.timeIntervalSince(now)
            out.append("pending confirm: \(pending.summary) (\(left > 0 ? "in \(Int(left.rounded(.up))) s; `enforcer confirm` keeps it" : "overdue: the next enforcer command as root restores it"))")
        }
        if recentSenders > 0 {
            out.append("recent table: \(counted(recentSenders, "sender")) added by deltas, until `enforcer apply --replace` folds them into the main table")
        }
        for (name, change) in overrides.policies.sorted(by: { $0.key < $1.key }) {
            let when = change.enabled ? change.until.map { " until \(ISO8601.string($0)) (kernel timeout)" } ?? "" : change.from.map { " from \(ISO8601.string($0))" } ?? ""
            out.append("override: '\(name)' \(change.enabled ? "enabled" : "disabled")\(when) by `enforcer policy \(change.enabled ? "enable" : "disable")`")
        }
        for (system, records) in overrides.trust.sorted(by: { $0.key < $1.key }) {
            for (requirement, record) in records.sorted(by: { $0.key < $1.key }) {
                let holds = record.holds(at: now)
                out.append("trust: \(system) \(requirement) \(holds ? "granted" + (record.until.map { " until \(ISO8601.string($0))" } ?? "") : "revoked")")
            }
        }
        if case .failure(let unread) = counters {
            out.append("counters: not read (\(unread.reason))")
        }
        guard let daemon else {
            out.append("daemon: no report from `enforcer run` in \(state.path)")
            return out
        }
        if running {
            out.append("daemon: running (pid \(daemon.pid)) for \(daemon.system) since \(ISO8601.string(daemon.startedAt)), policy \(daemon.policyDirectory)")
        } else {
            out.append("daemon: not running (last report \(daemon.stoppedAt.map { "stopped \(ISO8601.string($0))" } ?? "from pid \(daemon.pid), which is gone"))")
        }
        out.append("policies:")
        let read = try? counters.get()
        for policy in daemon.policies {
            let counted = read?.phrase(for: policy.name) ?? ""
            out.append("  \(policy.active ? "active  " : "inactive") \(policy.kind) '\(policy.name)' (\(policy.hook))\(policy.reason.map { ": \($0)" } ?? "")\(counted)")
        }
        if daemon.policies.isEmpty { out.append("  none enforced on \(daemon.system)") }
        if let counters = read {
            let drops = counters.defaultDeny.map { "\($0.hook) \(counted(Int(clamping: $0.value.packets), "packet")) (\($0.value.bytes) bytes)" }
            out.append("default deny: " + (drops.isEmpty ? "no counters in the kernel's table (applied by an older enforcer?)" : drops.joined(separator: ", ") + " dropped"))
        }
        out.append("next flip: " + (daemon.nextFlip.map { "\(ISO8601.string($0.at)) \($0.policies.map { "'\($0)'" }.joined(separator: ", "))" } ?? "none scheduled"))
        if let counters = daemon.counters {
            out.append("queue: packets \(counters.packets), permitted \(counters.permitted), denied \(counters.denied), redirected \(counters.redirected), fail verdicts \(counters.failVerdicts) (\(counters.matchErrors) from pattern match errors), stray segments dropped \(counters.strayDropped), flows tracked \(counters.flowsTracked)")
        } else {
            out.append("queue: no worker (no web rules on this system)")
        }
        if let reload = daemon.lastReload {
            out.append("last reload: \(ISO8601.string(reload.at)) \(reload.ok ? "ok" : "refused"): \(reload.message)")
        }
        if let drift = daemon.drift, let at = drift.lastAt {
            out.append("drift: \(counted(drift.count, "change")) to enforcer's tables by other processes, \(drift.restored) restored; the last at \(ISO8601.string(at)): \(drift.lastChanges.joined(separator: "; ")); \(drift.lastOutcome ?? "")")
        }
        if let store = daemon.store {
            let lag = store.seenRevision > store.revision ? ", the store is at revision \(store.seenRevision)" : ""
            out.append("store: \(store.summary): policy of revision \(store.revision)\(lag); "
                       + (store.connected ? "watching" : "unreachable (\(store.lastError ?? "not connected yet")): enforcing what is in force"))
        }
        return out
    }
}
