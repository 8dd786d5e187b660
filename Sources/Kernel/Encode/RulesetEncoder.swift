import Compiler

/// How the kernel is asked to queue a packet to userspace. Kernels without nft_queue (as on
/// this project's machines) still have the xtables NFQUEUE target through nft_compat.
public enum QueueEncoding: String, Hashable, Sendable {
    case native
    case xtablesTarget = "xt NFQUEUE"
}

/// Turns the ruleset model into nf_tables messages: the same model `apply --dry-run` prints.
public struct RulesetEncoder: Sendable {
    public var queue: QueueEncoding
    /// Element messages stop growing past this many bytes (a netlink attribute holds < 64 KiB).
    public var elementBytesPerMessage = 48 * 1024

    public init(queue: QueueEncoding) { self.queue = queue }

    // MARK: Whole table

    /// Everything needed to create `ruleset` from nothing: table, sets, chains, the elements
    /// of constant sets, rules, then the other elements. Elements and rules may refer to any
    /// chain or set; a constant set takes no elements once a rule uses it, and any other set
    /// takes them more cheaply then: the kernel checks the elements of a map against each rule
    /// that binds it, so a map bound while empty is not walked a second time (for a large
    /// map of jump elements that walk is a good part of the kernel's work).
    ///
    /// `counts`: where each counter object starts (what the table being replaced had counted).
    public func create(_ ruleset: Ruleset, tableComment: String?, counts: [String: CounterValue] = [:]) throws(EncodeError) -> [EncodedMessage] {
        try create(Snapshot(ruleset), tableComment: tableComment, counts: counts)
    }

    /// The same from a recorded generation (its sets hold kernel elements).
    public func create(_ snapshot: Snapshot, tableComment: String?, counts: [String: CounterValue] = [:]) throws(EncodeError) -> [EncodedMessage] {
        let table = snapshot.table
        var ids = SetIDs()
        var out: [EncodedMessage] = [EncodedMessage(.newTable(NFTTableSpec(
            family: table.family.number, name: table.name, userData: UserData.comment(tableComment))), origin: "table \(table.name)")]
        for counter in table.counters { out.append(newCounter(counter, in: table, from: counts[counter])) }
        for set in table.sets { out.append(newSet(set, in: table, ids: &ids)) }
        for chain in table.chains { out.append(newChain(chain, in: table)) }
        for set in table.sets where set.flags.contains(.constant) {
            out += chunks(snapshot.elements[set.name] ?? [], of: set, in: table, delete: false)
        }
        for chain in table.chains { out += try rules(of: chain, in: table, ids: &ids) }
        for set in table.sets where !set.flags.contains(.constant) {
            out += chunks(snapshot.elements[set.name] ?? [], of: set, in: table, delete: false)
        }
        return out
    }

    public func newCounter(_ name: String, in table: Table, from value: CounterValue? = nil) -> EncodedMessage {
        EncodedMessage(.newCounter(NFTCounterSpec(family: table.family.number, table: table.name, name: name,
                                                  packets: value?.packets ?? 0, bytes: value?.bytes ?? 0)),
                       origin: "counter \(name)")
    }

    public func deleteCounter(_ name: String, in table: Table) -> EncodedMessage {
        EncodedMessage(.deleteCounter(family: table.family.number, table: table.name, name: name), origin: "counter \(name)")
    }

    public func newSet(_ set: NamedSet, in table: Table, ids: inout SetIDs) -> EncodedMessage {
        var flags: UInt32 = 0
        if set.isMap { flags |= NFTConstants.setMap }
        if set.flags.contains(.interval) { flags |= NFTConstants.setInterval }
        if set.flags.contains(.constant) { flags |= NFTConstants.setConstant }
        if set.flags.contains(.timeout) { flags |= NFTConstants.setTimeout }
        if set.flags.contains(.dynamic) { flags |= NFTConstants.setEvaluate }
        if set.key.count > 1 { flags |= NFTConstants.setConcat }
        let keyOrder: UInt32 = set.key == [.mark] ? 1 : 2  // host / big endian, for `nft list`
        var userData = UserData.record(type: 0, Self.hostBytes(keyOrder))
        if let comment = set.comment, !comment.isEmpty {
            userData += UserData.record(type: 7, Array(NFTComment.fitted(comment).utf8) + [0])
        }
        let spec = NFTSetSpec(
            family: table.family.number, table: table.name, name: set.name, id: ids.next(),
            flags: flags, keyType: Self.keyType(set.key), keyLength: UInt32(Self.keyLength(set.key)),
            concatLengths: set.key.count > 1 ? set.key.map { UInt8($0.width) } : [],
            dataType: set.isMap ? NFTConstants.dataVerdict : nil, dataLength: nil, userData: userData,
            size: set.size.map { UInt32($0) }, timeoutMilliseconds: set.timeout.map { UInt64($0) * 1000 })
        return EncodedMessage(.newSet(spec), origin: "set \(set.name)" + (set.comment.map { " (\($0))" } ?? ""))
    }

