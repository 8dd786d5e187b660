import Compiler
import Foundation
import Glibc
import Kernel

/// `policy enable|disable` and `trust grant|revoke`: recorded in the state directory, then
/// a running daemon for the same policy is told to reload (otherwise `enforcer apply` puts
/// them in force).
extension Pipeline {
    /// Switches policy `name` on or off as `make(now)` says; returns the lines to print.
    public func override(policy name: String, _ make: (Date) -> EnabledOverride) throws(EnforcementError) -> [String] {
        let policy = try load().policy
        guard policy.policies.contains(where: { $0.name == name }) else {
            throw .notFound("no policy named '\(name)' in \(source.location) (policies: \(policy.policies.map { "'\($0.name)'" }.joined(separator: ", ")))")
        }
        let state = state(for: policy)
        let now = Date()
        let change = make(now)
        try record(state, now: now) { $0.policies[name] = change }
        let line = change.summary(of: name)
        state.record(HistoryEvent(at: now, kind: .override, generation: state.generations.currentNumber(), summary: "policy " + line),
                     purpose: change.enabled ? "policy enable" : "policy disable")
        return [line, signalDaemon(state)]
    }

    /// Records whether `system` meets `requirement`, as `make(now)` says; returns the lines to print.
    public func trust(_ system: String, _ requirement: String, _ make: (Date) -> TrustRecord) throws(EnforcementError) -> [String] {
        let policy = try load().policy
        guard policy.system(named: system) != nil else { throw .notFound("no system named '\(system)' in \(source.location)") }
        let needing = policy.policies.filter { $0.trust.contains(requirement) }.map { "'\($0.name)'" }
        let state = state(for: policy)
        let now = Date()
        let change = make(now)
        try record(state, now: now) { $0.trust[system, default: [:]][requirement] = change }
        let what = change.summary
        state.record(HistoryEvent(at: now, kind: .override, generation: state.generations.currentNumber(), summary: "trust \(system) \(requirement): \(what)"),
                     purpose: change.granted ? "trust grant" : "trust revoke")
        return ["\(system) \(requirement): \(what)" + (needing.isEmpty ? " (no policy requires it)" : " (required by \(needing.joined(separator: ", ")))"),
                signalDaemon(state)]
    }

    /// Every trust record and whether it holds at `instant`, a line each.
    public func trustRecords(at instant: Date) -> [String] {
        let lines = state().overrides.read().trustLines(at: instant)
        return lines.isEmpty ? ["no trust records"] : lines
    }

    /// `trust list --json`: every record, whether it holds at `instant`; documented in the
    /// README under "trust list --json".
    public func trustRecordsJSON(at instant: Date) -> String {
        let state = state()
        let overrides = state.overrides.read()
        var records: [[String: Any?]] = []
        for (system, byRequirement) in overrides.trust.sorted(by: { $0.key < $1.key }) {
            for (requirement, record) in byRequirement.sorted(by: { $0.key < $1.key }) {
                records.append(["system": system, "requirement": requirement, "granted": record.granted,
                                "until": record.until, "holds": record.holds(at: instant)])
            }
        }
        return JSONText.document(["state_directory": state.path, "at": instant, "records": records])
    }

    private func record(_ state: StateDirectory, now: Date, _ change: (inout RuntimeOverrides) -> Void) throws(EnforcementError) {
        var overrides = state.overrides.read().pruned(at: now)
        change(&overrides)
        do { try state.overrides.write(overrides) } catch {
            throw .refused(["enforcer: cannot write \(state.overrides.path): \(SystemErrno.describe(error))"])
        }
    }

    /// SIGHUP to `enforcer run` when its report in the state directory names a live process
    /// serving this policy; what happened, as a line.
    public func signalDaemon(_ state: StateDirectory) -> String {
        guard let report = try? DaemonReport.read(from: state), report.isRunning,
              let directory = source as? PolicyDirectory, report.policyDirectory == directory.standardizedPath else {
            return "no running `enforcer run` for this directory; apply with `enforcer apply`"
        }
        // A daemon of another user counts as running (see `isRunning`) but may refuse the signal.
        guard kill(report.pid, SIGHUP) == 0 else {
            return "enforcer run (pid \(report.pid)) was not told to reload (\(String(cString: strerror(errno)))); send it SIGHUP as its user, or `systemctl reload enforcer`"
        }
        return "reloading enforcer run (pid \(report.pid))"
    }
}

extension EnabledOverride {
    /// "'NAME' enabled until …", "'NAME' disabled from …": what `policy enable|disable` prints
    /// and records, on a host or for a fleet.
    public func summary(of name: String) -> String {
        switch (enabled, until, from) {
        case (true, let until?, _): "'\(name)' enabled until \(ISO8601.string(until))"
        case (true, nil, _): "'\(name)' enabled"
        case (false, _, let from?): "'\(name)' disabled from \(ISO8601.string(from))"
        case (false, _, nil): "'\(name)' disabled"
        }
    }
}

extension RuntimeOverrides {
    /// Each trust record, "SYSTEM REQUIREMENT: granted [until …]" or "… revoked" as it stands
    /// at `instant`, sorted: what `trust list` prints, on a host or for a fleet.
    public func trustLines(at instant: Date) -> [String] {
        var lines: [String] = []
        for (system, records) in trust.sorted(by: { $0.key < $1.key }) {
            for (requirement, record) in records.sorted(by: { $0.key < $1.key }) {
                let state = record.holds(at: instant) ? "granted" + (record.until.map { " until \(ISO8601.string($0))" } ?? "") : "revoked"
                lines.append("\(system) \(requirement): \(state)")
            }
        }
        return lines
    }
}

extension TrustRecord {
    /// "granted", "granted until …" or "revoked": as recorded, not as it stands at some instant.
    public var summary: String { granted ? "granted" + (until.map { " until \(ISO8601.string($0))" } ?? "") : "revoked" }
}
