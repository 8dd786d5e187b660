import Compiler

/// The nf_tables messages enforcer sends, as plain values, built from the ruleset model a
/// layer up; `LibNFTNL` turns each into netlink bytes with libnftnl. Keeping this layer as
/// data makes the encoding testable without a kernel.
public enum NFTMessage: Hashable, Sendable {
    case newTable(NFTTableSpec)
    case deleteTable(family: UInt8, name: String)
    case newChain(NFTChainSpec)
    case deleteChain(family: UInt8, table: String, name: String)
    /// Removes every rule of the chain (a DELRULE that names only the chain).
    case flushChain(family: UInt8, table: String, name: String)
    case newRule(NFTRuleSpec)
    case newSet(NFTSetSpec)
    case deleteSet(family: UInt8, table: String, name: String)
    case newElements(NFTElementsSpec)
    case deleteElements(NFTElementsSpec)
    /// A named counter object, starting from the given counts (carried over from the
    /// table it replaces, so a replacement does not reset what was counted).
    case newCounter(NFTCounterSpec)
    case deleteCounter(family: UInt8, table: String, name: String)

    /// What the message asks of the kernel, to name it when the kernel refuses it.
    public var operation: KernelOperation {
        switch self {
        case .newTable: .addTable
        case .deleteTable: .deleteTable
        case .newChain: .addChain
        case .deleteChain: .deleteChain
        case .flushChain: .flushChain
        case .newRule: .addRule
        case .newSet: .addSet
        case .deleteSet: .deleteSet
        case .newElements: .addElements
        case .deleteElements: .deleteElements
        case .newCounter: .addCounter
        case .deleteCounter: .deleteCounter
        }
    }
}

public struct NFTTableSpec: Hashable, Sendable {
    public var family: UInt8
    public var name: String
    public var userData: [UInt8]
}

public struct NFTCounterSpec: Hashable, Sendable {
    public var family: UInt8
    public var table: String
    public var name: String
    public var packets: UInt64
    public var bytes: UInt64
}

/// What a counter object has counted.
public struct CounterValue: Hashable, Sendable, Codable {
    public var packets: UInt64
    public var bytes: UInt64
    public init(packets: UInt64, bytes: UInt64) {
        self.packets = packets
        self.bytes = bytes
    }
    public static func + (a: CounterValue, b: CounterValue) -> CounterValue {
        CounterValue(packets: a.packets &+ b.packets, bytes: a.bytes &+ b.bytes)
    }
}

public struct NFTChainSpec: Hashable, Sendable {
    public struct Hook: Hashable, Sendable {
        public var number: UInt32
        public var priority: Int32
        /// NF_ACCEPT or NF_DROP.
        public var policy: UInt32
    }
    public var family: UInt8
    public var table: String
    public var name: String
    public var hook: Hook?
    public var userData: [UInt8]
}

public struct NFTRuleSpec: Hashable, Sendable {
    public var family: UInt8
    public var table: String
    public var chain: String
    public var expressions: [NFTExpression]
    public var userData: [UInt8]
}

public struct NFTSetSpec: Hashable, Sendable {
    public var family: UInt8
    public var table: String
    public var name: String
    /// Transaction-local id; lookups of anonymous sets refer to it.
    public var id: UInt32
    public var flags: UInt32
    public var keyType: UInt32
    public var keyLength: UInt32
    /// Field lengths of a concatenated key (NFTA_SET_DESC_CONCAT); empty otherwise.
    public var concatLengths: [UInt8]
    public var dataType: UInt32?
    public var dataLength: UInt32?
    public var userData: [UInt8]
    /// NFTA_SET_DESC_SIZE: the most elements the set holds; nil lets the kernel grow it.
    public var size: UInt32? = nil
    /// NFTA_SET_TIMEOUT: how long an element stays by default.
    public var timeoutMilliseconds: UInt64? = nil
}

public struct NFTElement: Hashable, Sendable {
    public var key: [UInt8]
    /// Upper bound of a concatenated-interval element (NFTA_SET_ELEM_KEY_END).
    public var keyEnd: [UInt8]?
    public var flags: UInt32
    public var verdict: NFTVerdict?
    public var timeoutMilliseconds: UInt64?
    public var userData: [UInt8]