    public func newChain(_ chain: Chain, in table: Table) -> EncodedMessage {
        let hook = chain.base.map { base in
            NFTChainSpec.Hook(number: base.hook.number, priority: Int32(base.priority),
                              policy: base.policy == .accept ? NFTConstants.accept : NFTConstants.drop)
        }
        return EncodedMessage(.newChain(NFTChainSpec(family: table.family.number, table: table.name, name: chain.name,
                                                     hook: hook, userData: UserData.comment(chain.comment))),
                              origin: "chain \(chain.name)")
    }

    // MARK: Elements

    /// The kernel's elements for model elements: an interval set without concatenation keeps
    /// start points and interval-end points (as nft does); a concatenated interval set keeps
    /// key and key-end in one element.
    public static func kernelElements(_ elements: SetElements, of set: NamedSet) -> KernelElements {
        let interval = set.flags.contains(.interval)
        let concat = set.key.count > 1
        if interval && !concat {
            return KernelElements(intervalPoints(elements, width: set.key[0].width))
        }
        if let hosts = elements.hostColumns, !concat, 4 * hosts.wordsPerAddress == set.key[0].width {
            return packed(hosts)
        }
        return KernelElements(elements.map { element in
            var key: [UInt8] = [], end: [UInt8] = []
            for (part, type) in zip(element.key, set.key) {
                let (low, high) = bounds(part, type)
                key += concat ? padded(low) : low
                end += concat ? padded(high) : high
            }
            return NFTElement(key: key, keyEnd: interval ? end : nil, verdict: element.verdict.map(Self.verdict),
                              timeoutMilliseconds: element.timeout.map { UInt64($0) * 1000 },
                              userData: UserData.comment(element.comment))
        })
    }

    public static func kernelElements(_ elements: [SetElement], of set: NamedSet) -> KernelElements {
        kernelElements(SetElements(elements), of: set)
    }

    /// Single addresses to verdicts: network-order keys end to end, verdicts by number.
    static func packed(_ hosts: HostColumns) -> KernelElements {
        var keys: [UInt8] = []
        keys.reserveCapacity(hosts.words.count * 4)
        for word in hosts.words {
            keys.append(UInt8(truncatingIfNeeded: word >> 24))
            keys.append(UInt8(truncatingIfNeeded: word >> 16))
            keys.append(UInt8(truncatingIfNeeded: word >> 8))
            keys.append(UInt8(truncatingIfNeeded: word))
        }
        return KernelElements(width: 4 * hosts.wordsPerAddress, keys: keys, verdicts: hosts.verdicts.map { $0.map(verdict) },
                              verdictIndex: hosts.verdictIndex)
    }

    /// Start points and end points of sorted, disjoint ranges. An end point is left out where
    /// the next range starts right after (its start ends the previous one) or at the top.
    static func intervalPoints(_ elements: SetElements, width: Int) -> [NFTElement] {
        struct KeyRange { var low: UInt128; var high: UInt128; var element: SetElement }
        let ranges = elements.map { element -> KeyRange in
            let (low, high) = integerBounds(element.key[0])
            return KeyRange(low: low, high: high, element: element)
        }.sorted { $0.low < $1.low }
        let top: UInt128 = width >= 16 ? .max : (UInt128(1) << (width * 8)) - 1
        var points: [NFTElement] = []
        points.reserveCapacity(ranges.count * 2)
        for (index, range) in ranges.enumerated() {
            points.append(NFTElement(key: bigEndian(range.low, width: width), verdict: range.element.verdict.map(verdict),
                                     timeoutMilliseconds: range.element.timeout.map { UInt64($0) * 1000 },
                                     userData: UserData.comment(range.element.comment)))
            guard range.high < top else { continue }
            if index + 1 < ranges.count, ranges[index + 1].low == range.high + 1 { continue }
            points.append(NFTElement(key: bigEndian(range.high + 1, width: width), flags: NFTConstants.elementIntervalEnd))
        }
        return points
    }

