/// The names of the table's counter objects. A policy's counter is named after its id, which
/// the state directory keeps for the policy's life (a rename keeps it), never after its name:
/// names are free text, and the counts must follow the policy, not its spelling.
public enum CounterNames {
    /// Flows a policy granted: counted in its grant chain, which a flow passes once, when the
    /// policy grants its first packet.
    public static func policy(_ id: Int) -> String { "policy_\(id)" }

    /// Packets the hook's default deny dropped: whatever reached the end of its base chain.
    public static func defaultDeny(_ hook: Hook) -> String { "deny_\(hook.rawValue)" }

    /// The policy id a counter of `policy(_:)` counts for, or nil for any other name.
    public static func policyID(of name: String) -> Int? {
        guard name.hasPrefix("policy_") else { return nil }
        return Int(name.dropFirst("policy_".count))
    }

    /// The hook a counter of `defaultDeny(_:)` counts for, or nil for any other name.
    public static func defaultDenyHook(of name: String) -> Hook? {
        guard name.hasPrefix("deny_") else { return nil }
        return Hook(rawValue: String(name.dropFirst("deny_".count)))
    }
}
