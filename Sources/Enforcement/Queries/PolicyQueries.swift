import Compiler
import Foundation

/// Questions answered from a loaded policy without touching the kernel: `check`'s summary,
/// `test`, `test-uri`, `policy list`.
public enum PolicyQueries {
    /// `check`'s last line.
    public static func summary(_ policy: PolicySet) -> String {
        let lists = policy.webRules.reduce(0) { $0 + $1.domains.reduce(0) { $0 + $1.count } }
        return "ok: \(policy.files.count) files, \(policy.systems.count) systems, \(policy.policies.count) policies, \(policy.webRules.count) web rules (\(lists) domains), \(policy.expectations.count) expectations passed"
    }

    /// A system's first address, or an address; nil when `text` is neither.
    public static func endpoint(_ text: String, in policy: PolicySet) throws(ValueError) -> IPAddress {
        if let system = policy.system(named: text), let address = system.addresses.first?.address { return address }
        return try IPAddress.parse(text)
    }

    /// `test`: the verdict for one flow, judged as `system`'s ruleset would (any receiver
    /// when nil) at the query's instant (a system expired by then is no sender), and the
    /// policy that decides it.
    public static func decide(_ query: FlowQuery, in policy: PolicySet, system: SystemDefinition?) -> FlowDecision {
        FlowEvaluator(graph: AccessGraph(policy.systemsInForce(at: query.at)), system: system).decide(query)
    }

    /// `test-uri`: the web verdict for `request`.
    public static func decide(_ request: WebRequest, in policy: PolicySet, at instant: Date) -> WebDecision {
        WebMatcher(rules: policy.webRules, defaultAction: policy.config.defaultAction, fail: policy.config.webFail).decide(request, at: instant)
    }

    /// `policy list`: every block of every file in evaluation order, and whether it is in force.
    /// With `counters`, each policy enforced on this system says how many flows it granted, or
    /// that it was never hit.
    public static func listing(_ policy: PolicySet, at instant: Date, counters: PolicyCounters? = nil) -> [String] {
        let graph = AccessGraph(policy)
        var lines: [String] = []
        for file in policy.files {
            lines.append((file as NSString).lastPathComponent)
            let local = { (location: SourceLocation) in location.file == file }
            for system in policy.systems where local(system.location) {
                lines.append("  system \(system.name): \(system.tags.joined(separator: ", "))")
            }
            for entry in graph.entries where local(entry.policy.location) {
                let state = graph.inactiveReason(entry, at: instant).map { "inactive: \($0)" } ?? "active"
                lines.append("  \(entry.policy.kindWord) '\(entry.policy.name)': \(counted(entry.connectedPairs, "pair")), \(state)"
                             + (counters?.phrase(for: entry.policy.name) ?? ""))
            }
            for rule in policy.webRules where local(rule.location) {
                lines.append("  web rule \(rule.name): \(rule.action.rawValue)\(rule.timeWindow.map { " during \($0)" } ?? "")")
            }
            for expectation in policy.expectations where local(expectation.location) {
                lines.append("  expect \(expectation.name)")
            }
        }
        return lines
    }

    /// `policy list --json`: the same as `listing`, a file each with its blocks in
    /// evaluation order; documented in the README under "policy list --json".
    /// `counters`: the kernel's, when they could be read (root); each policy's `flows` is null otherwise.
    public static func listingJSON(_ policy: PolicySet, at instant: Date, counters: PolicyCounters? = nil) -> String {
        let graph = AccessGraph(policy)
        let files = policy.files.map { file -> [String: Any?] in
            let local = { (location: SourceLocation) in location.file == file }
            var blocks: [(line: Int, block: [String: Any?])] = []
            for system in policy.systems where local(system.location) {
                blocks.append((system.location.line, ["kind": "system", "name": system.name, "line": system.location.line, "tags": system.tags]))
            }
            for entry in graph.entries where local(entry.policy.location) {
                let reason = graph.inactiveReason(entry, at: instant)
                blocks.append((entry.policy.location.line, ["kind": entry.policy.kindWord, "name": entry.policy.name, "line": entry.policy.location.line,
                                                          "pairs": entry.connectedPairs, "active": reason == nil, "inactive_reason": reason,
                                                          "flows": counters?.flows(of: entry.policy.name)]))
            }
            for rule in policy.webRules where local(rule.location) {
                blocks.append((rule.location.line, ["kind": "web-rule", "name": rule.name, "line": rule.location.line,
                                                    "action": rule.action.rawValue, "time_window": rule.timeWindow.map { "\($0)" }]))
            }
            for expectation in policy.expectations where local(expectation.location) {
                blocks.append((expectation.location.line, ["kind": "expect", "name": expectation.name, "line": expectation.location.line]))
            }
            return ["file": (file as NSString).lastPathComponent, "path": file, "blocks": blocks.sorted { $0.line < $1.line }.map(\.block)]
        }
        return JSONText.document(["directory": policy.directory, "at": instant, "counters_read": counters != nil, "files": files])
    }
}
