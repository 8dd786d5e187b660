import Compiler
import Foundation

/// `apply --dry-run`: the plan, and the generation it was compared with.
public struct DryRun {
    public let plan: Plan
    public let location: String
    /// The generation the state directory records as live, if any.
    public let liveGeneration: Int?

    /// Whether an apply would change what is live: the ruleset differs from the recorded
    /// generation, or none is recorded.
    public var changesPending: Bool { !(plan.liveDiff?.isEmpty ?? false) }

    /// The plan as `apply --dry-run` prints it.
    public var text: String { plan.render(directory: location) }

    /// `apply --dry-run --json`: documented in the README under "apply --dry-run --json".
    public func json() -> String {
        let compiled = plan.compiled
        let diff = plan.liveDiff
        let elements = Set(diff?.addedElements.keys.map { $0 } ?? []).union(diff?.removedElements.keys.map { $0 } ?? []).sorted()
        return JSONText.document([
            "system": ["name": compiled.system.name, "addresses": compiled.system.addresses.map(\.description)],
            "directory": location,
            "at": compiled.instant,
            "changes_pending": changesPending,
            "policies": compiled.enforced.map { item -> [String: Any?] in
                let policy = item.entry.policy
                let reach: [String: Any?] = switch policy.reach {
                case .direct(let receivers): ["receivers": receivers, "gateway": nil, "subnets": nil]
                case .gateway(let gateway, let subnets): ["receivers": nil, "gateway": gateway, "subnets": subnets.map(\.description)]
                }
                return ["name": policy.name, "kind": policy.kindWord, "hook": "\(item.hook)", "senders": policy.senders,
                        "reach": reach, "active": item.inactiveReason == nil, "inactive_reason": item.inactiveReason,
                        "allow": policy.allow.map { $0.map { ["service": $0.description, "name": policy.allowNames[$0]] as [String: Any?] } }]
            },
            "pairs": plan.graph.entries.map { ["policy": $0.policy.name, "count": $0.connectedPairs] as [String: Any?] },
            "queued_flows": compiled.queuedFlows,
            "timed_grants": compiled.timedGrants.map { ["policy": $0.policy, "until": $0.until] as [String: Any?] },
            "flips": plan.flips.map { ["at": $0.instant, "policy": $0.policy, "activates": $0.activates, "changes": $0.changes] as [String: Any?] },
            "diff": [
                "live": plan.liveDescription,
                "live_generation": liveGeneration,
                "lines": diff?.lines ?? [],
                "added_sets": diff?.addedSets.map(\.name) ?? [],
                "removed_sets": diff?.removedSets ?? [],
                "redefined_sets": diff?.redefinedSets.map(\.name) ?? [],
                "elements": elements.map { name -> [String: Any?] in
                    ["set": name, "added": diff?.addedElements[name]?.count ?? 0, "removed": diff?.removedElements[name]?.count ?? 0]
                },
                "added_chains": diff?.addedChains.map(\.name) ?? [],
                "removed_chains": diff?.removedChains ?? [],
                "changed_chains": diff?.changedChains.map(\.name) ?? [],
            ] as [String: Any?],
            "ruleset": NFTText.render(compiled.ruleset),
        ])
    }
}

extension Pipeline {
    /// The plan as `apply --dry-run` shows it: the ruleset, pair counts, queued flows, next
    /// flips, and the difference from the generation recorded as live (without root the
    /// kernel cannot be asked; the state directory says what was applied).
    public func dryRun(_ plan: CheckedPlan, state: StateDirectory) throws(EnforcementError) -> DryRun {
        let live = state.recordedLive()
        do {
            let rendered = try Plan(graph: plan.graph, compiled: plan.compiled, live: live?.ruleset,
                                    liveDescription: live?.description ?? "no generation applied by enforcer in \(state.path)")
            return DryRun(plan: rendered, location: plan.location, liveGeneration: live.flatMap { _ in state.generations.currentNumber() })
        } catch {
            throw .refused(["enforcer: \(error)"])
        }
    }
}
