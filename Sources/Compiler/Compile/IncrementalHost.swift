import Foundation

/// One change to what a host's ruleset is compiled from.
public enum PolicyEdit: Sendable {
    /// A system added (a name not defined yet: it goes last) or changed (its addresses or
    /// tags: it keeps its place).
    case setSystem(SystemDefinition)
    case removeSystem(String)
    /// A policy added (last) or changed in place, as the files say it (without the runtime
    /// overrides, which `overrides` carries).
    case setPolicy(AccessPolicy)
    case removePolicy(String)
    /// The systems expired by now (`PolicySet.expired`), whole: their flows are cut.
    case setExpired([SystemDefinition])
    /// The runtime overrides as they are now, whole (`policy enable|disable`, `trust
    /// grant|revoke`): the state directory's record after the command.
    case overrides(RuntimeOverrides)
    /// The clock moved on: a time window or an expiry flipped, a trust grant ran out.
    case instant(Date)
}

/// A host's compiled ruleset kept up to date edit by edit.
///
/// A full compile sweeps every sender address (a million at the benchmark's size) into
/// sender classes. An edit of one system or one policy changes the classes of a few of
/// them, so this keeps what the sweep found (`SenderClasses`) with the indexes that tell
/// which addresses an edit touches (systems by tag, policies by the tags they name), sweeps
/// only those again, and rebuilds the rest of the table, which is small, as the full
/// compile does (the same `RulesetBuilder` code). The result is the full compile's
/// ruleset, element for element and in the same order; `apply` also says what changed so
/// the kernel side need not compare a million elements to find out.
///
/// Some edits are compiled in full instead, each counted in `fallbacks` under its reason:
/// the host's own system changed (its tags pick the policies it receives, its addresses
/// are left out of the maps), it became or stopped being a gateway, or a hosts map's
/// verdict table outgrew its 65,536 classes.
public struct IncrementalHost {
    public let hostName: String
    /// The ruleset and what the plan shows beside it, as `HostCompiler.compile` gives them.
    public private(set) var compiled: CompiledHost
    public var ruleset: Ruleset { compiled.ruleset }
    /// The access graph in force (the files with the overrides applied).
    public private(set) var graph: AccessGraph
    public private(set) var overrides: RuntimeOverrides
    public private(set) var instant: Date
    /// Every policy's mark id, the new ones included: what the state directory keeps.
    public private(set) var policyIDs: PolicyIDs
    /// Edits compiled in full, by reason.
    public private(set) var fallbacks: [String: Int] = [:]
    /// Edits (calls of `apply`) compiled incrementally.
    public private(set) var incrementalEdits = 0

    private var host: SystemDefinition
    private var systemPosition: [String: Int] = [:]
    /// Holders of each tag, in definition order (as the access graph lists them).
    private var tagged: [String: [SystemDefinition]] = [:]
    private var policyPosition: [String: Int] = [:]
    /// Policies naming each tag among their senders, and among their receivers.
    private var sendingTags: [String: Set<String>] = [:]
    private var receivingTags: [String: Set<String>] = [:]
    private var trust = TrustGrants()
    private var revoked: [String: Set<String>] = [:]
    /// Nil while a hosts map has more classes than its verdict table holds (every edit is
    /// then compiled in full).
    private var input: SenderClasses?
    private var forward: SenderClasses?
    private let classCache = ClassCache()
    /// Why each policy grants nothing at `instant` (nil: in force), by id, as the last
    /// compile worked it out, and until when that holds (nil: for good): the daemon's
    /// instant moves on every reload, and working out a thousand schedules again each time
    /// cost more than the rest of a one-system edit. Dropped for the entries an edit
    /// rebuilds, and each once its time is up.
    private var inactive: [Int: (reason: String?, until: Date?)] = [:]

    /// Compiles `host` in full from `policySet` (the files) with the runtime overrides at `instant`.
    public init(policySet: PolicySet, host: SystemDefinition, overrides: RuntimeOverrides = RuntimeOverrides(),
                ids: PolicyIDs = PolicyIDs(), at instant: Date) throws(CompileError) {
        hostName = host.name
        self.host = host
        self.overrides = overrides
        self.instant = instant
        policyIDs = ids.assigning(policySet.policies.map(\.name))
        graph = AccessGraph(policySet, overrides: overrides, at: instant, ids: policyIDs)
        compiled = CompiledHost(ruleset: Ruleset(table: Table(family: .inet, name: "", sets: [], chains: [])), system: host, instant: instant,
                                isGateway: false, queuedFlows: [], enforced: [], timedGrants: [])
        try rebuild()
    }

