import Compiler
import Foundation

extension Pipeline {
    /// The plan as `apply --dry-run` prints it: the ruleset in nft syntax, pair counts,
    /// queued flows, next flips, and the difference from the generation recorded as live
    /// (without root the kernel cannot be asked; the state directory says what was applied).
    public func dryRun(_ plan: CheckedPlan, state: StateDirectory) throws(EnforcementError) -> String {
        let live = state.recordedLive()
        do {
            let rendered = try Plan(graph: plan.graph, compiled: plan.compiled, live: live?.ruleset,
                                    liveDescription: live?.description ?? "no generation applied by enforcer in \(state.path)")
            return rendered.render(directory: plan.location)
        } catch {
            throw .refused(["enforcer: \(error)"])
        }
    }
}
