import Compiler
import Foundation
import Kernel

/// What the kernel's counter objects say: flows each policy granted, packets each hook's
/// default deny dropped. `enforcer status`, `enforcer policy list` and the metrics endpoint
/// read them; the counts are the kernel's, read when asked, never kept by enforcer.
public struct PolicyCounters: Sendable, Equatable {
    public struct Value: Sendable, Equatable, Codable {
        public var packets: UInt64
        public var bytes: UInt64
        public init(packets: UInt64, bytes: UInt64) {
            self.packets = packets
            self.bytes = bytes
        }
    }

    /// By counter object name (`CounterNames`), the main table's and the recent table's added.
    public var byCounter: [String: Value]
    /// Policy name → its id, as the state directory keeps them.
    public var policyIDs: [String: Int]

    public init(byCounter: [String: Value], policyIDs: [String: Int]) {
        self.byCounter = byCounter
        self.policyIDs = policyIDs
    }

    /// Flows the policy granted (its counter's packets: one per flow), nil when the table has
    /// no counter for it (the policy is not enforced on this system).
    public func flows(of policy: String) -> UInt64? {
        policyIDs[policy].flatMap { byCounter[CounterNames.policy($0)]?.packets }
    }

    /// Bytes of the first packets of the flows the policy granted.
    public func bytes(of policy: String) -> UInt64? {
        policyIDs[policy].flatMap { byCounter[CounterNames.policy($0)]?.bytes }
    }

    /// Packets and bytes the default deny dropped, by hook name (`input`, `forward`).
    public var defaultDeny: [(hook: String, value: Value)] {
        byCounter.compactMap { name, value in CounterNames.defaultDenyHook(of: name).map { ($0.rawValue, value) } }.sorted { $0.hook > $1.hook }
    }

    /// ", 3 flows granted" or ", never hit"; nothing for a policy without a counter here.
    public func phrase(for policy: String) -> String {
        guard let flows = flows(of: policy) else { return "" }
        return flows == 0 ? ", never hit" : ", \(counted(Int(clamping: flows), "flow")) granted"
    }

    /// The counters of enforcer's tables `table` and its recent table (root only), or why
    /// they were not read.
    public static func read(table: String, state: StateDirectory) -> Result<PolicyCounters, CountersUnread> {
        guard geteuid() == 0 else { return .failure(CountersUnread(reason: "reading the kernel's counters takes root")) }
        do {
            let connection = try NFTablesConnection()
            var byCounter: [String: Value] = [:]
            for name in [table, RecentTable.name(of: table)] {
                for (counter, value) in try KernelTable(family: .inet, name: name, connection: connection).counters() {
                    let before = byCounter[counter] ?? Value(packets: 0, bytes: 0)
                    byCounter[counter] = Value(packets: before.packets &+ value.packets, bytes: before.bytes &+ value.bytes)
                }
            }
            return .success(PolicyCounters(byCounter: byCounter, policyIDs: state.generations.policyIDs().assigned))
        } catch {
            return .failure(CountersUnread(reason: "\(error)"))
        }
    }

    /// For `status --json`: by policy name, flows and bytes with whether it was ever hit; the
    /// default deny by hook.
    public var jsonObject: [String: Any] {
        var policies: [String: Any] = [:]
        for name in policyIDs.keys {
            guard let flows = flows(of: name) else { continue }
            policies[name] = ["flows": flows, "bytes": bytes(of: name) ?? 0, "never_hit": flows == 0]
        }
        var deny: [String: Any] = [:]
        for (hook, value) in defaultDeny { deny[hook] = ["packets": value.packets, "bytes": value.bytes] }
        return ["policies": policies, "default_deny": deny]
    }
}

public struct CountersUnread: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { reason }
}
