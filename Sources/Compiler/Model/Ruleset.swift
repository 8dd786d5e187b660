/// The typed nftables ruleset enforcer owns: what `apply --dry-run` prints and what
/// `apply` encodes for the kernel. One model, two views.
public struct Ruleset: Hashable, Sendable, Codable {
    public var table: Table
    public init(table: Table) { self.table = table }
}

public enum TableFamily: String, Hashable, Sendable, Codable { case inet, ip, ip6 }

public struct Table: Hashable, Sendable, Codable {
    public var family: TableFamily
    public var name: String
    public var sets: [NamedSet]
    public var chains: [Chain]
    /// Named counter objects (`counter policy_3 { }`) that rules count into by name
    /// (`counter name "policy_3"`). Being objects of the table rather than parts of a rule,
    /// they keep their counts while a delta flushes and rewrites the chains that use them.
    public var counters: [String]

    public init(family: TableFamily, name: String, sets: [NamedSet], chains: [Chain], counters: [String] = []) {
        self.family = family
        self.name = name
        self.sets = sets
        self.chains = chains
        self.counters = counters
    }

    enum CodingKeys: String, CodingKey { case family, name, sets, chains, counters }

    /// A table recorded before tables had counters has none.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        family = try container.decode(TableFamily.self, forKey: .family)
        name = try container.decode(String.self, forKey: .name)
        sets = try container.decode([NamedSet].self, forKey: .sets)
        chains = try container.decode([Chain].self, forKey: .chains)
        counters = try container.decodeIfPresent([String].self, forKey: .counters) ?? []
    }

    public func set(named name: String) -> NamedSet? { sets.first { $0.name == name } }
    /// The sets of one role, in table order.
    public func sets(withRole role: NamedSet.Role) -> [NamedSet] { sets.filter { $0.role == role } }
    public func chain(named name: String) -> Chain? { chains.first { $0.name == name } }
}

public enum Hook: String, Hashable, Sendable, Codable { case prerouting, input, forward, output, postrouting }

public struct BaseChain: Hashable, Sendable, Codable {
    public var hook: Hook
    /// Offset from the `filter` priority (0).
    public var priority: Int
    public var policy: Verdict

    public init(hook: Hook, priority: Int, policy: Verdict) {
        self.hook = hook
        self.priority = priority
        self.policy = policy
    }
}

public struct Chain: Hashable, Sendable, Codable {
    public var name: String
    public var base: BaseChain?
    public var rules: [Rule]
    public var comment: String?

    public init(name: String, base: BaseChain? = nil, rules: [Rule] = [], comment: String? = nil) {
        self.name = name
        self.base = base
        self.rules = rules
        self.comment = comment
    }
}

public struct Rule: Hashable, Sendable, Codable {
    public var expressions: [RuleExpression]
    public var comment: String?

    public init(_ expressions: [RuleExpression], comment: String? = nil) {
        self.expressions = expressions
        self.comment = comment
    }
}

/// The value types a set key or a match can have; each has a fixed width in the kernel.
public enum KeyType: String, Hashable, Sendable, Codable {
    case ipv4Address = "ipv4_addr"
    case ipv6Address = "ipv6_addr"
    case inetProtocol = "inet_proto"
    case inetService = "inet_service"
    case mark = "mark"

    /// Bytes of the key in a set element (each concatenated part is padded to 4 bytes).
    public var width: Int {
        switch self {
        case .ipv4Address, .mark: 4
        case .ipv6Address: 16
        case .inetProtocol: 1
        case .inetService: 2
        }
    }
}

public enum SetData: String, Hashable, Sendable, Codable { case verdict }

