/// How enforcer uses the bits of the conntrack and packet marks: only those under the
/// configured mask. The lowest two bits under the mask carry the web verdict of a flow,
/// the rest the id of the policy that granted it.
public struct MarkLayout: Hashable, Sendable {
    public let mask: UInt32

    public init(mask: UInt32) { self.mask = mask }

    private var shift: Int { mask.trailingZeroBitCount }
    public var webMask: UInt32 { 0b11 << UInt32(shift) }
    public var policyMask: UInt32 { mask & ~webMask }
    /// Largest policy id the mask can hold.
    public var maxPolicyID: Int { Int(policyMask >> UInt32(shift + 2)) }

    public func policyMark(_ id: Int) -> UInt32 { UInt32(id) << UInt32(shift + 2) }
    public func webMark(_ state: WebFlowState) -> UInt32 { state.rawValue << UInt32(shift) }
}

/// The web decision a flow carries once the worker has judged it.
public enum WebFlowState: UInt32, Hashable, Sendable, CaseIterable {
    case undecided = 0
    case permitted = 1
    case denied = 2
    /// warn/aup (and deny with `deny_page`) on plain HTTP: the worker answered with the
    /// portal redirect.
    case redirected = 3
}