    /// NEWSETELEM messages, each kept under `elementBytesPerMessage`.
    public func addElements(_ elements: SetElements, to set: NamedSet, in table: Table) -> [EncodedMessage] {
        chunks(Self.kernelElements(elements, of: set), of: set, in: table, delete: false)
    }

    public func chunks(_ elements: [NFTElement], of set: NamedSet, in table: Table, delete: Bool) -> [EncodedMessage] {
        chunks(KernelElements(elements), of: set, in: table, delete: delete)
    }

    public func chunks(_ elements: KernelElements, of set: NamedSet, in table: Table, delete: Bool) -> [EncodedMessage] {
        elements.withEncodedSizes { size in
            var out: [EncodedMessage] = []
            var start = 0
            while start < elements.count {
                var bytes = 0, end = start
                while end < elements.count && (end == start || bytes < elementBytesPerMessage) {
                    bytes += size(end)
                    end += 1
                }
                let spec = NFTElementsSpec(family: table.family.number, table: table.name, set: set.name, setID: nil,
                                           elements: elements[start..<end])
                out.append(EncodedMessage(delete ? .deleteElements(spec) : .newElements(spec),
                                          origin: "set \(set.name) elements \(start + 1)-\(end) of \(elements.count)"))
                start = end
            }
            return out
        }
    }

    // MARK: Rules

    public func rules(of chain: Chain, in table: Table, ids: inout SetIDs) throws(EncodeError) -> [EncodedMessage] {
        var out: [EncodedMessage] = []
        for (index, rule) in chain.rules.enumerated() {
            var prelude: [EncodedMessage] = []
            let expressions = try encode(rule, in: table, ids: &ids, anonymousSets: &prelude)
            let origin = "rule \(index + 1) of chain \(chain.name): \(NFTText.text(rule))"
            out += prelude.map { EncodedMessage($0.message, origin: origin) }
            out.append(EncodedMessage(.newRule(NFTRuleSpec(family: table.family.number, table: table.name, chain: chain.name,
                                                           expressions: expressions, userData: UserData.comment(rule.comment))),
                                      origin: origin))
        }
        return out
    }

    private enum Dependency: Hashable { case nfproto(UInt8), l4proto(UInt8) }

