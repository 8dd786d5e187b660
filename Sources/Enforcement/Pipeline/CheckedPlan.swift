import Compiler
import Foundation

/// A policy checked and compiled for one host at one instant: what the dry run renders and
/// what a dataplane makes live.
public struct CheckedPlan: Sendable {
    /// The policy as its source holds it (a later flip applies the overrides of its own
    /// instant to this).
    public let loaded: PolicySet
    /// The policy with the runtime overrides applied.
    public let policy: PolicySet
    /// This host.
    public let host: SystemDefinition
    /// Who may reach whom, with overrides and trust applied.
    public let graph: AccessGraph
    public let compiled: CompiledHost
    public let instant: Date
    public let policyIDs: PolicyIDs
    /// Where the policy came from (the plan's header, the generation's record).
    public let location: String
    /// What changed in the ruleset since generation `base`, when the daemon's incremental
    /// compile made this plan from that generation's: the kernel delta is built from these.
    public var changes: (base: Int, changes: RulesetChanges)? = nil

    /// The next instant at which this plan changes by itself (a window or expiry of a
    /// policy, a system's expiry, or a trust grant running out), with the policies that flip
    /// then and the systems that expire then ("system NAME"); nil when nothing will.
    public func nextChange(after instant: Date, overrides: RuntimeOverrides) -> (at: Date, flipping: [String])? {
        let flips = compiled.scheduleFlips(after: instant)
        guard let next = [flips.values.min(), overrides.nextTrustChange(after: instant), loaded.nextSystemExpiry(after: instant)].compactMap({ $0 }).min()
        else { return nil }
        return (next, compiled.enforced.filter { flips[$0.entry.policy.schedule] == next }.map(\.entry.policy.name)
            + loaded.systems.filter { $0.expires == next }.map { "system \($0.name)" })
    }

    /// "'NAME' activates", "'NAME' deactivates (why)" for every policy whose state differs
    /// from `old`, and "system 'NAME' expired" for each system whose expiry came since.
    public func flips(from old: CheckedPlan) -> [String] {
        loaded.systemsExpiring(after: old.instant, through: instant).map { "system '\($0)' expired" } + policyFlips(from: old)
    }

    private func policyFlips(from old: CheckedPlan) -> [String] {
        let before = Dictionary(old.compiled.enforced.map { ($0.entry.policy.name, $0.inactiveReason) }, uniquingKeysWith: { a, _ in a })
        var out: [String] = []
        var seen = Set<String>()
        for item in compiled.enforced where seen.insert(item.entry.policy.name).inserted {
            let was = before[item.entry.policy.name] ?? nil
            if (was == nil) != (item.inactiveReason == nil) {
                out.append(item.inactiveReason.map { "'\(item.entry.policy.name)' deactivates (\($0))" } ?? "'\(item.entry.policy.name)' activates")
            }
        }
        return out
    }
}