    /// Makes `edits`, in order, and compiles the host again: only what they touch when it
    /// can, in full otherwise. Returns what changed in `ruleset`.
    public mutating func apply(_ edits: [PolicyEdit]) throws(CompileError) -> RulesetChanges {
        let before = compiled.ruleset
        let wasGateway = graph.gateways.contains(hostName)
        var fullBecause: String?
        // Policies whose entry is built again (old entries of policies removed included).
        var touchedPolicies = Set<String>()
        // Of those, the policies whose senders may send under other policies now (the policy
        // itself, its schedule or a trust changed): their senders before and after are swept
        // again. A system edit only changes who the entries of its tags' policies list; the
        // policies any other system sends under stay, so it is the one system swept again.
        var relabelled = Set<String>()
        var touchedSystems = Set<String>()
        var oldTrusted = Set<String>()
        // Entries stay where they are until they are built again below; positions move when
        // a policy comes or goes.
        let oldPositions = policyPosition
        var policiesMoved = false
        func touch(policiesNaming tags: [String]) {
            for tag in tags {
                touchedPolicies.formUnion(sendingTags[tag] ?? [])
                touchedPolicies.formUnion(receivingTags[tag] ?? [])
            }
        }
        for edit in edits {
            switch edit {
            case .setSystem(let system):
                if system.name == hostName {
                    fullBecause = "the host's own system changed"
                    host = system
                }
                let old = systemPosition[system.name].map { graph.policySet.systems[$0] }
                if let old {
                    graph.policySet.systems[systemPosition[system.name]!] = system
                    for tag in Set(old.tags) { tagged[tag]?.removeAll { $0 === old } }
                    touch(policiesNaming: old.tags)
                } else {
                    systemPosition[system.name] = graph.policySet.systems.count
                    graph.policySet.systems.append(system)
                }
                for tag in Set(system.tags) { insertTagged(system, tag) }
                touch(policiesNaming: system.tags)
                touchedSystems.insert(system.name)
            case .removeSystem(let name):
                guard let position = systemPosition[name] else { continue }
                if name == hostName { fullBecause = "the host's own system was removed" }
                let old = graph.policySet.systems.remove(at: position)
                for tag in Set(old.tags) { tagged[tag]?.removeAll { $0 === old } }
                systemPosition[name] = nil
                for index in position..<graph.policySet.systems.count { systemPosition[graph.policySet.systems[index].name] = index }
                touch(policiesNaming: old.tags)
                touchedSystems.insert(name)
            case .setPolicy(var policy):
                policy.schedule.override = overrides.pruned(at: instant).policies[policy.name]
                if let position = policyPosition[policy.name] {
                    unindex(graph.policySet.policies[position])
                    graph.policySet.policies[position] = policy
                } else {
                    policyPosition[policy.name] = graph.policySet.policies.count
                    graph.policySet.policies.append(policy)
                    policiesMoved = true
                    policyIDs = policyIDs.assigning([policy.name])
                }
                index(policy)
                touchedPolicies.insert(policy.name)
                relabelled.insert(policy.name)
            case .removePolicy(let name):
                guard let position = policyPosition[name] else { continue }
                let old = graph.policySet.policies.remove(at: position)
                unindex(old)
                policyPosition[name] = nil
                for index in position..<graph.policySet.policies.count { policyPosition[graph.policySet.policies[index].name] = index }
                touchedPolicies.insert(name)
                relabelled.insert(name)
                policiesMoved = true
            case .setExpired(let expired):
                // The policies such a system sends under (by its tags) cut its flows, or no longer.
                let before = Dictionary(graph.policySet.expired.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
                let after = Dictionary(expired.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
                for system in graph.policySet.expired + expired {
                    if let old = before[system.name], let new = after[system.name], old === new || old.compilesLike(new) { continue }
                    for tag in system.tags { relabelled.formUnion(sendingTags[tag] ?? []) }
                }
                graph.policySet.expired = expired
            case .overrides(let new):
                overrides = new
                refreshOverrides(touchedPolicies: &relabelled, touchedSystems: &touchedSystems)
            case .instant(let new):
                // A clock set back: what held from the old instant on says nothing of the new one.
                inactive = new < instant ? [:] : inactive.filter { $0.value.until.map { new < $0 } ?? true }
                instant = new
                refreshOverrides(touchedPolicies: &relabelled, touchedSystems: &touchedSystems)
            }
        }
        touchedPolicies.formUnion(relabelled)

        // The entries of touched policies, built again; the others kept.
        for name in relabelled {
            guard let position = oldPositions[name] else { continue }
            for sender in graph.entries[position].trustedSenders { oldTrusted.insert(sender.name) }
        }
        let tagged = self.tagged
        func holders(_ tags: [String]) -> [SystemDefinition] {
            var seen = Set<String>()
            var out: [SystemDefinition] = []
            for tag in tags {
                for system in tagged[tag] ?? [] where seen.insert(system.name).inserted { out.append(system) }
            }
            return out
        }
        var newTrusted = Set<String>()
        func entry(_ policy: AccessPolicy) -> AccessGraph.Entry {
            let entry = AccessGraph.entry(for: policy, id: policyIDs.assigned[policy.name]!, holders: holders, trust: trust, revoked: revoked,
                                          expired: graph.policySet.expired)
            if relabelled.contains(policy.name) { for sender in entry.trustedSenders { newTrusted.insert(sender.name) } }
            return entry
        }
        if !policiesMoved {
            // Only the touched entries are replaced, in place.
            for name in touchedPolicies {
                guard let position = policyPosition[name] else { continue }
                graph.entries[position] = entry(graph.policySet.policies[position])
                inactive.removeValue(forKey: graph.entries[position].id)
            }
        } else {
            inactive = [:]
            let oldEntries = graph.entries
            graph.entries = graph.policySet.policies.map { policy in
                if !touchedPolicies.contains(policy.name), let position = oldPositions[policy.name] { return oldEntries[position] }
                return entry(policy)
            }
        }
        graph.trust = trust
        if fullBecause == nil && graph.gateways.contains(hostName) != wasGateway {
            fullBecause = wasGateway ? "the host stopped being a gateway" : "the host became a gateway"
        }
        if let reason = fullBecause { return try fallBack(reason, before: before) }

        // Systems whose classes may have changed: those edited, and the senders of every
        // relabelled policy before and after.
        let dirty = touchedSystems.union(oldTrusted).union(newTrusted)
        var inputMembers: [SenderClasses.Member] = [], forwardMembers: [SenderClasses.Member] = []
        for name in dirty.sorted() {
            let system = systemPosition[name].map { graph.policySet.systems[$0] }
            if name != hostName {
                inputMembers.append(.init(name: name, system: system, labels: system.map(inputLabels) ?? []))
            }
            if forward != nil {
                forwardMembers.append(.init(name: name, system: system, labels: system.map(forwardLabels) ?? []))
            }
        }
        var known: [String: (removed: [SetElement], added: [SetElement])] = [:]
        func absorb(_ changes: SenderClasses.MapChanges, prefix: String) {
            for family in [IPFamily.v4, .v6] {
                for name in [SenderMaps.hosts(prefix, family), SenderMaps.ranges(prefix, family)] {
                    known[name] = (changes.removed[name] ?? [], changes.added[name] ?? [])
                }
            }
        }
        do throws(SenderClasses.Overflow) {
            // In place: the classes hold the million-address arrays, which a copy would duplicate.
            guard input != nil else { throw SenderClasses.Overflow() }
            absorb(try input!.update(inputMembers), prefix: "in")
            if forward != nil { absorb(try forward!.update(forwardMembers), prefix: "fwd") }
        } catch {
            return try fallBack("a hosts map has more than 65,536 sender classes", before: before)
        }
        try assemble()
        compiled.ruleset = compiled.ruleset.keepingSetSizes(of: before)
        incrementalEdits += 1
        return RulesetChanges(from: before, to: compiled.ruleset, known: known)
    }

    // MARK: - Full compile

    private mutating func fallBack(_ reason: String, before: Ruleset) throws(CompileError) -> RulesetChanges {
        fallbacks[reason, default: 0] += 1
        try rebuild()
        compiled.ruleset = compiled.ruleset.keepingSetSizes(of: before)
        var changes = RulesetChanges(from: before, to: compiled.ruleset)
        changes.compiledInFull = true
        return changes
    }

    /// Every index and both sweeps from the policy set as it is: a full compile.
    private mutating func rebuild() throws(CompileError) {
        inactive = [:]
        let pruned = overrides.pruned(at: instant)
        trust = pruned.trustGrants(at: instant)
        revoked = pruned.revokedTrust(at: instant)
        policyIDs = policyIDs.assigning(graph.policySet.policies.map(\.name))
        graph = AccessGraph(graph.policySet, overrides: overrides, at: instant, ids: policyIDs)
        systemPosition = [:]
        tagged = [:]
        for (position, system) in graph.policySet.systems.enumerated() {
            systemPosition[system.name] = position
            for tag in system.tags where tagged[tag]?.last !== system { tagged[tag, default: []].append(system) }
        }
        policyPosition = [:]
        sendingTags = [:]
        receivingTags = [:]
        for (position, policy) in graph.policySet.policies.enumerated() {
            policyPosition[policy.name] = position
            index(policy)
        }
        if let current = graph.policySet.system(named: hostName) { host = current }
        let own = Set(host.addresses)
        let systems = graph.policySet.systems
        input = try? SenderClasses(prefix: "in", members: systems.filter { $0.name != hostName }.map {
            .init(name: $0.name, system: $0, labels: inputLabels($0))
        }, counts: { !own.contains($0) })
        forward = nil
        if graph.gateways.contains(hostName) {
            forward = try? SenderClasses(prefix: "fwd", members: systems.map { .init(name: $0.name, system: $0, labels: forwardLabels($0)) },
                                         counts: { _ in true })
        }
        try assemble()
    }

    /// The table around the sender maps, built again as the full compile builds it.
    private mutating func assemble() throws(CompileError) {
        let compiler = HostCompiler(graph: graph, system: host, at: instant)
        let decided = try compiler.decisions(known: inactive.mapValues(\.reason))
        for entry in graph.entries where inactive[entry.id] == nil {
            inactive[entry.id] = (decided.active[entry.id] ?? nil, entry.policy.schedule.reasonChanges(after: instant))
        }
        guard let input, !decided.isGateway || forward != nil else {
            // Only when a sweep overflowed: the full compile says the rest.
            compiled = try compiler.compile()
            return
        }
        compiled = compiler.assemble(decided, input: input.classified, forward: forward?.classified, classCache: classCache)
    }

    // MARK: - Labels

    /// The policies `system` sends under to this host: direct policies naming one of its
    /// tags as senders and one of the host's as receivers, whose trust it meets.
    private func inputLabels(_ system: SystemDefinition) -> [Int] {
        labels(of: system) { policy in
            guard case .direct(let receivers) = policy.reach else { return false }
            return receivers.contains { host.tags.contains($0) }
        }
    }

    /// The policies `system` sends under through this gateway: direct ones, and gateway ones
    /// routed by this host.
    private func forwardLabels(_ system: SystemDefinition) -> [Int] {
        labels(of: system) { policy in
            if case .gateway(let gateway, _) = policy.reach { return gateway == hostName }
            return true
        }
    }

    private func labels(of system: SystemDefinition, where applies: (AccessPolicy) -> Bool) -> [Int] {
        var candidates = Set<String>()
        for tag in system.tags { candidates.formUnion(sendingTags[tag] ?? []) }
        var ids: [Int] = []
        for name in candidates {
            guard let position = policyPosition[name] else { continue }
            let policy = graph.policySet.policies[position]
            guard applies(policy), policy.trust.isEmpty || trust.satisfies(system.name, policy.trust) else { continue }
            ids.append(policyIDs.assigned[name]!)
        }
        return ids.sorted()
    }

    // MARK: - Indexes

    private mutating func index(_ policy: AccessPolicy) {
        for tag in policy.senders { sendingTags[tag, default: []].insert(policy.name) }
        if case .direct(let receivers) = policy.reach {
            for tag in receivers { receivingTags[tag, default: []].insert(policy.name) }
        }
    }

    private mutating func unindex(_ policy: AccessPolicy) {
        for tag in policy.senders { sendingTags[tag]?.remove(policy.name) }
        if case .direct(let receivers) = policy.reach {
            for tag in receivers { receivingTags[tag]?.remove(policy.name) }
        }
    }

    /// Puts `system` among the holders of `tag` at its place in definition order.
    private mutating func insertTagged(_ system: SystemDefinition, _ tag: String) {
        let position = systemPosition[system.name]!
        var list = tagged[tag] ?? []
        let at = list.partitionPoint { systemPosition[$0.name]! > position }
        list.insert(system, at: at)
        tagged[tag] = list
    }

    /// The overrides at the instant, put on the policies; the policies whose override
    /// changed, and the systems whose trust did, are touched (with every policy they send under).
    private mutating func refreshOverrides(touchedPolicies: inout Set<String>, touchedSystems: inout Set<String>) {
        let pruned = overrides.pruned(at: instant)
        for position in graph.policySet.policies.indices {
            let name = graph.policySet.policies[position].name
            if graph.policySet.policies[position].schedule.override != pruned.policies[name] {
                graph.policySet.policies[position].schedule.override = pruned.policies[name]
                touchedPolicies.insert(name)
            }
        }
        let newTrust = pruned.trustGrants(at: instant), newRevoked = pruned.revokedTrust(at: instant)
        let names = Set(newTrust.granted.keys).union(trust.granted.keys).union(newRevoked.keys).union(revoked.keys)
        for name in names where newTrust.granted[name] != trust.granted[name] || newRevoked[name] != revoked[name] {
            touchedSystems.insert(name)
            if let position = systemPosition[name] {
                for tag in graph.policySet.systems[position].tags { touchedPolicies.formUnion(sendingTags[tag] ?? []) }
            }
        }
        trust = newTrust
        revoked = newRevoked
    }
}
