import Foundation

/// What a policy's `allow` grants on the receiving side: a protocol, optionally limited to ports.
public enum Service: Hashable, Sendable, CustomStringConvertible {
    /// Every protocol, every port.
    case any
    /// ICMP and ICMPv6.
    case icmp
    case tcp(PortRange?)
    case udp(PortRange?)

    public var description: String {
        switch self {
        case .any: "any"
        case .icmp: "icmp"
        case .tcp(nil): "tcp"
        case .tcp(let ports?): "tcp/\(ports)"
        case .udp(nil): "udp"
        case .udp(let ports?): "udp/\(ports)"
        }
    }

    public static func parse(_ text: String) throws(ValueError) -> Service {
        let lower = text.lowercased()
        switch lower {
        case "any", "all": return .any
        case "icmp", "icmpv6": return .icmp
        case "tcp": return .tcp(nil)
        case "udp": return .udp(nil)
        default: break
        }
        guard let slash = lower.firstIndex(of: "/") else {
            throw ValueError("unknown protocol '\(text)' (expected any, icmp, tcp, udp, tcp/PORT or udp/FIRST-LAST)")
        }
        let proto = lower[..<slash]
        let portText = lower[lower.index(after: slash)...]
        let offset = lower.distance(from: lower.startIndex, to: slash) + 1
        let ports: PortRange
        do { ports = try PortRange.parse(portText) } catch {
            throw ValueError(error.message, at: offset + error.offset)
        }
        switch proto {
        case "tcp": return .tcp(ports)
        case "udp": return .udp(ports)
        case "icmp", "any": throw ValueError("'\(proto)' takes no port", at: offset - 1)
        default: throw ValueError("unknown protocol '\(proto)' (expected tcp or udp before a port)")
        }
    }
}

/// A transport protocol as a flow carries it.
public enum FlowProtocol: String, Hashable, Sendable, CaseIterable {
    case tcp, udp, icmp
}

extension Service {
    /// Whether this service admits a flow of `proto` to `port`.
    public func admits(_ proto: FlowProtocol, port: UInt16?) -> Bool {
        switch (self, proto) {
        case (.any, _): true
        case (.icmp, .icmp): true
        case (.tcp(let ports), .tcp), (.udp(let ports), .udp):
            ports.map { range in port.map { range.first <= $0 && $0 <= range.last } ?? false } ?? true
        default: false
        }
    }
}

/// A name as written, and where.
public struct Located<Value: Sendable>: Sendable {
    public var value: Value
    public var location: SourceLocation
    public init(_ value: Value, at location: SourceLocation) {
        self.value = value
        self.location = location
    }
}
extension Located: Equatable where Value: Equatable {}
extension Located: Hashable where Value: Hashable {}

/// An enrolled host and the tags it carries.
/// A class, not a struct, because the access graph lists each system under every policy
/// that names one of its tags: a copy is then one reference count, not one per field (ten
/// thousand systems under a thousand policies made these copies a tenth of a compile).
public final class SystemDefinition: Sendable {
    public let name: String
    public let location: SourceLocation
    public let addresses: [AddressBlock]
    public let tags: [String]
    /// From this instant on the system is no sender anywhere (`expires:`); nil: never.
    public let expires: Date?

    public init(name: String, location: SourceLocation, addresses: [AddressBlock], tags: [String], expires: Date? = nil) {
        self.name = name
        self.location = location
        self.addresses = addresses
        self.tags = tags
        self.expires = expires
    }
}

/// When a policy or rule is in force.
public struct Schedule: Sendable, Hashable {
    public var activeHours: TimeSpec?
    public var timeZone: TimeZone
    public var expires: Date?
    public var enabled: Bool
    /// `enforcer policy enable|disable`, over the file's `enabled`.
    public var override: EnabledOverride?

    public static let always = Schedule(activeHours: nil, timeZone: TimeZone(identifier: "UTC")!, expires: nil, enabled: true)

