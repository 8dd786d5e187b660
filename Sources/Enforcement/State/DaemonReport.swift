import Compiler
import Foundation
import Glibc
import NFQueue

/// What `enforcer run` reports about itself, kept in the state directory as daemon.json.
public struct DaemonReport: Codable, Sendable {
    public struct PolicyState: Codable, Sendable {
        /// The policy's name, its kind word and the hook it is enforced in.
        public var name, kind, hook: String
        public var active: Bool
        public var reason: String?
    }
    public struct NextFlip: Codable, Sendable {
        public var at: Date
        public var policies: [String]
    }
    public struct Reload: Codable, Sendable {
        public var at: Date
        public var ok: Bool
        public var message: String
    }
    /// Changes to enforcer's tables by other processes: how many times, the last one.
    public struct Drift: Codable, Sendable {
        public var count = 0
        public var restored = 0
        public var lastAt: Date?
        public var lastChanges: [String] = []
        public var lastOutcome: String?
    }

    public var pid: Int32
    public var startedAt: Date
    public var stoppedAt: Date?
    public var system: String
    public var policyDirectory: String
    public var generation: Int?
    public var appliedAt: Date?
    public var policies: [PolicyState] = []
    public var nextFlip: NextFlip?
    public var lastReload: Reload?
    public var counters: WorkerCounters?
    public var drift: Drift?
    /// The fleet store this daemon follows (`enforcer run --store`), nil for a policy directory.
    public var store: Store?

    public struct Store: Codable, Sendable, Equatable {
        /// "http://… (fleet NAME)".
        public var summary: String
        /// The store revision of the bundle enforced.
        public var revision: Int64
        public var connected: Bool
        /// The last store revision the watch has seen.
        public var seenRevision: Int64
        public var lastError: String?
    }

    public init(pid: Int32, startedAt: Date, system: String, policyDirectory: String) {
        self.pid = pid
        self.startedAt = startedAt
        self.system = system
        self.policyDirectory = policyDirectory
    }

    public mutating func record(compiled: CompiledHost, generation: Int?, at instant: Date) {
        self.generation = generation
        appliedAt = instant
        policies = compiled.enforced.map {
            PolicyState(name: $0.entry.policy.name, kind: $0.entry.policy.kindWord, hook: "\($0.hook)", active: $0.inactiveReason == nil, reason: $0.inactiveReason)
        }
    }

    public func write(to state: StateDirectory) throws {
        try FileManager.default.createDirectory(atPath: state.path, withIntermediateDirectories: true)
        try StateJSON.encoder().encode(self).write(to: URL(fileURLWithPath: state.daemonReport), options: .atomic)
    }

    public static func read(from state: StateDirectory) throws -> DaemonReport {
        try StateJSON.decoder().decode(DaemonReport.self, from: Data(contentsOf: URL(fileURLWithPath: state.daemonReport)))
    }

    /// Whether the daemon that wrote this report still runs. A process of another user
    /// (root's daemon, asked by an operator's `enforcer status`) answers the probe with
    /// EPERM: it exists, we just may not signal it. Only ESRCH means it is gone.
    public var isRunning: Bool {
        guard stoppedAt == nil else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }
}