    func encode(_ rule: Rule, in table: Table, ids: inout SetIDs, anonymousSets: inout [EncodedMessage]) throws(EncodeError) -> [NFTExpression] {
        var out: [NFTExpression] = []
        var satisfied: Set<Dependency> = []
        let r0 = NFTConstants.reg32(0)
        func require(_ fields: [Field]) {
            for field in fields {
                for dependency in Self.dependencies(of: field) where !satisfied.contains(dependency) {
                    satisfied.insert(dependency)
                    switch dependency {
                    case .nfproto(let family):
                        out += [.meta(key: NFTConstants.metaNFProto, destination: r0), .cmp(op: NFTConstants.cmpEq, source: r0, data: [family])]
                    case .l4proto(let proto):
                        out += [.meta(key: NFTConstants.metaL4Proto, destination: r0), .cmp(op: NFTConstants.cmpEq, source: r0, data: [proto])]
                    }
                }
            }
        }
        for expression in rule.expressions {
            switch expression {
            case let .compare(field, op, constant):
                require([field])
                out.append(Self.load(field, into: r0))
                out.append(.cmp(op: op == .equal ? NFTConstants.cmpEq : NFTConstants.cmpNeq, source: r0,
                                data: try Self.bytes(constant, for: field)))
                if op == .equal {
                    if field == .nfProtocol, case .number(let n) = constant { satisfied.insert(.nfproto(UInt8(truncatingIfNeeded: n))) }
                    if field == .l4Protocol, case .proto(let p) = constant { satisfied.insert(.l4proto(p.rawValue)) }
                }
            case let .maskedCompare(field, mask, op, value):
                require([field])
                let width = Self.width(field)
                out.append(Self.load(field, into: r0))
                out.append(.bitwise(source: r0, destination: r0, mask: Self.hostBytes(mask, width: width), xor: [UInt8](repeating: 0, count: width)))
                out.append(.cmp(op: op == .equal ? NFTConstants.cmpEq : NFTConstants.cmpNeq, source: r0, data: Self.hostBytes(value, width: width)))
            case let .anyOf(field, constants):
                require([field])
                let id = ids.next()
                let width = Self.width(field)
                let spec = NFTSetSpec(family: table.family.number, table: table.name, name: "__set%d", id: id,
                                      flags: NFTConstants.setAnonymous | NFTConstants.setConstant,
                                      keyType: Self.anonymousKeyType(field), keyLength: UInt32(width), concatLengths: [],
                                      dataType: nil, dataLength: nil, userData: [])
                anonymousSets.append(EncodedMessage(.newSet(spec), origin: ""))
                var elements: [NFTElement] = []
                for constant in constants { elements.append(NFTElement(key: try Self.bytes(constant, for: field))) }
                anonymousSets.append(EncodedMessage(.newElements(NFTElementsSpec(
                    family: table.family.number, table: table.name, set: "__set%d", setID: id, elements: KernelElements(elements)[...])), origin: ""))
                out.append(Self.load(field, into: r0))
                out.append(.lookup(source: r0, set: "__set%d", setID: id, destination: nil))
            case .conntrackState(let states):
                let bits = states.reduce(UInt32(0)) { $0 | $1.bit }
                out.append(.ct(key: NFTConstants.ctState, destination: r0, direction: nil))
                out.append(.bitwise(source: r0, destination: r0, mask: Self.hostBytes(bits, width: 4), xor: [0, 0, 0, 0]))
                out.append(.cmp(op: NFTConstants.cmpNeq, source: r0, data: [0, 0, 0, 0]))
            case let .tcpFlags(mask, equal):
                require([.tcpDestinationPort])
                out.append(.payload(base: NFTConstants.transportHeader, offset: 13, length: 1, destination: r0))
                out.append(.bitwise(source: r0, destination: r0, mask: [mask], xor: [0]))
                out.append(.cmp(op: NFTConstants.cmpEq, source: r0, data: [equal]))
            case let .lookup(fields, mask, set):
                require(fields)
                out += Self.loadConcatenation(fields)
                if let mask {
                    // The mask is for the last field (`ip saddr . ct mark & M`): its register.
                    let word = fields.dropLast().reduce(UInt32(0)) { $0 + UInt32((Self.width($1) + 3) / 4) }
                    let register = NFTConstants.reg32(word)
                    out.append(.bitwise(source: register, destination: register, mask: Self.hostBytes(mask, width: 4), xor: [0, 0, 0, 0]))
                }
                out.append(.lookup(source: r0, set: set, setID: nil, destination: nil))
            case let .verdictMap(fields, map):
                require(fields)
                out += Self.loadConcatenation(fields)
                out.append(.lookup(source: r0, set: map, setID: nil, destination: NFTConstants.regVerdict))
            case let .setConntrackMark(keep, value):
                out.append(.ct(key: NFTConstants.ctMark, destination: r0, direction: nil))
                out.append(.bitwise(source: r0, destination: r0, mask: Self.hostBytes(keep, width: 4), xor: Self.hostBytes(value, width: 4)))
                out.append(.ctSet(key: NFTConstants.ctMark, source: r0))
            case let .setPacketMark(keep, value):
                out.append(.meta(key: NFTConstants.metaMark, destination: r0))
                out.append(.bitwise(source: r0, destination: r0, mask: Self.hostBytes(keep, width: 4), xor: Self.hostBytes(value, width: 4)))
                out.append(.metaSet(key: NFTConstants.metaMark, source: r0))
            case .counter:
                out.append(.counter)
            case .namedCounter(let name):
                out.append(.counterReference(name: name))
            case .reject(let kind):
                switch kind {
                case .tcpReset: out.append(.reject(type: NFTConstants.rejectTCPReset, code: 0))
                case .icmpxPortUnreachable: out.append(.reject(type: NFTConstants.rejectICMPX, code: NFTConstants.icmpxPortUnreachable))
                case .icmpxAdminProhibited: out.append(.reject(type: NFTConstants.rejectICMPX, code: NFTConstants.icmpxAdminProhibited))
                }
            case let .rateOver(fields, set, perSecond, burst):
                require(fields)
                out += Self.loadConcatenation(fields)
                out.append(.dynsetLimit(key: r0, set: set, perSecond: UInt64(perSecond), burst: burst, over: true))
            case let .queue(number, bypass):
                out.append(Self.queueExpression(number: number, bypass: bypass, encoding: queue))
            case .verdict(let verdict):
                out.append(.immediate(Self.verdict(verdict)))
            }
        }
        return out
    }

