import Foundation

/// Policies resolved to the systems they connect: the one place where tags, trust and
/// schedules are interpreted. The host compiler and `enforcer test` both read it.
public struct AccessGraph: Sendable {
    /// Copied often (a compile hands entries to several lists, and the incremental compile
    /// keeps a thousand of them between edits), so its parts live in one shared object and a
    /// copy costs one reference count, not one per array and string inside.
    public struct Entry: Sendable {
        private final class Parts: Sendable {
            let policy: AccessPolicy, id: Int, senders: [SystemDefinition], trustedSenders: [SystemDefinition],
                revokedSenders: [SystemDefinition], receivers: [SystemDefinition], subnets: [AddressBlock], gateway: String?
            init(policy: AccessPolicy, id: Int, senders: [SystemDefinition], trustedSenders: [SystemDefinition], revokedSenders: [SystemDefinition],
                 receivers: [SystemDefinition], subnets: [AddressBlock], gateway: String?) {
                (self.policy, self.id, self.senders, self.trustedSenders, self.revokedSenders, self.receivers, self.subnets, self.gateway) =
                    (policy, id, senders, trustedSenders, revokedSenders, receivers, subnets, gateway)
            }
        }
        private let parts: Parts

        init(policy: AccessPolicy, id: Int, senders: [SystemDefinition], trustedSenders: [SystemDefinition], revokedSenders: [SystemDefinition],
             receivers: [SystemDefinition], subnets: [AddressBlock], gateway: String?) {
            parts = Parts(policy: policy, id: id, senders: senders, trustedSenders: trustedSenders, revokedSenders: revokedSenders,
                          receivers: receivers, subnets: subnets, gateway: gateway)
        }

        public var policy: AccessPolicy { parts.policy }
        /// 1-based; the value carried in the conntrack mark of flows this policy granted.
        public var id: Int { parts.id }
        /// Systems holding a sender tag.
        public var senders: [SystemDefinition] { parts.senders }
        /// Senders that also meet the policy's trust requirements.
        public var trustedSenders: [SystemDefinition] { parts.trustedSenders }
        /// Senders that lost a requirement of this policy (revoked, or run out), and systems
        /// holding a sender tag that expired: their existing flows under it are cut.
        public var revokedSenders: [SystemDefinition] { parts.revokedSenders }
        /// Systems holding a receiver tag (empty for gateway policies).
        public var receivers: [SystemDefinition] { parts.receivers }
        /// Routed subnets (gateway policies).
        public var subnets: [AddressBlock] { parts.subnets }
        public var gateway: String? { parts.gateway }

        /// Unordered pairs of distinct systems the policy connects (16 in full mesh → 120).
        public var connectedPairs: Int {
            if policy.isGateway { return senders.count }
            let s = Set(senders.map(\.name)), r = Set(receivers.map(\.name))
            let both = s.intersection(r).count
            return s.count * r.count - both - both * (both - 1) / 2
        }
    }

    public var entries: [Entry]
    public var policySet: PolicySet
    public var trust: TrustGrants

    /// `ids` fixes the mark value of each policy by name (kept across reloads, so flows keep
    /// their meaning); policies not in it are numbered after the largest id.
    public init(_ policySet: PolicySet, trust: TrustGrants = TrustGrants(), revoked: [String: Set<String>] = [:], ids: PolicyIDs = PolicyIDs()) {
        let assigned = ids.assigning(policySet.policies.map(\.name)).assigned
        self.policySet = policySet
        self.trust = trust
        var tagged: [String: [SystemDefinition]] = [:]
        for system in policySet.systems {
            for tag in system.tags { tagged[tag, default: []].append(system) }
        }
        func holders(_ tags: [String]) -> [SystemDefinition] {
            var seen = Set<String>()
            var out: [SystemDefinition] = []
            for tag in tags {
                for system in tagged[tag] ?? [] where seen.insert(system.name).inserted { out.append(system) }
            }
            return out
        }
        let expired = policySet.expired
        entries = policySet.policies.map { policy in
            Self.entry(for: policy, id: assigned[policy.name]!, holders: holders, trust: trust, revoked: revoked, expired: expired)
        }
    }