/// A named set or map.
public struct NamedSet: Hashable, Sendable, Codable {
    public struct Flags: OptionSet, Hashable, Sendable, Codable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let interval = Flags(rawValue: 1)
        public static let timeout = Flags(rawValue: 2)
        public static let constant = Flags(rawValue: 4)
        /// Filled by rules as packets pass (`update @set { … }`), not by enforcer.
        public static let dynamic = Flags(rawValue: 8)
    }

    /// What a set is for, where code beyond the compiler treats it apart: the kernel side
    /// finds the sender maps and the timed grants by role, never by a naming convention.
    public enum Role: String, Hashable, Sendable, Codable {
        /// Nothing beyond its rules looks at it.
        case plain
        /// Single sender addresses to their sender class (a hash map, one element each).
        case senderHostsMap
        /// Sender ranges and CIDRs to their sender class (an interval map).
        case senderRangesMap
        /// Policy marks in force for a while, each with its own kernel timeout: filled by the
        /// applier, never by the compiled ruleset.
        case timedGrants

        public var isSenderMap: Bool { self == .senderHostsMap || self == .senderRangesMap }
    }

    public var name: String
    public var key: [KeyType]
    public var data: SetData?
    public var flags: Flags
    public var elements: SetElements
    public var comment: String?
    /// The most elements the kernel will hold (`size`), given for large hash sets: the
    /// kernel then picks a fixed-size hash instead of growing one as elements arrive.
    public var size: Int?
    /// Seconds an element stays after it was last added or updated (`timeout`), for a set
    /// that rules fill.
    public var timeout: Int?
    public var role: Role

    public init(name: String, key: [KeyType], data: SetData? = nil, flags: Flags = [], elements: SetElements = [], comment: String? = nil,
                size: Int? = nil, timeout: Int? = nil, role: Role = .plain) {
        self.name = name
        self.key = key
        self.data = data
        self.flags = flags
        self.elements = elements
        self.comment = comment
        self.size = size
        self.timeout = timeout
        self.role = role
    }

    public init(name: String, key: [KeyType], data: SetData? = nil, flags: Flags = [], elements: [SetElement], comment: String? = nil,
                size: Int? = nil, role: Role = .plain) {
        self.init(name: name, key: key, data: data, flags: flags, elements: SetElements(elements), comment: comment, size: size, role: role)
    }

    enum CodingKeys: String, CodingKey { case name, key, data, flags, elements, comment, size, timeout, role }

    /// A set recorded before sets had roles gets the role its compiler-given name implies.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        key = try container.decode([KeyType].self, forKey: .key)
        data = try container.decodeIfPresent(SetData.self, forKey: .data)
        flags = try container.decode(Flags.self, forKey: .flags)
        elements = try container.decode(SetElements.self, forKey: .elements)
        comment = try container.decodeIfPresent(String.self, forKey: .comment)
        size = try container.decodeIfPresent(Int.self, forKey: .size)
        timeout = try container.decodeIfPresent(Int.self, forKey: .timeout)
        role = try container.decodeIfPresent(Role.self, forKey: .role) ?? Role(recordedName: name)
    }

    /// `size` for a hash set of `count` elements: none below 4096, else the power of two at
    /// least twice the count, so deltas have room and the size changes (a whole-table
    /// replace) only when the count doubles or halves.
    public static func sizeHint(for count: Int) -> Int? {
        guard count >= 4096 else { return nil }
        var size = 8192
        while size < 2 * count { size *= 2 }
        return size
    }

    public var isMap: Bool { data != nil }

    /// Whether the kernel's set of this definition takes `count` elements: a set with a
    /// size refuses elements beyond it; one without grows as needed.
    func holds(_ count: Int) -> Bool { size.map { count <= $0 } ?? true }
}

extension Ruleset {
    /// This ruleset with the sizes of `live`'s sets where they still serve: a set `live`
    /// has with the same definition but for its size, and a size that holds this set's
    /// elements, keeps it.
    ///
    /// Why: the kernel cannot change a set's size, so a new size means the set made again
    /// with every element, in a whole-table replace. `sizeHint` is a function of the
    /// count alone; a hosts map growing from 4,000 to 4,100 senders would cross its 4,096
    /// and cost 4,101 operations where 101 elements changed. The size the kernel holds is
    /// kept instead until the elements no longer fit; the ruleset recorded says that size,
    /// so the record stays what the kernel holds.
    public func keepingSetSizes(of live: Ruleset) -> Ruleset {
        guard table.family == live.table.family, table.name == live.table.name else { return self }
        // Only a few sets have a size (the sender maps): those of the live table are looked
        // up by name, and a new set with a size finds its live one by a scan.
        let liveSized = Dictionary(live.table.sets.lazy.filter { $0.size != nil }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var out = self
        for index in out.table.sets.indices {
            let set = out.table.sets[index]
            let match = liveSized[set.name] ?? (set.size == nil ? nil : live.table.sets.first { $0.name == set.name })
            guard let kept = match, kept.size != set.size, kept.holds(set.elements.count) else { continue }
            var resized = set
            resized.size = kept.size
            if resized.sameDefinition(as: kept) { out.table.sets[index].size = kept.size }
        }
        return out
    }
}

/// One part of an element key: a value, or a closed range where the set has intervals.
public enum KeyPart: Hashable, Sendable, Codable {
    case addresses(AddressRange)
    case proto(IPProtocol)
    case ports(PortRange)
    case mark(UInt32)
}

public struct SetElement: Hashable, Sendable, Codable {
    public var key: [KeyPart]
    public var verdict: Verdict?
    /// Seconds until the kernel removes the element (sets with the timeout flag).
    public var timeout: Int?
    /// Which policy or system put the element here, for the plan and the log.
    public var comment: String?