    /// `queue num N [bypass]` as the native expression or as xt NFQUEUE revision 3
    /// (`struct xt_NFQ_info_v3 { u16 queuenum, queues_total, flags, ccpu }`, host order).
    public static func queueExpression(number: UInt16, bypass: Bool, encoding: QueueEncoding) -> NFTExpression {
        switch encoding {
        case .native:
            return .queue(number: number, total: 1, flags: bypass ? NFTConstants.queueBypass : 0)
        case .xtablesTarget:
            var info: [UInt8] = []
            for value in [number, 1, bypass ? NFTConstants.xtQueueBypass : 0, 0] as [UInt16] {
                info += hostBytes(value)
            }
            return .target(name: "NFQUEUE", revision: 3, info: info)
        }
    }

    // MARK: Fields

    private static func dependencies(of field: Field) -> [Dependency] {
        switch field {
        case .ipSource, .ipDestination: [.nfproto(2)]
        case .ip6Source, .ip6Destination, .ip6HopLimit: [.nfproto(10)]
        case .udpSourcePort, .udpDestinationPort: [.l4proto(17)]
        case .tcpDestinationPort: [.l4proto(6)]
        case .icmpType: [.nfproto(2), .l4proto(1)]
        case .icmpv6Type: [.nfproto(10), .l4proto(58)]
        case .inputInterface, .l4Protocol, .nfProtocol, .packetMark, .transportSourcePort, .transportDestinationPort,
             .conntrackMark, .conntrackDirection: []
        }
    }

    static func width(_ field: Field) -> Int {
        switch field {
        case .inputInterface, .packetMark, .ipSource, .ipDestination, .conntrackMark: 4
        case .ip6Source, .ip6Destination: 16
        case .l4Protocol, .nfProtocol, .ip6HopLimit, .icmpType, .icmpv6Type, .conntrackDirection: 1
        case .transportSourcePort, .transportDestinationPort, .udpSourcePort, .udpDestinationPort, .tcpDestinationPort: 2
        }
    }

    static func load(_ field: Field, into register: UInt32) -> NFTExpression {
        switch field {
        case .inputInterface: .meta(key: NFTConstants.metaIIF, destination: register)
        case .l4Protocol: .meta(key: NFTConstants.metaL4Proto, destination: register)
        case .nfProtocol: .meta(key: NFTConstants.metaNFProto, destination: register)
        case .packetMark: .meta(key: NFTConstants.metaMark, destination: register)
        case .conntrackMark: .ct(key: NFTConstants.ctMark, destination: register, direction: nil)
        case .conntrackDirection: .ct(key: NFTConstants.ctDirection, destination: register, direction: nil)
        case .ipSource: .payload(base: NFTConstants.networkHeader, offset: 12, length: 4, destination: register)
        case .ipDestination: .payload(base: NFTConstants.networkHeader, offset: 16, length: 4, destination: register)
        case .ip6Source: .payload(base: NFTConstants.networkHeader, offset: 8, length: 16, destination: register)
        case .ip6Destination: .payload(base: NFTConstants.networkHeader, offset: 24, length: 16, destination: register)
        case .ip6HopLimit: .payload(base: NFTConstants.networkHeader, offset: 7, length: 1, destination: register)
        case .transportSourcePort, .udpSourcePort: .payload(base: NFTConstants.transportHeader, offset: 0, length: 2, destination: register)
        case .transportDestinationPort, .udpDestinationPort, .tcpDestinationPort:
            .payload(base: NFTConstants.transportHeader, offset: 2, length: 2, destination: register)
        case .icmpType, .icmpv6Type: .payload(base: NFTConstants.transportHeader, offset: 0, length: 1, destination: register)
        }
    }

    /// Loads fields into consecutive 32-bit registers, each field padded to whole registers,
    /// the layout the kernel expects for a concatenated set key.
    static func loadConcatenation(_ fields: [Field]) -> [NFTExpression] {
        var word: UInt32 = 0
        var out: [NFTExpression] = []
        for field in fields {
            out.append(load(field, into: NFTConstants.reg32(word)))
            word += UInt32((width(field) + 3) / 4)
        }
        return out
    }

