import Foundation

/// A coming change of a policy's state, and what it changes in the ruleset.
public struct Flip: Sendable {
    public var instant: Date
    public var policy: String
    public var activates: Bool
    public var changes: [String]
}

/// `enforcer apply --dry-run`: what would be loaded, and what it means.
public struct Plan: Sendable {
    public var compiled: CompiledHost
    public var graph: AccessGraph
    public var flips: [Flip]
    public var liveDiff: RulesetDiff?
    public var liveDescription: String

    /// Computes the next flips (at most `limit`, within `horizon`) by compiling the host at
    /// each boundary and diffing the rulesets, so the plan shows exactly which elements move.
    public init(graph: AccessGraph, compiled: CompiledHost, live: Ruleset?, liveDescription: String,
                flipLimit: Int = 8, horizon: TimeInterval = 8 * 86400) throws(CompileError) {
        self.graph = graph
        self.compiled = compiled
        self.liveDescription = liveDescription
        liveDiff = live.map { RulesetDiff(from: $0, to: compiled.ruleset) } ?? RulesetDiff(from: nil, to: compiled.ruleset)
        var flips: [Flip] = []
        var cursor = compiled.instant
        var previous = compiled.ruleset
        let end = compiled.instant.addingTimeInterval(horizon)
        let entries = compiled.enforced.map(\.entry)
        while flips.count < flipLimit {
            guard let next = compiled.nextFlip(after: cursor), next <= end else { break }
            let host = try HostCompiler(graph: graph, system: compiled.system, at: next).compile()
            let diff = RulesetDiff(from: previous, to: host.ruleset)
            for entry in Dictionary(entries.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }).values.sorted(by: { $0.id < $1.id })
            where entry.policy.schedule.nextFlip(after: cursor) == next {
                let activates = graph.inactiveReason(entry, at: next) == nil
                flips.append(Flip(instant: next, policy: entry.policy.name, activates: activates, changes: diff.lines))
            }
            previous = host.ruleset
            cursor = next
        }
        self.flips = flips
    }

    public func render(directory: String) -> String {
        var out = ""
        let system = compiled.system
        out += "# enforcer plan for system '\(system.name)' (\(system.addresses.map(\.description).joined(separator: ", ")))\n"
        out += "# policy directory \(directory), evaluated at \(ISO8601.string(compiled.instant))\n\n"

        out += "policies enforced here:\n"
        if compiled.enforced.isEmpty { out += "  (none: everything inbound is denied but replies, loopback and essential ICMP)\n" }
        for item in compiled.enforced {
            let entry = item.entry
            let reach: String
            switch entry.policy.reach {
            case .direct(let receivers): reach = "\(entry.policy.senders.joined(separator: ", ")) → \(receivers.joined(separator: ", "))"
            case .gateway(let gateway, let subnets): reach = "\(entry.policy.senders.joined(separator: ", ")) → \(subnets.map(\.description).joined(separator: ", ")) via \(gateway)"
            }
            let allow = entry.policy.allowText
            let state = item.inactiveReason.map { "inactive: \($0)" } ?? "active"
            out += "  \(item.hook == .input ? "input  " : "forward") \(entry.policy.kindWord) '\(entry.policy.name)': \(reach); allow \(allow); \(state)\n"
        }
        out += "\nconnected pairs per policy (all systems):\n"
        for entry in graph.entries {
            out += "  \(entry.policy.name): \(entry.connectedPairs)\n"
        }
        out += "\nqueued flows:\n"
        out += compiled.queuedFlows.isEmpty ? "  none (no web rules on this system)\n" : compiled.queuedFlows.map { "  \($0)\n" }.joined()
        if !compiled.timedGrants.isEmpty {
            out += "\nenabled for a while (enforcer policy enable --for; runs out in the kernel, set timed_policies):\n"
            out += compiled.timedGrants.map { "  '\($0.policy)' until \(ISO8601.string($0.until))\n" }.joined()
        }

        out += "\nnext flips:\n"
        if flips.isEmpty { out += "  none in the next 8 days\n" }
        for flip in flips {
            out += "  \(ISO8601.string(flip.instant)) '\(flip.policy)' \(flip.activates ? "activates" : "deactivates")\n"
            for change in flip.changes { out += "      \(change)\n" }
        }

        out += "\ndifference from live (\(liveDescription)):\n"
        if let diff = liveDiff, !diff.isEmpty {
            out += diff.lines.map { "  \($0)\n" }.joined()
        } else {
            out += "  none: the live ruleset is already this one\n"
        }
        out += "\nruleset:\n"
        out += NFTText.render(compiled.ruleset)
        return out
    }
}
