import Foundation

/// One flow asked about by `enforcer test` or an `expect` block.
public struct FlowQuery: Hashable, Sendable {
    public var from: IPAddress
    public var to: IPAddress
    public var proto: FlowProtocol
    public var port: UInt16?
    public var at: Date

    public init(from: IPAddress, to: IPAddress, proto: FlowProtocol, port: UInt16?, at: Date) {
        self.from = from
        self.to = to
        self.proto = proto
        self.port = port
        self.at = at
    }

    public var serviceText: String { port.map { "\(proto.rawValue)/\($0)" } ?? proto.rawValue }
}

/// The verdict for a flow and what decided it.
public struct FlowDecision: Hashable, Sendable, CustomStringConvertible {
    public var allowed: Bool
    /// The policy that decides (the granting one, or for a deny the inactive policy that would grant).
    public var policy: String?
    public var reason: String

    public var description: String { "\(allowed ? "allow" : "deny") \(reason)" }
}

/// Answers "is this flow allowed, and by which policy?" from the access graph, with the same
/// precedence the compiled ruleset uses (the first granting policy in load order).
public struct FlowEvaluator: Sendable {
    public let graph: AccessGraph
    /// When set, only what this system's ruleset enforces counts.
    public let system: SystemDefinition?

    public init(graph: AccessGraph, system: SystemDefinition? = nil) {
        self.graph = graph
        self.system = system
    }

    public func decide(_ query: FlowQuery) -> FlowDecision {
        let set = graph.policySet
        let fromSystem = set.system(owning: query.from)
        let toSystem = set.system(owning: query.to)
        let fromText = fromSystem.map { "\($0.name) (\(query.from))" } ?? "\(query.from)"
        let toText = toSystem.map { "\($0.name) (\(query.to))" } ?? "\(query.to)"
        guard let fromSystem else {
            return FlowDecision(allowed: false, policy: nil, reason: "default deny: \(query.from) is not an enrolled system, so no policy lists it as a sender")
        }
        if let toSystem, toSystem.name == fromSystem.name {
            return FlowDecision(allowed: false, policy: nil, reason: "default deny: policies never connect a system to itself (\(fromSystem.name))")
        }

        var inactive: (AccessGraph.Entry, String)?
        var portless: AccessGraph.Entry?
        for entry in graph.entries where entry.senders.contains(where: { $0.name == fromSystem.name }) {
            let reaches: Bool
            switch entry.policy.reach {
            case .direct:
                reaches = toSystem.map { to in entry.receivers.contains { $0.name == to.name } } ?? false
            case .gateway:
                reaches = entry.subnets.contains { $0.contains(query.to) }
            }
            guard reaches, enforcedHere(entry, to: toSystem, from: fromSystem) else { continue }
            guard (entry.policy.allow ?? []).contains(where: { $0.admits(query.proto, port: query.port) }) else {
                if portless == nil { portless = entry }
                continue
            }
            if !entry.trustedSenders.contains(where: { $0.name == fromSystem.name }) {
                if inactive == nil { inactive = (entry, "\(fromSystem.name) does not meet trust \(entry.policy.trust.joined(separator: ", "))") }
                continue
            }
            if let reason = entry.policy.schedule.inactiveReason(at: query.at) {
                if inactive == nil { inactive = (entry, reason) }
                continue
            }
            let via = entry.gateway.map { " via gateway \($0)" } ?? ""
            return FlowDecision(allowed: true, policy: entry.policy.name,
                                reason: "\(entry.policy.kindWord) '\(entry.policy.name)': \(fromText) → \(toText) \(query.serviceText)\(via)")
        }
        if let (entry, reason) = inactive {
            return FlowDecision(allowed: false, policy: entry.policy.name,
                                reason: "\(entry.policy.kindWord) '\(entry.policy.name)' would allow \(fromText) → \(toText) \(query.serviceText) but grants nothing now: \(reason)")
        }
        if let entry = portless {
            let allowed = entry.policy.allowText
            return FlowDecision(allowed: false, policy: entry.policy.name,
                                reason: "default deny: \(entry.policy.kindWord) '\(entry.policy.name)' connects \(fromText) → \(toText) but allows only \(allowed), not \(query.serviceText)")
        }
        if let toSystem, let reverse = reverseGrant(from: toSystem, to: fromSystem) {
            return FlowDecision(allowed: false, policy: nil,
                                reason: "default deny: no policy lets \(fromText) reach \(toText); \(reverse.policy.kindWord) '\(reverse.policy.name)' lets \(toSystem.name) reach \(fromSystem.name), and receivers may only reply")
        }
        if toSystem == nil && !graph.entries.contains(where: { $0.subnets.contains { $0.contains(query.to) } }) {
            return FlowDecision(allowed: false, policy: nil, reason: "default deny: \(query.to) is neither an enrolled system nor in a gateway subnet")
        }
        return FlowDecision(allowed: false, policy: nil, reason: "default deny: no policy lets \(fromText) reach \(toText)")
    }

    private func enforcedHere(_ entry: AccessGraph.Entry, to: SystemDefinition?, from: SystemDefinition) -> Bool {
        guard let system else { return true }
        if let gateway = entry.gateway { return gateway == system.name }
        if to?.name == system.name { return true }
        return graph.gateways.contains(system.name) && from.name != system.name
    }

    private func reverseGrant(from: SystemDefinition, to: SystemDefinition) -> AccessGraph.Entry? {
        graph.entries.first { entry in
            entry.senders.contains { $0.name == from.name } && entry.receivers.contains { $0.name == to.name }
        }
    }

    /// Ports at which decisions can change inside `range` for `proto`: the range's ends and
    /// every policy port boundary within it. Checking these checks the whole range.
    public func probePorts(_ proto: FlowProtocol, in range: PortRange) -> [UInt16] {
        var ports: Set<UInt16> = [range.first, range.last]
        for entry in graph.entries {
            for service in entry.policy.allow ?? [] {
                let bounds: PortRange?
                switch (service, proto) {
                case (.tcp(let r), .tcp), (.udp(let r), .udp): bounds = r
                default: bounds = nil
                }
                guard let bounds else { continue }
                for p in [Int(bounds.first) - 1, Int(bounds.first), Int(bounds.last), Int(bounds.last) + 1]
                where p >= Int(range.first) && p <= Int(range.last) {
                    ports.insert(UInt16(p))
                }
            }
        }
        return ports.sorted()
    }
}