    public init(activeHours: TimeSpec?, timeZone: TimeZone, expires: Date?, enabled: Bool, override: EnabledOverride? = nil) {
        self.activeHours = activeHours
        self.timeZone = timeZone
        self.expires = expires
        self.enabled = enabled
        self.override = override
    }

    /// Why the policy is switched off at `instant` (the override first, then the file), or nil.
    private func disabledReason(at instant: Date) -> String? {
        if let override {
            if override.enabled, override.until.map({ instant < $0 }) ?? true { return nil }
            if !override.enabled, override.from.map({ instant >= $0 }) ?? true {
                return "disabled by `enforcer policy disable`" + (override.from.map { " from \(ISO8601.string($0))" } ?? "")
            }
        }
        return enabled ? nil : "enabled: no"
    }

    /// Why the schedule grants nothing at `instant`, or nil when it is in force.
    public func inactiveReason(at instant: Date) -> String? {
        if let reason = disabledReason(at: instant) { return reason }
        if let expires, instant >= expires { return "expired \(ISO8601.string(expires))" }
        if let hours = activeHours, !hours.contains(instant, in: timeZone) {
            return "outside active hours \(hours) (\(timeZone.identifier))"
        }
        return nil
    }

    /// The first instant after `instant` from which `inactiveReason` may say something else
    /// (nil: never): a flip, or a boundary that changes only why the policy is not in force.
    public func reasonChanges(after instant: Date) -> Date? {
        ([nextFlip(after: instant), override?.from, override?.until, expires].compactMap { $0 }.filter { $0 > instant }).min()
    }

    /// The next instant after `instant` when the schedule changes between in force and not.
    public func nextFlip(after instant: Date) -> Date? {
        let inForce = inactiveReason(at: instant) == nil
        var cursor = instant
        for _ in 0..<64 {
            let switches = [override?.from, override?.until].compactMap { $0 }.filter { $0 > cursor }
            // Switched off with no enable/disable boundary ahead, or expired: nothing changes any more.
            if disabledReason(at: cursor) != nil && switches.isEmpty { return nil }
            if let expires, cursor >= expires { return nil }
            var candidates = switches + [expires].compactMap { $0 }.filter { $0 > cursor }
            if let hours = activeHours, let flip = hours.nextFlip(after: cursor, in: timeZone) { candidates.append(flip) }
            guard let next = candidates.min() else { return nil }
            if (inactiveReason(at: next) == nil) != inForce { return next }
            cursor = next
        }
        return cursor  // a wake-up that changes nothing is harmless; never sleeping past a flip is not
    }

    /// `enforcer policy enable --for`: in force until then with a kernel timeout.
    public var timedUntil: Date? { override.flatMap { $0.enabled ? $0.until : nil } }
}

/// A runtime change of a policy's `enabled` (`enforcer policy enable NAME [--for D]`,
/// `disable NAME [--after D]`), kept in the state directory.
public struct EnabledOverride: Codable, Hashable, Sendable {
    public var enabled: Bool
    /// disable --after: switched off from this instant.
    public var from: Date?
    /// enable --for: switched on until this instant, then back to the file's `enabled`.
    public var until: Date?

    public init(enabled: Bool, from: Date? = nil, until: Date? = nil) {
        self.enabled = enabled
        self.from = from
        self.until = until
    }
}

/// `enforcer trust grant|revoke`: whether a system meets a trust requirement, and until when.
public struct TrustRecord: Codable, Hashable, Sendable {
    public var granted: Bool
    /// grant --for: met until this instant, then revoked.
    public var until: Date?

    public init(granted: Bool, until: Date? = nil) {
        self.granted = granted
        self.until = until
    }

    public func holds(at instant: Date) -> Bool { granted && (until.map { instant < $0 } ?? true) }
}

/// Trust requirements currently met, per system (`enforcer trust grant`).
public struct TrustGrants: Hashable, Sendable {
    public var granted: [String: Set<String>]
    public init(_ granted: [String: Set<String>] = [:]) { self.granted = granted }