    public init(_ key: [KeyPart], verdict: Verdict? = nil, timeout: Int? = nil, comment: String? = nil) {
        self.key = key
        self.verdict = verdict
        self.timeout = timeout
        self.comment = comment
    }
}

/// IP protocol numbers the model uses.
public enum IPProtocol: UInt8, Hashable, Sendable, Comparable, Codable {
    case icmp = 1
    case tcp = 6
    case udp = 17
    case icmpv6 = 58

    public var name: String {
        switch self {
        case .icmp: "icmp"
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmpv6: "ipv6-icmp"
        }
    }

    public static func < (a: IPProtocol, b: IPProtocol) -> Bool { a.rawValue < b.rawValue }
}

public enum Verdict: Hashable, Sendable, Codable {
    case accept
    case drop
    case `return`
    case jump(String)
    case goto(String)

    /// The chain a jump or goto leads to.
    public var chain: String? {
        switch self {
        case .jump(let chain), .goto(let chain): chain
        default: nil
        }
    }
}

public enum ConntrackState: String, Hashable, Sendable, CaseIterable, Codable {
    case invalid, established, related, new, untracked
}

public enum ConntrackDirection: String, Hashable, Sendable, Codable { case original, reply }

/// A packet field a rule reads.
public enum Field: Hashable, Sendable, Codable {
    case inputInterface
    case l4Protocol
    case nfProtocol
    case packetMark
    case ipSource, ipDestination
    case ip6Source, ip6Destination
    case ip6HopLimit
    case transportSourcePort, transportDestinationPort
    case udpSourcePort, udpDestinationPort
    case tcpDestinationPort
    case icmpType, icmpv6Type
    case conntrackMark
    case conntrackDirection
}

public enum CompareOp: String, Hashable, Sendable, Codable { case equal = "==", notEqual = "!=" }

/// A constant a field is compared with.
public enum Constant: Hashable, Sendable, Codable {
    case number(UInt32)
    case interface(String)
    case proto(IPProtocol)
    case port(UInt16)
    case direction(ConntrackDirection)
    case icmpType(ICMPType)
    case icmpv6Type(ICMPv6Type)
}

public enum ICMPType: UInt8, Hashable, Sendable, Codable {
    case echoReply = 0, destinationUnreachable = 3, echoRequest = 8, timeExceeded = 11, parameterProblem = 12
}

public enum ICMPv6Type: UInt8, Hashable, Sendable, Codable {
    case destinationUnreachable = 1, packetTooBig = 2, timeExceeded = 3, parameterProblem = 4
    case mldListenerQuery = 130, mldListenerReport = 131, mldListenerDone = 132
    case routerSolicit = 133, routerAdvert = 134, neighborSolicit = 135, neighborAdvert = 136
    case mld2ListenerReport = 143
}

public enum RejectKind: Hashable, Sendable, Codable {
    case tcpReset
    case icmpxPortUnreachable
    case icmpxAdminProhibited
}

/// One expression of a rule; a closed family that both the nft text renderer and the
/// netlink encoder understand.
public enum RuleExpression: Hashable, Sendable, Codable {
    /// `field op constant`
    case compare(Field, CompareOp, Constant)
    /// `field & mask op value`
    case maskedCompare(Field, mask: UInt32, CompareOp, UInt32)
    /// `field { a, b, c }` with an anonymous set of constants.
    case anyOf(Field, [Constant])
    /// `ct state a,b`
    case conntrackState([ConntrackState])
    /// `tcp flags & (syn | ack) == syn` style: flags present under mask.
    case tcpFlags(mask: UInt8, equal: UInt8)
    /// Membership of the (masked) field concatenation in a named set.
    case lookup([Field], mask: UInt32?, set: String)
    /// Verdict map on the field concatenation.
    case verdictMap([Field], map: String)
    /// `ct mark set ct mark & keep | value`
    case setConntrackMark(keep: UInt32, value: UInt32)
    /// `meta mark set meta mark & keep | value`
    case setPacketMark(keep: UInt32, value: UInt32)
    case counter
    /// Counts the packet into the table's counter object of that name (`counter name "…"`).
    case namedCounter(String)
    case reject(RejectKind)
    /// Matches while the key (one per source address, say) goes over `perSecond` packets a
    /// second after a burst of `burst`: `update @set { key limit rate over … }`, each key's
    /// rate kept in the dynamic set `set`.
    case rateOver([Field], set: String, perSecond: UInt32, burst: UInt32)
    /// Hand the packet to userspace; with `bypass` it is accepted while no worker listens.
    case queue(number: UInt16, bypass: Bool)
    case verdict(Verdict)
}