    static func bytes(_ constant: Constant, for field: Field) throws(EncodeError) -> [UInt8] {
        switch constant {
        case .number(let n): return hostBytes(n, width: width(field))
        case .interface(let name):
            guard let index = interfaceIndex(name) else { throw .unknownInterface(name) }
            return hostBytes(index, width: 4)
        case .proto(let proto): return [proto.rawValue]
        case .port(let port): return [UInt8(port >> 8), UInt8(port & 0xff)]
        case .direction(let direction): return [direction == .original ? 0 : 1]
        case .icmpType(let type): return [type.rawValue]
        case .icmpv6Type(let type): return [type.rawValue]
        }
    }

    /// A register value in host byte order (marks, ct state, interface index), cut to `width`.
    static func hostBytes(_ value: UInt32, width: Int) -> [UInt8] {
        if width == 1 { return [UInt8(truncatingIfNeeded: value)] }
        return Array(hostBytes(value).prefix(width))
    }

    /// The bytes of `value` as they lie in memory (host byte order).
    static func hostBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        // Whatever the host, its little-endian form read from the low byte up is its memory.
        let stored = value.littleEndian
        return (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: stored >> (8 * $0)) }
    }

    // MARK: Keys

    static func keyType(_ key: [KeyType]) -> UInt32 {
        key.reduce(UInt32(0)) { ($0 << 6) | $1.datatype }
    }

    static func keyLength(_ key: [KeyType]) -> Int {
        key.count == 1 ? key[0].width : key.reduce(0) { $0 + ($1.width + 3) / 4 * 4 }
    }

    static func anonymousKeyType(_ field: Field) -> UInt32 {
        switch field {
        case .icmpType: 14
        case .icmpv6Type: 29
        case .l4Protocol: 12
        case .ipSource, .ipDestination: 7
        case .ip6Source, .ip6Destination: 8
        case .transportSourcePort, .transportDestinationPort, .udpSourcePort, .udpDestinationPort, .tcpDestinationPort: 13
        case .packetMark, .conntrackMark: 19
        case .inputInterface: 20
        case .nfProtocol: 2
        case .conntrackDirection: 27
        case .ip6HopLimit: 4
        }
    }

    static func bounds(_ part: KeyPart, _ type: KeyType) -> ([UInt8], [UInt8]) {
        if case .mark(let mark) = part { return (hostBytes(mark, width: 4), hostBytes(mark, width: 4)) }
        let (low, high) = integerBounds(part)
        return (bigEndian(low, width: type.width), bigEndian(high, width: type.width))
    }

    static func integerBounds(_ part: KeyPart) -> (UInt128, UInt128) {
        switch part {
        case .addresses(let range): (range.first.value, range.last.value)
        case .proto(let proto): (UInt128(proto.rawValue), UInt128(proto.rawValue))
        case .ports(let ports): (UInt128(ports.first), UInt128(ports.last))
        case .mark(let mark): (UInt128(mark), UInt128(mark))
        }
    }

    /// Keys are big endian except marks, which the kernel compares in host order.
    static func bigEndian(_ value: UInt128, width: Int) -> [UInt8] {
        (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * (width - 1 - $0))) }
    }

    static func padded(_ bytes: [UInt8]) -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
    }

    static func verdict(_ verdict: Verdict) -> NFTVerdict {
        switch verdict {
        case .accept: NFTVerdict(code: NFTConstants.accept.signed, chain: nil)
        case .drop: NFTVerdict(code: NFTConstants.drop.signed, chain: nil)
        case .return: NFTVerdict(code: NFTConstants.verdictReturn, chain: nil)
        case .jump(let chain): NFTVerdict(code: NFTConstants.verdictJump, chain: chain)
        case .goto(let chain): NFTVerdict(code: NFTConstants.verdictGoto, chain: chain)
        }
    }
}

/// Transaction-local set ids (anonymous sets are found by id, not by name).
public struct SetIDs: Sendable {
    private var last: UInt32 = 0
    public init() {}
    /// Ids after `first - 1`, for sets added to a transaction beside a whole table's (whose
    /// ids start at 1).
    public init(startingAt first: UInt32) { last = first - 1 }
    public mutating func next() -> UInt32 {
        last += 1
        return last
    }
}
