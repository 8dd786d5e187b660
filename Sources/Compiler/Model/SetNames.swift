// The names the compiler gives the sets whose role matters beyond their rules. The kernel
// side never uses them: it finds sets by role (`NamedSet.Role`). They live in the model
// because generations recorded before sets carried a role are read back by these names.

/// The names of the maps from a sender address to its class chain, per hook.
public enum SenderMaps {
    /// `in` for the input hook, `fwd` for forward.
    public static let prefixes = ["in", "fwd"]

    /// Single addresses (hash map, one element each).
    public static func hosts(_ prefix: String, _ family: IPFamily) -> String { "\(prefix)_hosts_\(family == .v4 ? "v4" : "v6")" }
    /// Ranges and CIDRs (interval map).
    public static func ranges(_ prefix: String, _ family: IPFamily) -> String { "\(prefix)_senders_\(family == .v4 ? "v4" : "v6")" }

    public static let allHosts: Set<String> = Set(prefixes.flatMap { prefix in [IPFamily.v4, .v6].map { hosts(prefix, $0) } })
    public static let all: Set<String> = allHosts.union(prefixes.flatMap { prefix in [IPFamily.v4, .v6].map { ranges(prefix, $0) } })
}

extension NamedSet {
    /// The set of policy marks in force for a while.
    public static let timedGrantsName = "timed_policies"
}

extension NamedSet.Role {
    /// The role a set recorded without one has, from its name.
    init(recordedName name: String) {
        if name == NamedSet.timedGrantsName { self = .timedGrants }
        else if SenderMaps.allHosts.contains(name) { self = .senderHostsMap }
        else if SenderMaps.all.contains(name) { self = .senderRangesMap }
        else { self = .plain }
    }
}
