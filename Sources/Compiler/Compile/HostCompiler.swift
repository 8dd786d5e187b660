import Foundation

/// The ruleset for one host, compiled from the access graph at one instant.
public struct CompiledHost: Sendable {
    public var ruleset: Ruleset
    public var system: SystemDefinition
    public var instant: Date
    /// Whether this host routes for gateway policies (forward hook installed).
    public var isGateway: Bool
    /// Flows sent to the NFQUEUE worker, described for the plan.
    public var queuedFlows: [String]
    /// Policies whose grants this host enforces, with whether each is in force.
    public var enforced: [(entry: AccessGraph.Entry, hook: Hook, inactiveReason: String?)]
    /// Policies in force by `enforcer policy enable --for`: their marks belong in
    /// `timed_policies` with a kernel timeout ending at `until` (not in the model's elements,
    /// so they run out in the kernel even while no enforcer runs).
    public var timedGrants: [(id: Int, policy: String, mark: UInt32, until: Date)]

    /// The next instant after `instant` when a policy enforced here turns on or off.
    public func nextFlip(after instant: Date) -> Date? { scheduleFlips(after: instant).values.min() }

    /// When each schedule of the policies enforced here next turns on or off (none: never).
    /// Worked out once per schedule: policies written alike (the same hours in the same
    /// zone) share one, and a thousand policies are a few schedules.
    public func scheduleFlips(after instant: Date) -> [Schedule: Date] {
        var flips: [Schedule: Date] = [:]
        var seen = Set<Schedule>()
        for item in enforced where seen.insert(item.entry.policy.schedule).inserted {
            flips[item.entry.policy.schedule] = item.entry.policy.schedule.nextFlip(after: instant)
        }
        return flips
    }
}

public enum CompileError: Error, Sendable, CustomStringConvertible {
    case tooManyPolicies(count: Int, max: Int, mask: UInt32)
    public var description: String {
        switch self {
        case let .tooManyPolicies(count, max, mask):
            "policy ids up to \(count) do not fit in mark_mask 0x\(String(mask, radix: 16)) (room for \(max)); widen [kernel] mark_mask"
        }
    }
}

/// Compiles the access graph into the receiver-side ruleset of one system.
///
/// Per packet the cost is a fixed number of lookups whatever the number of policies:
/// the source address selects a *sender class* (the set of policies whose senders include
/// it) through one interval verdict map; the class chain then looks the service (and, when
/// forwarding, the destination) up in the class's own maps, which jump to the granting
/// policy's chain. Classes do not depend on time, so a time window or an expiry flipping
/// changes only the class maps' elements and `active_policies`, never the large sender maps.
public struct HostCompiler {
    /// The set of policies in force for a while (`enforcer policy enable --for`), each mark
    /// with its own kernel timeout: filled by the applier, not by the compiled ruleset.
    public static let timedSet = NamedSet.timedGrantsName

    /// The role of a set recorded before sets carried one, from the name this compiler gave it.
    public let graph: AccessGraph
    public let system: SystemDefinition
    public let instant: Date
    public let config: Config
    public var layout: MarkLayout { MarkLayout(mask: config.markMask) }

    public init(graph: AccessGraph, system: SystemDefinition, at instant: Date) {
        self.graph = graph
        self.system = system
        self.instant = instant
        self.config = graph.policySet.config
    }

    /// What a compile of this host decides before it looks at any sender address: the
    /// policies it enforces on each hook, which are in force, and (on a gateway) where each
    /// forwarded policy's traffic may go. The incremental compile (`IncrementalHost`) works
    /// this out again on every edit, which is cheap, and keeps only the sender sweep.
    struct Decisions {
        var active: [Int: String?]
        /// Direct policies naming this system as a receiver, in policy order.
        var received: [AccessGraph.Entry]
        var isGateway: Bool
        /// Policies this host routes for (gateway only), in policy order.
        var forwarded: [AccessGraph.Entry]
        var enforced: [(entry: AccessGraph.Entry, hook: Hook, inactiveReason: String?)]
        var destinations: [Int: [AddressRange]]
    }

