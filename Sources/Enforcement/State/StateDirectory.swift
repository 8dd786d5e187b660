import Compiler
import Foundation
import Kernel

/// What enforcer keeps between runs (default /var/lib/enforcer): the state database
/// (`state.sqlite`: the applied generations, the policies' mark ids, the history), runtime
/// overrides (`policy enable|disable`, `trust`), the daemon's report and a pending
/// `apply --confirm`.
public struct StateDirectory: Sendable {
    public let path: String
    public let generations: GenerationStore

    public init(path: String) {
        self.path = path
        generations = GenerationStore(directory: path)
    }

    /// `--state-dir` when given, else `[state] directory` of the policy's enforcer.conf.
    public init(option: String?, config: Config) {
        self.init(path: option ?? config.stateDirectory)
    }

    /// Policy name → mark id: earlier applies' ids kept, new policies numbered after them,
    /// so a flow's mark keeps its meaning across reloads.
    public func policyIDs(for policy: PolicySet) -> PolicyIDs {
        generations.policyIDs().assigning(policy.policies.map(\.name))
    }

    /// Checks the directory (see `StateGuard`) and takes its lock: applies, rollbacks,
    /// confirms, flushes and the daemon's own changes happen one at a time. While another
    /// process holds it, `waiting` is told who, and this one waits. Released when the
    /// returned lock is released or dropped, or the process ends.
    public func lock(for purpose: String, waiting: (String) -> Void = StateDirectory.sayWaiting) throws(EnforcementError) -> StateLock {
        do { try StateGuard(path: path).secure() } catch { throw .refused(["enforcer: \(error)"]) }
        let holder = "pid \(getpid()) (\(purpose)) since \(ISO8601.string(Date()))"
        do { return StateLock(file: try FileLock(directory: path, name: "lock", holder: holder, waiting: waiting)) } catch {
            throw .refused(["enforcer: \(error)"])
        }
    }

    public static func sayWaiting(_ holder: String) {
        FileHandle.standardError.write(Data("enforcer: waiting for the state lock, held by \(holder)\n".utf8))
    }

    public var overrides: OverridesFile { OverridesFile(directory: path) }
    public var daemonReport: String { path + "/daemon.json" }
    public var pendingConfirm: String { path + "/pending-confirm.json" }
    public var watchdogLog: String { path + "/watchdog.log" }

    /// The generation recorded as live and how to describe it, for the dry run's difference
    /// (without root the kernel cannot be asked).
    public func recordedLive() -> (ruleset: Ruleset, description: String)? {
        guard let current = generations.currentNumber(), let ruleset = try? generations.ruleset(current),
              let info = try? generations.info(current) else { return nil }
        return (ruleset, "generation \(current), applied \(ISO8601.string(info.appliedAt)) for \(info.system), as recorded in \(path)")
    }

    /// Senders that deltas added to the recent table of the live generation.
    public func recentSenders() -> Int {
        generations.currentNumber().map { generations.recent($0).values.reduce(0) { $0 + $1.count } } ?? 0
    }
}

/// The state directory's lock, held while it lives.
public final class StateLock {
    private let file: FileLock
    init(file: FileLock) { self.file = file }
    public func release() { file.release() }
}