    public func satisfies(_ system: String, _ requirements: [String]) -> Bool {
        requirements.allSatisfy { granted[system]?.contains($0) ?? false }
    }
}

/// Everything operators changed at run time, over the policy files.
public struct RuntimeOverrides: Codable, Hashable, Sendable {
    public var policies: [String: EnabledOverride] = [:]
    /// System → requirement → record.
    public var trust: [String: [String: TrustRecord]] = [:]

    public init(policies: [String: EnabledOverride] = [:], trust: [String: [String: TrustRecord]] = [:]) {
        self.policies = policies
        self.trust = trust
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        policies = try container.decodeIfPresent([String: EnabledOverride].self, forKey: .policies) ?? [:]
        trust = try container.decodeIfPresent([String: [String: TrustRecord]].self, forKey: .trust) ?? [:]
    }

    /// The requirements each system meets at `instant`.
    public func trustGrants(at instant: Date) -> TrustGrants {
        TrustGrants(trust.mapValues { Set($0.filter { $0.value.holds(at: instant) }.keys) }.filter { !$0.value.isEmpty })
    }

    /// The requirements each system lost by a revoke or a grant that ran out: its flows
    /// under policies needing them are cut, not only its new ones.
    public func revokedTrust(at instant: Date) -> [String: Set<String>] {
        trust.mapValues { Set($0.filter { !$0.value.holds(at: instant) }.keys) }.filter { !$0.value.isEmpty }
    }

    /// The next instant after `instant` when a trust grant runs out.
    public func nextTrustChange(after instant: Date) -> Date? {
        trust.values.flatMap { $0.values.compactMap { $0.granted ? $0.until : nil } }.filter { $0 > instant }.min()
    }

    /// `set` with the overrides on its policies' schedules; unknown names are ignored.
    public func applied(to set: PolicySet) -> PolicySet {
        var out = set
        for index in out.policies.indices {
            out.policies[index].schedule.override = policies[out.policies[index].name]
        }
        return out
    }

    /// Without the overrides that can no longer matter at `instant` (an `enable --for` past its end).
    public func pruned(at instant: Date) -> RuntimeOverrides {
        RuntimeOverrides(policies: policies.filter { !($0.value.enabled && ($0.value.until.map { $0 <= instant } ?? false)) }, trust: trust)
    }
}

/// A direct or gateway access policy.
public struct AccessPolicy: Sendable {
    public enum Reach: Sendable {
        /// Senders reach the systems holding a receiver tag.
        case direct(receivers: [String])
        /// Senders reach any address in `subnets`, routed by the `gateway` system.
        case gateway(gateway: String, subnets: [AddressBlock])
    }

    public var name: String
    public var location: SourceLocation
    /// Position in load order (file order, then block order), which breaks ties.
    public var order: Int
    public var senders: [String]
    public var reach: Reach
    /// nil: no `allow` key, which grants nothing.
    public var allow: [Service]?
    /// The service names of /etc/services that `allow` was written with (`ssh` for tcp/22),
    /// to show beside what they resolved to.
    public var allowNames: [Service: String] = [:]
    public var schedule: Schedule
    public var trust: [String]
    public var description: String?

    public var isGateway: Bool { if case .gateway = reach { true } else { false } }
    public var kindWord: String { isGateway ? "gateway-policy" : "policy" }

    /// `service` as the plan shows it: `tcp/22 (ssh)` when it was written as a name.
    public func describe(_ service: Service) -> String {
        allowNames[service].map { "\(service) (\($0))" } ?? service.description
    }

    /// The `allow` list as the plan and `test` show it.
    public var allowText: String {
        allow.map { $0.isEmpty ? "nothing" : $0.map(describe).joined(separator: ", ") } ?? "nothing (no allow)"
    }
}

/// What a web rule does with a matching flow: let it through, refuse it, or send the client to
/// the portal to read a warning (`warn`) or accept the acceptable-use policy (`aup`) first.
public enum WebAction: String, Sendable, Hashable, CaseIterable {
    case permit, deny, warn, aup
}