    /// `known` gives the reasons (by id) some entries grant nothing at `instant`, already
    /// worked out (the incremental compile keeps those of entries it did not rebuild).
    func decisions(known: [Int: String?] = [:]) throws(CompileError) -> Decisions {
        let largestID = graph.entries.map(\.id).max() ?? 0
        guard largestID <= layout.maxPolicyID else {
            throw .tooManyPolicies(count: largestID, max: layout.maxPolicyID, mask: config.markMask)
        }
        var active = known
        for entry in graph.entries where active.index(forKey: entry.id) == nil { active[entry.id] = graph.inactiveReason(entry, at: instant) }
        let received = graph.entries.filter { !$0.policy.isGateway && $0.receivers.contains(where: { $0.name == system.name }) }
        var enforced = received.map { (entry: $0, hook: Hook.input, inactiveReason: active[$0.id] ?? nil) }
        // Forward: this system routes for gateway policies; it also passes direct traffic.
        let isGateway = graph.gateways.contains(system.name)
        var forwarded: [AccessGraph.Entry] = []
        var destinations: [Int: [AddressRange]] = [:]
        if isGateway {
            for entry in graph.entries {
                if let gateway = entry.gateway, gateway != system.name { continue }
                forwarded.append(entry)
                enforced.append((entry, .forward, active[entry.id] ?? nil))
                destinations[entry.id] = entry.policy.isGateway
                    ? entry.subnets.map(\.range)
                    : entry.receivers.flatMap { $0.addresses.map(\.range) }
            }
        }
        return Decisions(active: active, received: received, isGateway: isGateway, forwarded: forwarded,
                         enforced: enforced, destinations: destinations)
    }

    public func compile() throws(CompileError) -> CompiledHost {
        let decided = try decisions()
        // A million sender addresses are checked against the receiver's own few: a 4096-bit
        // filter of the own addresses rules out nearly all of them before any is hashed.
        let ownAddresses = Set(system.addresses)
        func filterBit(_ block: AddressBlock) -> (word: Int, bit: UInt64) {
            let value = block.range.first.value
            let mixed = (UInt64(truncatingIfNeeded: value) ^ UInt64(truncatingIfNeeded: value >> 64)) &* 0x9E37_79B9_7F4A_7C15
            return (Int(mixed >> 58), 1 << ((mixed >> 52) & 63))
        }
        var ownFilter = [UInt64](repeating: 0, count: 64)
        for block in ownAddresses {
            let (word, bit) = filterBit(block)
            ownFilter[word] |= bit
        }
        func isOwn(_ block: AddressBlock) -> Bool {
            let (word, bit) = filterBit(block)
            return ownFilter[word] & bit != 0 && ownAddresses.contains(block)
        }

        // Input: direct policies naming this system as a receiver. Senders go straight into
        // the sweep that sorts them into classes, labelled with their policy's id.
        var inputSenders = AddressSweep<Int>()
        inputSenders.reserveCapacity(decided.received.reduce(0) { total, entry in entry.trustedSenders.reduce(total) { $0 + $1.addresses.count } })
        for entry in decided.received {
            let label = inputSenders.id(of: entry.id)
            for sender in entry.trustedSenders where sender.name != system.name {
                for block in sender.addresses where !isOwn(block) {
                    inputSenders.add(block.range, id: label)
                }
            }
        }
        let input = ClassifiedSenders(prefix: "in", sweep: &inputSenders)
        var forward: ClassifiedSenders?
        if decided.isGateway {
            var forwardSenders = AddressSweep<Int>()
            for entry in decided.forwarded {
                let label = forwardSenders.id(of: entry.id)
                for sender in entry.trustedSenders {
                    for block in sender.addresses { forwardSenders.add(block.range, id: label) }
                }
            }
            forward = ClassifiedSenders(prefix: "fwd", sweep: &forwardSenders)
        }
        return assemble(decided, input: input, forward: forward)
    }

