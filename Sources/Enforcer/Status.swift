import ArgumentParser
import Compiler
import Foundation
import Kernel
import NFQueue

/// `enforcer status`: what the running daemon reports in the state directory.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the live generation, active and inactive policies, next flips, queue counters and the last reload.",
        discussion: "Reads what `enforcer run` keeps in the state directory; needs no root.")

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let state = self.state.stateDir ?? stateDirectory(directory)
        let store = GenerationStore(directory: state)
        let live = store.currentNumber()
        let daemon = try? DaemonStatus.read(from: state)
        let overrides = OverrideFile.read(state).pruned(at: Date())
        let running = daemon.map { $0.stoppedAt == nil && kill($0.pid, 0) == 0 } ?? false
        let recent = live.map { store.recent($0).values.reduce(0) { $0 + $1.count } } ?? 0
        if json {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            let daemonJSON = try daemon.map { try JSONSerialization.jsonObject(with: encoder.encode($0)) }
            let overridesJSON = try JSONSerialization.jsonObject(with: encoder.encode(overrides))
            print(Output.json(["state_directory": state, "generation": live, "recent_senders": recent, "running": running, "daemon": daemonJSON,
                               "overrides": overridesJSON]))
            return
        }
        print("generation: \(live.map { "generation \($0) is live" } ?? "none applied") (\(state))")
        if recent > 0 {
            print("recent table: \(recent) sender\(recent == 1 ? "" : "s") added by deltas, until `enforcer apply --replace` folds them into the main table")
        }
        let format = ISO8601DateFormatter()
        for (name, change) in overrides.policies.sorted(by: { $0.key < $1.key }) {
            let when = change.enabled ? change.until.map { " until \(format.string(from: $0)) (kernel timeout)" } ?? "" : change.from.map { " from \(format.string(from: $0))" } ?? ""
            print("override: '\(name)' \(change.enabled ? "enabled" : "disabled")\(when) by `enforcer policy \(change.enabled ? "enable" : "disable")`")
        }
        for (system, records) in overrides.trust.sorted(by: { $0.key < $1.key }) {
            for (requirement, record) in records.sorted(by: { $0.key < $1.key }) {
                let holds = record.holds(at: Date())
                print("trust: \(system) \(requirement) \(holds ? "granted" + (record.until.map { " until \(format.string(from: $0))" } ?? "") : "revoked")")
            }
        }
        guard let daemon else {
            print("daemon: no report from `enforcer run` in \(state)")
            return
        }
        if running {
            print("daemon: running (pid \(daemon.pid)) for \(daemon.system) since \(format.string(from: daemon.startedAt)), policy \(daemon.policyDirectory)")
        } else {
            print("daemon: not running (last report \(daemon.stoppedAt.map { "stopped \(format.string(from: $0))" } ?? "from pid \(daemon.pid), which is gone"))")
        }
        print("policies:")
        for policy in daemon.policies {
            print("  \(policy.active ? "active  " : "inactive") \(policy.kind) '\(policy.name)' (\(policy.hook))\(policy.reason.map { ": \($0)" } ?? "")")
        }
        if daemon.policies.isEmpty { print("  none enforced on \(daemon.system)") }
        print("next flip: " + (daemon.nextFlip.map { "\(format.string(from: $0.at)) \($0.policies.map { "'\($0)'" }.joined(separator: ", "))" } ?? "none scheduled"))
        if let counters = daemon.counters {
            print("queue: packets \(counters.packets), permitted \(counters.permitted), denied \(counters.denied), redirected \(counters.redirected), fail verdicts \(counters.failVerdicts), flows tracked \(counters.flowsTracked)")
        } else {
            print("queue: no worker (no web rules on this system)")
        }
        if let reload = daemon.lastReload {
            print("last reload: \(format.string(from: reload.at)) \(reload.ok ? "ok" : "refused"): \(reload.message)")
        }
    }
}