/// A rule of the NFQUEUE worker: all match keys must match (AND); a list matches if any entry does.
public struct WebRule: Sendable {
    public var name: String
    public var location: SourceLocation
    public var order: Int
    /// `match-domain` entries and each `match-domain-list` file; the key matches if any set does.
    public var domains: [DomainSet]
    public var domainListPaths: [String]
    public var sni: DomainSet?
    public var uriPatterns: [Pattern]
    public var hostPatterns: [Pattern]
    public var userAgentPatterns: [Pattern]
    public var sources: [WebSource]
    public var action: WebAction
    public var description: String?
    public var timeWindow: TimeSpec?
    public var timeZone: TimeZone

    /// Only a URI regex: for TLS it sees `https://SNI/` and no path.
    public var matchesOnlyByURI: Bool {
        !uriPatterns.isEmpty && domains.isEmpty && sni == nil && hostPatterns.isEmpty && userAgentPatterns.isEmpty
    }
}

/// `match-source`: an address block, or a tag resolved to its systems' addresses.
public enum WebSource: Sendable, Hashable {
    case block(AddressBlock)
    case tag(String, [AddressBlock])
}

/// A policy test run by `check` and before every apply.
public struct Expectation: Sendable {
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        case system(String)
        case address(IPAddress)
        public var description: String {
            switch self {
            case .system(let name): name
            case .address(let address): address.description
            }
        }
    }
    public enum Check: Sendable {
        case flow(from: Endpoint, to: Endpoint, allow: [Service], deny: [Service])
        case web(url: String, verdict: WebAction, from: IPAddress?)
    }
    public var name: String
    public var location: SourceLocation
    public var check: Check
    public var at: Date?
}

/// Everything a policy directory says, checked and resolved.
public struct PolicySet: Sendable {
    public var directory: String
    public var config: Config
    public var systems: [SystemDefinition]
    public var policies: [AccessPolicy]
    public var webRules: [WebRule]
    public var expectations: [Expectation]
    /// Files in `rules.d/` in load order.
    public var files: [String]
    /// Systems left out because they expired (`systemsInForce(at:)`): no sender anywhere,
    /// and the flows they opened before are cut.
    public var expired: [SystemDefinition] = []

    public func system(named name: String) -> SystemDefinition? { systems.first { $0.name == name } }

    /// The policy at `instant`: without the systems that expired by then (`expires:`), so
    /// that no receiver admits them. The same value when none did. `keeping`: the host the
    /// policy is compiled for stays in it whatever its expiry: an expired host is no sender to
    /// others, but it keeps enforcing what it receives.
    public func systemsInForce(at instant: Date, keeping host: String? = nil) -> PolicySet {
        func expired(_ system: SystemDefinition) -> Bool { system.name != host && system.expires.map { $0 <= instant } ?? false }
        guard systems.contains(where: expired) else { return self }
        var out = self
        out.systems = systems.filter { !expired($0) }
        out.expired = systems.filter(expired)
        return out
    }

    /// The first system expiry after `instant`.
    public func nextSystemExpiry(after instant: Date) -> Date? {
        systems.lazy.compactMap(\.expires).filter { $0 > instant }.min()
    }

    /// The systems whose expiry falls in `(after, through]`, by name.
    public func systemsExpiring(after start: Date, through end: Date) -> [String] {
        systems.filter { $0.expires.map { $0 > start && $0 <= end } ?? false }.map(\.name)
    }

    /// Systems holding `tag`, in definition order.
    public func systems(tagged tag: String) -> [SystemDefinition] { systems.filter { $0.tags.contains(tag) } }

    /// The system that owns `address` (one of its addresses or inside one of its blocks).
    public func system(owning address: IPAddress) -> SystemDefinition? {
        systems.first { $0.addresses.contains { $0.contains(address) } }
    }
}