    /// The ruleset around the sender maps: what a compile builds once the senders are classified.
    func assemble(_ decided: Decisions, input: ClassifiedSenders, forward: ClassifiedSenders?, classCache: ClassCache? = nil) -> CompiledHost {
        let active = decided.active
        let byID = Dictionary(uniqueKeysWithValues: graph.entries.map { ($0.id, $0) })
        let isActive = { (id: Int) in active[id].map { $0 == nil } ?? false }
        let enforcedIDs = Set(decided.enforced.map(\.entry.id)).sorted()
        var builder = RulesetBuilder(config: config, layout: layout, byID: byID, enforced: enforcedIDs, isActive: isActive)
        builder.classCache = classCache
        // Senders that lost trust, and expired systems: their flows under the policy are cut by address and mark.
        var revoked: [(AddressRange, UInt32)] = []
        for id in enforcedIDs {
            for sender in byID[id]?.revokedSenders ?? [] where sender.name != system.name {
                revoked += sender.addresses.map { ($0.range, layout.policyMark(id)) }
            }
        }
        builder.addRevoked(revoked)
        let isGateway = decided.isGateway
        let hasWebRules = !graph.policySet.webRules.isEmpty && isGateway
        let servesPortal = hasWebRules && config.servesPortal(webRules: graph.policySet.webRules)
        builder.addInput(senders: input, portalPort: servesPortal ? config.portalEndpoint.port : nil)
        if let forward, isGateway {
            builder.addForward(senders: forward, destinations: decided.destinations, web: hasWebRules)
        }
        var queued: [String] = []
        if hasWebRules {
            let ports = config.webPorts.map(String.init).joined(separator: ", ")
            queued.append("forward: TCP to ports \(ports) of flows a policy granted, from the first data packet until the worker decides (queue \(config.queue), \(config.queueFail == .open ? "fail-open: bypass while no worker listens" : "fail-closed: dropped while no worker listens"))")
            if config.blocksQUIC(hasWebRules: true) {
                queued.append("forward: UDP to port 443 (QUIC) rejected, so browsers fall back to TCP where the SNI is visible")
            }
        }
        builder.finish()
        classCache?.finishBuild()
        let timed = enforcedIDs.compactMap { id -> (id: Int, policy: String, mark: UInt32, until: Date)? in
            guard let entry = byID[id], isActive(id), let until = entry.policy.schedule.timedUntil, until > instant else { return nil }
            return (id, entry.policy.name, layout.policyMark(id), until)
        }
        return CompiledHost(ruleset: Ruleset(table: builder.table), system: system, instant: instant,
                            isGateway: isGateway, queuedFlows: queued, enforced: decided.enforced, timedGrants: timed)
    }
}

/// Builds the table's sets and chains.
struct RulesetBuilder {
    let config: Config
    let layout: MarkLayout
    let byID: [Int: AccessGraph.Entry]
    let isActive: (Int) -> Bool
    private(set) var table: Table
    let enforced: [Int]
    /// Input classes built by an earlier compile of the same host (the incremental one).
    var classCache: ClassCache?
    /// The families with a revoked sender: only they get the rules that cut such flows.
    private var revokedFamilies: Set<IPFamily> = []

    init(config: Config, layout: MarkLayout, byID: [Int: AccessGraph.Entry], enforced: [Int], isActive: @escaping (Int) -> Bool) {
        self.config = config
        self.layout = layout
        self.byID = byID
        self.enforced = enforced
        self.isActive = isActive
        table = Table(family: .inet, name: config.table, sets: [], chains: [])
        let timed = { (id: Int) in byID[id]?.policy.schedule.timedUntil != nil }
        let activeElements = enforced.filter { isActive($0) && !timed($0) }.map {
            SetElement([.mark(layout.policyMark($0))], comment: byID[$0].map { NFTComment.fitted($0.policy.name) })
        }
        table.sets.append(NamedSet(name: "active_policies", key: [.mark], elements: activeElements,
                                   comment: "policies in force now; flows they granted keep flowing"))
        table.sets.append(NamedSet(name: HostCompiler.timedSet, key: [.mark], flags: .timeout,
                                   comment: "policies enabled for a while (enforcer policy enable --for): each runs out in the kernel",
                                   role: .timedGrants))
    }

    /// `revoked_v4/v6`: (sender address . policy mark) of senders that lost a trust requirement
    /// or expired.
    mutating func addRevoked(_ pairs: [(AddressRange, UInt32)]) {
        for family in [IPFamily.v4, .v6] {
            let elements = pairs.filter { $0.0.first.family == family }
                .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
                .map { SetElement([.addresses($0.0), .mark($0.1)]) }
            if !elements.isEmpty { revokedFamilies.insert(family) }
            table.sets.append(NamedSet(name: family == .v4 ? "revoked_v4" : "revoked_v6", key: [family == .v4 ? .ipv4Address : .ipv6Address, .mark],
                                       flags: .interval, elements: elements,
                                       comment: "senders that lost trust (enforcer trust revoke) or expired, with the policy whose flows are cut"))
        }
    }

