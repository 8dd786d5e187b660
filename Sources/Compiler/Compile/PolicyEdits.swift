import Foundation

extension PolicySet {
    /// The edits that turn this policy set (as loaded) into `new`, for `IncrementalHost`;
    /// nil when `new` differs in something the edits cannot say, and the host is compiled
    /// in full instead: `enforcer.conf`, any web rule (they decide which flows are queued),
    /// or the order of the systems or policies that stay (a name defined again in another
    /// place). A system or policy that comes must come after all that stay, as the
    /// incremental compile puts it last; one that goes may go from anywhere.
    ///
    /// Systems are compared by their addresses and tags, policies by everything the
    /// compile reads; where a definition stands in its file (its location) does not count.
    public func edits(to new: PolicySet) -> [PolicyEdit]? {
        guard config == new.config, webRules.isEmpty, new.webRules.isEmpty else { return nil }
        var edits: [PolicyEdit] = []

        // Most reloads change a few systems in place: pair the two lists in order, by
        // identity first (a load that kept a block keeps its system), without hashing ten
        // thousand names; anything else (a system added, removed or moved) by name below.
        if systems.count == new.systems.count, zip(systems, new.systems).allSatisfy({ $0.name == $1.name }) {
            for (old, system) in zip(systems, new.systems) where old !== system && !old.compilesLike(system) {
                edits.append(.setSystem(system))
            }
            return policyEdits(to: new, after: edits)
        }

        let newSystems = Dictionary(new.systems.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let oldSystems = Dictionary(systems.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let keptSystems = systems.filter { newSystems[$0.name] != nil }.map(\.name)
        guard new.systems.prefix(keptSystems.count).map(\.name) == keptSystems else { return nil }
        for old in systems where newSystems[old.name] == nil { edits.append(.removeSystem(old.name)) }
        for system in new.systems {
            if let old = oldSystems[system.name], old === system || old.compilesLike(system) { continue }
            edits.append(.setSystem(system))
        }
        return policyEdits(to: new, after: edits)
    }

    /// `edits` (of the systems) followed by the edits of the policies; nil as above.
    private func policyEdits(to new: PolicySet, after systemEdits: [PolicyEdit]) -> [PolicyEdit]? {
        var edits = systemEdits
        if expired.count != new.expired.count || !zip(expired, new.expired).allSatisfy({ $0 === $1 || ($0.name == $1.name && $0.compilesLike($1)) }) {
            edits.append(.setExpired(new.expired))
        }
        // As with systems: the same names in the same places are compared pair by pair,
        // without copying a thousand policies into dictionaries.
        if policies.count == new.policies.count, policies.indices.allSatisfy({ policies[$0].name == new.policies[$0].name }) {
            for index in policies.indices where !policies[index].compilesLike(new.policies[index]) { edits.append(.setPolicy(new.policies[index])) }
            return edits
        }
        let newPolicies = Dictionary(new.policies.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let oldPolicies = Dictionary(policies.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let keptPolicies = policies.filter { newPolicies[$0.name] != nil }.map(\.name)
        guard new.policies.prefix(keptPolicies.count).map(\.name) == keptPolicies else { return nil }
        for old in policies where newPolicies[old.name] == nil { edits.append(.removePolicy(old.name)) }
        for policy in new.policies {
            if let old = oldPolicies[policy.name], old.compilesLike(policy) { continue }
            edits.append(.setPolicy(policy))
        }
        return edits
    }
}

extension AccessPolicy {
    /// Equal in everything a compile reads: all but the location and the load order (which only web rules use).
    func compilesLike(_ other: AccessPolicy) -> Bool {
        name == other.name && senders == other.senders && reach.sameReach(as: other.reach) && allow == other.allow
            && schedule == other.schedule && trust == other.trust && description == other.description
    }
}

extension AccessPolicy.Reach {
    func sameReach(as other: AccessPolicy.Reach) -> Bool {
        switch (self, other) {
        case let (.direct(a), .direct(b)): a == b
        case let (.gateway(g, s), .gateway(h, t)): g == h && s == t
        default: false
        }
    }
}

extension SystemDefinition {
    /// Whether a compile makes the same of both: the same addresses and tags. An expiry
    /// alone changes nothing until it comes, and then the system is gone from the policy
    /// (`PolicySet.systemsInForce(at:)`).
    func compilesLike(_ other: SystemDefinition) -> Bool { addresses == other.addresses && tags == other.tags }
}
