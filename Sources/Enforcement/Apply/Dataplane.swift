import Compiler
import Foundation
import Kernel

/// How a plan is to be made live.
public struct ApplyOptions: Sendable {
    /// Replace enforcer's table whole instead of sending a delta.
    public var replace = false
    /// Apply even where the SSH guard objects (a flip is the policy's own schedule).
    public var force = false
    /// Restore the previous generation unless confirmed within this many seconds.
    public var confirmSeconds: Int?
    /// Whether this apply confirms an `apply --confirm` still waiting: an operator's apply
    /// does (as a later commit does on a router); the daemon's flips and reloads do not, they
    /// are not the operator's word that the change was good.
    public var confirmsPending: Bool
    /// What is applying, for the state lock's holder and the log ("apply", "flip", …).
    public var purpose: String
    /// The kind of the history event the apply records (nil: the caller records its own,
    /// as the daemon's drift repair does); a refusal is recorded as one whatever this says.
    public var event: HistoryEvent.Kind?
    /// Why, in the operator's words (`--reason`), for the history and the generation.
    public var reason: String?

    public init(replace: Bool = false, force: Bool = false, confirmSeconds: Int? = nil, confirmsPending: Bool = true, purpose: String = "apply",
                event: HistoryEvent.Kind? = .apply, reason: String? = nil) {
        self.replace = replace
        self.force = force
        self.confirmSeconds = confirmSeconds
        self.confirmsPending = confirmsPending
        self.purpose = purpose
        self.event = event
        self.reason = reason
    }
}

/// What an apply did.
public struct AppliedGeneration: Sendable {
    /// The generation live afterwards (nil: none recorded).
    public var generation: Int?
    /// Whether anything was sent.
    public var changed: Bool
    /// What to report, one or more lines.
    public var report: String

    public init(generation: Int?, changed: Bool, report: String) {
        self.generation = generation
        self.changed = changed
        self.report = report
    }
}

/// Where plans become live: the kernel (`KernelDataplane`), or a recording one in tests and
/// benchmarks. Each apply is all or nothing: a refused one throws and leaves the previous
/// generation live.
public protocol Dataplane: AnyObject {
    func apply(_ plan: CheckedPlan, state: StateDirectory, options: ApplyOptions) throws(EnforcementError) -> AppliedGeneration
    /// Removes what enforcer owns, on `[run] on_stop = "flush"`.
    func flush(_ config: Config, state: StateDirectory) throws(EnforcementError)
    /// Keeps the promise of an `apply --confirm` whose deadline is past at `now`: restores
    /// what it said it would; what happened as a line, nil when nothing was due.
    func restoreIfOverdue(state: StateDirectory, now: Date) throws(EnforcementError) -> String?
    /// An apply from the policy directory `directory` follows soon: work its record will need
    /// may begin now, on another core.
    func willApply(from directory: String)
}

extension Dataplane {
    public func willApply(from directory: String) {}
}