    /// Cuts flows of revoked senders at once: by the sender's address (`source`: the packet's
    /// source in the original direction, its destination in replies) and the flow's mark.
    /// Only for a family that has a revoked sender: the lookup in the (interval) set costs
    /// every established packet about half a microsecond (bench/README.md, per-packet cost),
    /// for nothing while the set is empty. A first revocation rewrites the chain in the same
    /// transaction that fills the set.
    private func cutRevoked(_ before: [RuleExpression] = [], source: (v4: Field, v6: Field)) -> [Rule] {
        [(source.v4, "revoked_v4", IPFamily.v4), (source.v6, "revoked_v6", .v6)].filter { revokedFamilies.contains($0.2) }.flatMap { field, set, _ -> [Rule] in
            let match = RuleExpression.lookup([field, .conntrackMark], mask: layout.policyMask, set: set)
            return [
                Rule(before + [.compare(.l4Protocol, .equal, .proto(.tcp)), match, .reject(.tcpReset)], comment: "sender lost trust: cut"),
                Rule(before + [match, .verdict(.drop)]),
            ]
        }
    }

    /// The flow's policy is in force: for good (`active_policies`) or for a while (`timed_policies`).
    private func whileInForce(_ before: [RuleExpression] = [], then verdict: Verdict, comment: String) -> [Rule] {
        ["active_policies", HostCompiler.timedSet].map { set in
            Rule(before + [.lookup([.conntrackMark], mask: layout.policyMask, set: set), .verdict(verdict)], comment: comment)
        }
    }

    // MARK: input

    mutating func addInput(senders: ClassifiedSenders, portalPort: UInt16? = nil) {
        // Most packets belong to a flow a policy in force granted: they leave after the
        // fewest rules (the rules before them only accept, or cut a revoked sender's flows).
        // A packet conntrack finds invalid has no mark, so none of them accepts it.
        var rules: [Rule] = [
            Rule([.compare(.inputInterface, .equal, .interface("lo")), .verdict(.accept)], comment: "loopback"),
            Rule([.compare(.conntrackDirection, .equal, .direction(.reply)), .verdict(.accept)], comment: "replies to flows this host began"),
        ]
        rules += cutRevoked(source: (.ipSource, .ip6Source))
        rules += whileInForce(then: .accept, comment: "flows granted by a policy still in force")
        rules += [
            Rule([.conntrackState([.invalid]), .verdict(.drop)]),
            Rule([.conntrackState([.related]), .verdict(.accept)]),
        ]
        rules += Self.essentialICMP
        rules.append(Rule([.compare(.nfProtocol, .equal, .number(2)), .compare(.udpSourcePort, .equal, .port(67)),
                           .compare(.udpDestinationPort, .equal, .port(68)), .verdict(.accept)], comment: "DHCP client"))
        rules.append(Rule([.compare(.nfProtocol, .equal, .number(10)), .compare(.udpSourcePort, .equal, .port(547)),
                           .compare(.udpDestinationPort, .equal, .port(546)), .verdict(.accept)], comment: "DHCPv6 client"))
        if let portalPort {
            rules.append(Rule([.compare(.l4Protocol, .equal, .proto(.tcp)), .compare(.tcpDestinationPort, .equal, .port(portalPort)), .verdict(.accept)],
                              comment: "the portal: warn and aup pages, the block page (enforcer run)"))
        }
        rules += classify(senders, destinations: nil)
        rules += whileInForce(then: .accept, comment: "granted just now")
        rules.append(Rule([.conntrackState([.established]), .compare(.l4Protocol, .equal, .proto(.tcp)), .reject(.tcpReset)],
                          comment: "its policy no longer grants it: cut the flow"))
        rules.append(defaultDeny(.input))
        table.chains.append(Chain(name: "input", base: BaseChain(hook: .input, priority: 0, policy: .drop), rules: rules,
                                  comment: "receiver side: default deny"))
    }

    /// The chain's policy drops the same packets; this rule drops them first so they are
    /// counted (a chain's policy counts nothing). It runs only for packets being denied.
    private mutating func defaultDeny(_ hook: Hook) -> Rule {
        let name = CounterNames.defaultDeny(hook)
        table.counters.append(name)
        return Rule([.namedCounter(name), .verdict(.drop)], comment: "default deny")
    }