    public init(key: [UInt8], keyEnd: [UInt8]? = nil, flags: UInt32 = 0, verdict: NFTVerdict? = nil,
                timeoutMilliseconds: UInt64? = nil, userData: [UInt8] = []) {
        self.key = key
        self.keyEnd = keyEnd
        self.flags = flags
        self.verdict = verdict
        self.timeoutMilliseconds = timeoutMilliseconds
        self.userData = userData
    }
}

public struct NFTElementsSpec: Hashable, Sendable {
    public var family: UInt8
    public var table: String
    public var set: String
    public var setID: UInt32?
    /// A slice of the set's elements: chunks of a large set share its storage.
    public var elements: Slice<KernelElements>

    public static func == (a: NFTElementsSpec, b: NFTElementsSpec) -> Bool {
        a.family == b.family && a.table == b.table && a.set == b.set && a.setID == b.setID && a.elements.elementsEqual(b.elements)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(table)
        hasher.combine(set)
        hasher.combine(elements.count)
    }
}

public struct NFTVerdict: Hashable, Sendable {
    /// NF_ACCEPT, NF_DROP, NFT_RETURN, NFT_JUMP, NFT_GOTO.
    public var code: Int32
    public var chain: String?
}

/// One nf_tables expression. Registers are the 32-bit register numbers (NFT_REG32_00 = 8)
/// or NFT_REG_VERDICT (0); data is in the byte order the kernel compares.
public enum NFTExpression: Hashable, Sendable {
    case meta(key: UInt32, destination: UInt32)
    case ct(key: UInt32, destination: UInt32, direction: UInt8?)
    case ctSet(key: UInt32, source: UInt32)
    case metaSet(key: UInt32, source: UInt32)
    case payload(base: UInt32, offset: UInt32, length: UInt32, destination: UInt32)
    case cmp(op: UInt32, source: UInt32, data: [UInt8])
    case range(op: UInt32, source: UInt32, from: [UInt8], to: [UInt8])
    case bitwise(source: UInt32, destination: UInt32, mask: [UInt8], xor: [UInt8])
    case lookup(source: UInt32, set: String, setID: UInt32?, destination: UInt32?)
    case immediate(NFTVerdict)
    case counter
    /// Counts into the table's counter object `name` (nft_objref, NFT_OBJECT_COUNTER).
    case counterReference(name: String)
    case reject(type: UInt32, code: UInt8)
    /// The native queue expression (nft_queue).
    case queue(number: UInt16, total: UInt16, flags: UInt16)
    /// An xtables target through nft_compat, e.g. NFQUEUE revision 3.
    case target(name: String, revision: UInt32, info: [UInt8])
    /// nft_dynset adding or refreshing the key in register `key` in `set`, with a limit
    /// (packets per second after `burst`; `over`: matches when the rate is exceeded).
    case dynsetLimit(key: UInt32, set: String, perSecond: UInt64, burst: UInt32, over: Bool)

    public var name: String {
        switch self {
        case .meta, .metaSet: "meta"
        case .ct, .ctSet: "ct"
        case .payload: "payload"
        case .cmp: "cmp"
        case .range: "range"
        case .bitwise: "bitwise"
        case .lookup: "lookup"
        case .immediate: "immediate"
        case .counter: "counter"
        case .counterReference: "objref"
        case .reject: "reject"
        case .queue: "queue"
        case .target: "target"
        case .dynsetLimit: "dynset"
        }
    }
}

/// A message with what it came from, so a kernel rejection can name the policy object.
public struct EncodedMessage: Hashable, Sendable {
    public var message: NFTMessage
    public var origin: String
    public init(_ message: NFTMessage, origin: String) {
        self.message = message
        self.origin = origin
    }

    /// About the bytes `message` takes in a batch, a little over rather than under.
    var estimatedBytes: Int {
        switch message {
        case .newElements(let spec), .deleteElements(let spec):
            128 + spec.elements.base.withEncodedSizes { size in spec.elements.indices.reduce(0) { $0 + size($1) } } * 51 / 50
        default: 2048
        }
    }
}