    /// The graph in force at `instant`: the files with the runtime overrides applied (an
    /// `enable --for` past its end pruned; trust grants that ran out count as revoked).
    public init(_ policySet: PolicySet, overrides: RuntimeOverrides, at instant: Date, ids: PolicyIDs = PolicyIDs()) {
        let overrides = overrides.pruned(at: instant)
        self.init(overrides.applied(to: policySet), trust: overrides.trustGrants(at: instant),
                  revoked: overrides.revokedTrust(at: instant), ids: ids)
    }

    /// One policy's entry; `holders` gives the systems holding any of some tags, each once,
    /// in tag order and then definition order. Shared with the incremental compile, which
    /// rebuilds only the entries an edit touches.
    static func entry(for policy: AccessPolicy, id: Int, holders: ([String]) -> [SystemDefinition],
                      trust: TrustGrants, revoked: [String: Set<String>], expired: [SystemDefinition]) -> Entry {
        let senders = holders(policy.senders)
        let trusted = policy.trust.isEmpty ? senders : senders.filter { trust.satisfies($0.name, policy.trust) }
        let lost = senders.filter { sender in
            !trust.satisfies(sender.name, policy.trust) && !(revoked[sender.name] ?? []).isDisjoint(with: policy.trust)
        }
        var revokedSenders = lost
        // Few systems are expired at a time: a scan, not an index. An address an expired
        // system shares with a sender in force is not cut: that sender's flows are its own.
        if !expired.isEmpty {
            let tags = Set(policy.senders)
            for system in expired where !tags.isDisjoint(with: system.tags) {
                let free = system.addresses.filter { block in !senders.contains { $0.addresses.contains { $0.range.overlaps(block.range) } } }
                guard !free.isEmpty else { continue }
                revokedSenders.append(free.count == system.addresses.count ? system
                    : SystemDefinition(name: system.name, location: system.location, addresses: free, tags: system.tags, expires: system.expires))
            }
        }
        switch policy.reach {
        case .direct(let receivers):
            return Entry(policy: policy, id: id, senders: senders, trustedSenders: trusted, revokedSenders: revokedSenders,
                         receivers: holders(receivers), subnets: [], gateway: nil)
        case .gateway(let gateway, let subnets):
            return Entry(policy: policy, id: id, senders: senders, trustedSenders: trusted, revokedSenders: revokedSenders,
                         receivers: [], subnets: subnets, gateway: gateway)
        }
    }

    /// Why `entry` grants nothing at `instant`, or nil when it is in force.
    public func inactiveReason(_ entry: Entry, at instant: Date) -> String? {
        if let reason = entry.policy.schedule.inactiveReason(at: instant) { return reason }
        if entry.trustedSenders.isEmpty && !entry.senders.isEmpty {
            return "no sender meets trust \(entry.policy.trust.joined(separator: ", "))"
        }
        return nil
    }

    /// Systems that route traffic for a gateway policy.
    public var gateways: Set<String> { Set(entries.compactMap(\.gateway)) }
}

/// Policy name → mark id, kept in the state directory. A policy keeps its id for as long
/// as the record lives, also while it is removed (re-adding it brings the same id back), so
/// a conntrack mark never silently changes meaning across reloads.
public struct PolicyIDs: Codable, Hashable, Sendable {
    public var assigned: [String: Int]

    public init(assigned: [String: Int] = [:]) { self.assigned = assigned }

    /// Every name in `names` with an id: known names keep theirs, new ones follow the largest.
    public func assigning(_ names: [String]) -> PolicyIDs {
        var out = self
        var next = (assigned.values.max() ?? 0) + 1
        for name in names where out.assigned[name] == nil {
            out.assigned[name] = next
            next += 1
        }
        return out
    }
}