    static let essentialICMP: [Rule] = [
        Rule([.anyOf(.icmpType, [.icmpType(.destinationUnreachable), .icmpType(.timeExceeded), .icmpType(.parameterProblem)]),
              .verdict(.accept)], comment: "ICMP errors"),
        Rule([.anyOf(.icmpv6Type, [.icmpv6Type(.destinationUnreachable), .icmpv6Type(.packetTooBig), .icmpv6Type(.timeExceeded),
                                   .icmpv6Type(.parameterProblem)]), .verdict(.accept)], comment: "ICMPv6 errors"),
        Rule([.anyOf(.icmpv6Type, [.icmpv6Type(.routerSolicit), .icmpv6Type(.routerAdvert), .icmpv6Type(.neighborSolicit),
                                   .icmpv6Type(.neighborAdvert)]),
              .compare(.ip6HopLimit, .equal, .number(255)), .verdict(.accept)], comment: "neighbour discovery"),
        Rule([.anyOf(.icmpv6Type, [.icmpv6Type(.mldListenerQuery), .icmpv6Type(.mldListenerReport), .icmpv6Type(.mldListenerDone),
                                   .icmpv6Type(.mld2ListenerReport)]),
              .compare(.ip6HopLimit, .equal, .number(1)), .verdict(.accept)], comment: "multicast listener discovery"),
    ]

    // MARK: forward

    mutating func addForward(senders: ClassifiedSenders, destinations: [Int: [AddressRange]], web: Bool) {
        let granted: Verdict = web ? .goto("web_gate") : .accept
        var rules: [Rule] = [Rule([.conntrackState([.invalid]), .verdict(.drop)])]
        if web {
            let denied = layout.webMark(.denied)
            rules.append(Rule([.maskedCompare(.conntrackMark, mask: layout.webMask, .equal, denied),
                               .compare(.l4Protocol, .equal, .proto(.tcp)), .reject(.tcpReset)], comment: "web rule denied this flow: reset both ways"))
            rules.append(Rule([.maskedCompare(.conntrackMark, mask: layout.webMask, .equal, denied), .verdict(.drop)]))
            // After the portal redirect the client only acknowledges and closes; its FIN gets a reset.
            let redirected = layout.webMark(.redirected)
            rules.append(Rule([.maskedCompare(.conntrackMark, mask: layout.webMask, .equal, redirected),
                               .compare(.l4Protocol, .equal, .proto(.tcp)), .tcpFlags(mask: 0x01, equal: 0x01), .reject(.tcpReset)],
                              comment: "portal redirect sent: close the client's side"))
            rules.append(Rule([.maskedCompare(.conntrackMark, mask: layout.webMask, .equal, redirected), .verdict(.drop)]))
        }
        // Every forwarded flow was granted by a policy, so its replies pass only while that
        // policy is in force: deactivating it cuts the flow in both directions.
        let reply = RuleExpression.compare(.conntrackDirection, .equal, .direction(.reply))
        rules += cutRevoked([reply], source: (.ipDestination, .ip6Destination))
        rules += whileInForce([reply], then: .accept, comment: "replies of flows granted by a policy in force")
        rules.append(Rule([reply, .compare(.l4Protocol, .equal, .proto(.tcp)), .reject(.tcpReset)],
                          comment: "replies of flows no policy grants now: cut"))
        rules.append(Rule([reply, .verdict(.drop)]))
        rules.append(Rule([.conntrackState([.related]), .verdict(.accept)]))
        rules += Self.essentialICMP.prefix(2)
        if web && config.blocksQUIC(hasWebRules: true) {
            rules.append(Rule([.compare(.l4Protocol, .equal, .proto(.udp)), .compare(.udpDestinationPort, .equal, .port(443)),
                               .reject(.icmpxPortUnreachable)], comment: "QUIC: fall back to TCP where the SNI is visible"))
        }
        rules += cutRevoked(source: (.ipSource, .ip6Source))
        rules += whileInForce(then: granted, comment: "flows granted by a policy still in force")
        rules += classify(senders, destinations: destinations)
        rules += whileInForce(then: granted, comment: "granted just now")
        rules.append(Rule([.conntrackState([.established]), .compare(.l4Protocol, .equal, .proto(.tcp)), .reject(.tcpReset)],
                          comment: "its policy no longer grants it: cut the flow"))
        rules.append(defaultDeny(.forward))
        table.chains.append(Chain(name: "forward", base: BaseChain(hook: .forward, priority: 0, policy: .drop), rules: rules,
                                  comment: "gateway: default deny"))
        if web { addWebChains() }
    }

    private mutating func addWebChains() {
        table.sets.append(NamedSet(name: "web_ports", key: [.inetService],
                                   elements: config.webPorts.sorted().map { SetElement([.ports(PortRange(first: $0, last: $0))]) },
                                   comment: "flows to these ports are inspected by the worker"))
        // One source's flood of new connections is cut to its share before the queue: its
        // excess SYNs are dropped (TCP sends again), so the queue keeps room for the others.
        var floodRules: [Rule] = []
        if config.queueSynRate > 0 {
            for (family, key, field) in [("v4", KeyType.ipv4Address, Field.ipSource), ("v6", .ipv6Address, .ip6Source)] {
                let name = "web_syn_\(family)"
                table.sets.append(NamedSet(name: name, key: [key], flags: [.dynamic, .timeout],
                                           comment: "new web flows per source, for the SYN limit", size: 65536, timeout: 60))
                floodRules.append(Rule([.lookup([.tcpDestinationPort], mask: nil, set: "web_ports"), .tcpFlags(mask: 0x12, equal: 0x02),
                                        .rateOver([field], set: name, perSecond: config.queueSynRate, burst: config.queueSynBurst), .verdict(.drop)],
                                       comment: "a source over its share of new web flows: excess SYNs dropped, not queued"))
            }
        }
        let gate = Chain(name: "web_gate", rules: [
            Rule([.maskedCompare(.conntrackMark, mask: layout.webMask, .notEqual, 0), .verdict(.accept)], comment: "the worker has decided"),
            Rule([.compare(.l4Protocol, .notEqual, .proto(.tcp)), .verdict(.accept)]),
        ] + floodRules + [
            // From the SYN on: its sequence number lets the worker put split and reordered
            // ClientHello segments back in order.
            Rule([.lookup([.tcpDestinationPort], mask: nil, set: "web_ports"), .queue(number: config.queue, bypass: config.queueFail == .open)],
                 comment: "until the worker decides"),
            Rule([.verdict(.accept)]),
        ], comment: "web rules: SNI and Host inspection")
        table.chains.append(gate)
        // The worker's verdict comes back as a packet mark; keep it on the flow.
        var verdictRules: [Rule] = []
        for state in [WebFlowState.permitted, .denied, .redirected] {
            let mark = layout.webMark(state)
            var rule: [RuleExpression] = [.maskedCompare(.packetMark, mask: layout.webMask, .equal, mark),
                                      .setConntrackMark(keep: ~layout.webMask, value: mark)]
            switch state {
            case .denied:
                // Only TCP is queued; say so, or a reset would turn into a drop for anything else.
                rule.insert(.compare(.l4Protocol, .equal, .proto(.tcp)), at: 0)
                rule.append(.reject(.tcpReset))
            case .redirected:
                // The worker answered the client itself and reset the server.
                rule.append(.verdict(.drop))
            case .permitted, .undecided:
                break
            }
            verdictRules.append(Rule(rule, comment: "worker: \(state)"))
        }
        table.chains.append(Chain(name: "web_verdict", base: BaseChain(hook: .forward, priority: 10, policy: .accept),
                                  rules: verdictRules, comment: "records the worker's decision on the flow"))
    }

    // MARK: classes

    /// Sender-class dispatch: rules for the base chain, plus the maps and chains behind them.
    private mutating func classify(_ senders: ClassifiedSenders, destinations: [Int: [AddressRange]]?) -> [Rule] {
        let prefix = senders.prefix
        let v4Hosts = senders.hosts.v4, v6Hosts = senders.hosts.v6
        table.sets.append(NamedSet(name: SenderMaps.hosts(prefix, .v4), key: [.ipv4Address], data: .verdict, elements: v4Hosts,
                                   comment: "IPv4 sender address to sender class", size: NamedSet.sizeHint(for: v4Hosts.count),
                                   role: .senderHostsMap))
        table.sets.append(NamedSet(name: SenderMaps.hosts(prefix, .v6), key: [.ipv6Address], data: .verdict, elements: v6Hosts,
                                   comment: "IPv6 sender address to sender class", size: NamedSet.sizeHint(for: v6Hosts.count),
                                   role: .senderHostsMap))
        table.sets.append(NamedSet(name: SenderMaps.ranges(prefix, .v4), key: [.ipv4Address], data: .verdict, flags: .interval, elements: senders.ranges.v4,
                                   comment: "IPv4 sender range or CIDR to sender class", role: .senderRangesMap))
        table.sets.append(NamedSet(name: SenderMaps.ranges(prefix, .v6), key: [.ipv6Address], data: .verdict, flags: .interval, elements: senders.ranges.v6,
                                   comment: "IPv6 sender range or CIDR to sender class", role: .senderRangesMap))
        for (ids, name) in senders.classNames.sorted(by: { $0.value < $1.value }) {
            addClass(name: name, policies: ids, destinations: destinations)
        }
        return [
            Rule([.verdictMap([.ipSource], map: SenderMaps.hosts(prefix, .v4))]),
            Rule([.verdictMap([.ipSource], map: SenderMaps.ranges(prefix, .v4))]),
            Rule([.verdictMap([.ip6Source], map: SenderMaps.hosts(prefix, .v6))]),
            Rule([.verdictMap([.ip6Source], map: SenderMaps.ranges(prefix, .v6))]),
        ]
    }

    /// A short stable name for a set of policy ids, so class chains keep their names when
    /// unrelated policies change.
    static func classTag(_ ids: [Int]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for id in ids {
            for byte in withUnsafeBytes(of: UInt32(id).littleEndian, Array.init) { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        return ZeroPadded.string(hash >> 32, width: 8, radix: 16)
    }

    private mutating func addClass(name: String, policies: [Int], destinations: [Int: [AddressRange]]?) {
        let key = destinations == nil && classCache != nil ? ClassCache.Key(name: name, policies: policies.map { id in
            ClassCache.Policy(id: id, name: byID[id]?.policy.name, allow: byID[id]?.policy.allow, active: isActive(id))
        }) : nil
        if let key, let built = classCache?.lookUp(key) {
            table.sets += built.sets
            table.chains.append(built.chain)
            return
        }
        let setsBefore = table.sets.count
        defer { if let key { classCache?.store(key, sets: Array(table.sets[setsBefore...]), chain: table.chains[table.chains.count - 1]) } }
        let names = policies.compactMap { byID[$0]?.policy.name }
        var rules: [Rule] = []
        if let destinations {
            for family in [IPFamily.v4, .v6] {
                let field: Field = family == .v4 ? .ipDestination : .ip6Destination
                let addressType: KeyType = family == .v4 ? .ipv4Address : .ipv6Address
                let suffix = family == .v4 ? "v4" : "v6"
                var items: [(AddressRange, Int)] = []
                for id in policies where isActive(id) {
                    for range in destinations[id] ?? [] where range.first.family == family { items.append((range, id)) }
                }
                var ports: [SetElement] = [], protos: [SetElement] = [], other: [SetElement] = []
                for segment in partition(items) {
                    let grants = grantsByService(segment.labels.sorted())
                    ports += grants.ports.map { SetElement([.addresses(segment.range), .proto($0.proto), .ports($0.ports)], verdict: .goto(grantChain($0.id))) }
                    protos += grants.protocols.filter { ($0.proto == .icmp) == (family == .v4) }.map { SetElement([.addresses(segment.range), .proto($0.proto)], verdict: .goto(grantChain($0.id))) }
                    if let id = grants.anyProtocol { other.append(SetElement([.addresses(segment.range)], verdict: .goto(grantChain(id)))) }
                }
                let portsMap = "\(name)_\(suffix)_ports", protosMap = "\(name)_\(suffix)_protocols", otherMap = "\(name)_\(suffix)_other"
                table.sets.append(NamedSet(name: portsMap, key: [addressType, .inetProtocol, .inetService], data: .verdict, flags: .interval, elements: ports))
                table.sets.append(NamedSet(name: protosMap, key: [addressType, .inetProtocol], data: .verdict, flags: .interval, elements: protos))
                table.sets.append(NamedSet(name: otherMap, key: [addressType], data: .verdict, flags: .interval, elements: other))
                rules.append(Rule([.verdictMap([field, .l4Protocol, .transportDestinationPort], map: portsMap)]))
                rules.append(Rule([.verdictMap([field, .l4Protocol], map: protosMap)]))
                rules.append(Rule([.verdictMap([field], map: otherMap)]))
            }
        } else {
            let grants = grantsByService(policies.filter(isActive))
            let portsMap = "\(name)_ports", protosMap = "\(name)_protocols"
            table.sets.append(NamedSet(name: portsMap, key: [.inetProtocol, .inetService], data: .verdict, flags: .interval,
                                       elements: grants.ports.map { SetElement([.proto($0.proto), .ports($0.ports)], verdict: .goto(grantChain($0.id))) }))
            table.sets.append(NamedSet(name: protosMap, key: [.inetProtocol], data: .verdict,
                                       elements: grants.protocols.map { SetElement([.proto($0.proto)], verdict: .goto(grantChain($0.id))) }))
            rules.append(Rule([.verdictMap([.l4Protocol, .transportDestinationPort], map: portsMap)]))
            rules.append(Rule([.verdictMap([.l4Protocol], map: protosMap)]))
            if let id = grants.anyProtocol { rules.append(Rule([.verdict(.goto(grantChain(id)))], comment: "allow: any")) }
        }
        table.chains.append(Chain(name: name, rules: rules, comment: NFTComment.fitted("senders of: \(names.joined(separator: ", "))")))
    }

    /// The chain that records which policy granted a flow.
    private func grantChain(_ id: Int) -> String { "grant_\(id)" }

    /// Adds one grant chain per policy enforced here, active or not, so that a flip
    /// changes set elements only; then orders chains: hooks, web, classes, grants.
    mutating func finish() {
        for id in enforced {
            // A flow comes here once, when this policy grants its first packet (later packets
            // pass as "granted by a policy in force" before any class is looked up): the
            // counter counts flows, and the bytes of their first packets.
            let counter = CounterNames.policy(id)
            table.counters.append(counter)
            table.chains.append(Chain(name: grantChain(id), rules: [
                Rule([.namedCounter(counter), .setConntrackMark(keep: ~layout.policyMask, value: layout.policyMark(id))]),
            ], comment: byID[id].map { NFTComment.fitted("\($0.policy.kindWord) \($0.policy.name)") }))
        }
        // Each sort key is worked out once, not in every comparison: the incremental compile
        // sorts hundreds of chains and counters on every edit, and a key reads the name.
        table.counters = table.counters.map { (CounterNames.policyID(of: $0) ?? -1, $0) }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.1)
        func rank(_ chain: Chain) -> (Int, Int) {
            if let base = chain.base { return (0, base.hook == .input ? 0 : 1 + base.priority) }
            if chain.name.hasPrefix("web_") { return (1, 0) }
            if chain.name.hasPrefix("grant_") { return (3, Int(chain.name.dropFirst(6)) ?? 0) }
            return (2, 0)
        }
        let ranked = table.chains.indices.map { (rank: rank(table.chains[$0]), index: $0) }
            .sorted { a, b in a.rank != b.rank ? a.rank < b.rank : table.chains[a.index].name < table.chains[b.index].name }
        table.chains = ranked.map { table.chains[$0.index] }
    }

    struct ServiceGrants {
        var ports: [(proto: IPProtocol, ports: PortRange, id: Int)] = []
        var protocols: [(proto: IPProtocol, id: Int)] = []
        var anyProtocol: Int?
    }

    /// Disjoint service keys for policies listed in precedence order; where several grant
    /// the same port, the first in load order is recorded as the granting policy.
    func grantsByService(_ ids: [Int]) -> ServiceGrants {
        var grants = ServiceGrants()
        let ordered = ids.sorted()
        for proto in [IPProtocol.tcp, .udp] {
            var items: [(PortRange, Int)] = []
            for id in ordered {
                for service in byID[id]?.policy.allow ?? [] {
                    switch (service, proto) {
                    case (.any, _), (.tcp(nil), .tcp), (.udp(nil), .udp): items.append((PortRange.all, id))
                    case (.tcp(let r?), .tcp), (.udp(let r?), .udp): items.append((r, id))
                    default: break
                    }
                }
            }
            var merged: [(proto: IPProtocol, ports: PortRange, id: Int)] = []
            for segment in partition(items) {
                guard let winner = segment.labels.min() else { continue }
                if let last = merged.last, last.id == winner, last.ports.last &+ 1 == segment.range.first, last.ports.last != .max {
                    merged[merged.count - 1].ports = PortRange(first: last.ports.first, last: segment.range.last)
                } else {
                    merged.append((proto, segment.range, winner))
                }
            }
            grants.ports += merged
        }
        for proto in [IPProtocol.icmp, .icmpv6] {
            let winner = ordered.first { id in (byID[id]?.policy.allow ?? []).contains { $0 == .any || $0 == .icmp } }
            if let winner { grants.protocols.append((proto, winner)) }
        }
        grants.anyProtocol = ordered.first { id in (byID[id]?.policy.allow ?? []).contains(.any) }
        return grants
    }
}

