/// A TCP flow as its client sends it: the worker only sees the original direction.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var client: PacketAddress
    public var server: PacketAddress
    public var clientPort: UInt16
    public var serverPort: UInt16

    public var description: String {
        var text: [UInt8] = []
        text.append(addingCapacity: Self.maxDescriptionLength) { write(to: &$0) }
        return String(decoding: text, as: UTF8.self)
    }

    private static let arrow = Array(" → ".utf8)

    /// Room for `[client]:port → [server]:port`.
    static let maxDescriptionLength = 2 * (PacketAddress.maxDescriptionLength + 8) + arrow.count

    /// ` client=client:port server=server:port` (IPv6 in brackets), for the log's logfmt line.
    func writeEndpoints(to out: inout OutputSpan<UInt8>) {
        out.write(Self.clientLabel)
        Self.writeEndpoint(client, clientPort, to: &out)
        out.write(Self.serverLabel)
        Self.writeEndpoint(server, serverPort, to: &out)
    }

    /// `address:port`, an IPv6 address in brackets.
    private static func writeEndpoint(_ address: PacketAddress, _ port: UInt16, to out: inout OutputSpan<UInt8>) {
        if !address.isIPv4 { out.append(UInt8(ascii: "[")) }
        address.write(to: &out)
        if !address.isIPv4 { out.append(UInt8(ascii: "]")) }
        out.append(UInt8(ascii: ":"))
        out.writeDecimal(Int(port))
    }

    private static let clientLabel = Array(" client=".utf8)
    private static let serverLabel = Array(" server=".utf8)

    /// `client:port → server:port` (IPv6 in brackets).
    func write(to out: inout OutputSpan<UInt8>) {
        Self.writeEndpoint(client, clientPort, to: &out)
        out.write(Self.arrow)
        Self.writeEndpoint(server, serverPort, to: &out)
    }
}

/// The first bytes of a client's stream, put back in order from segments that may arrive
/// split, duplicated or out of order. Holds at most `limit` bytes.
public struct StreamReassembly: Sendable {
    public let limit: Int
    /// The in-order bytes from the start of the stream.
    public private(set) var bytes: [UInt8] = []
    /// Segments that start past `bytes`, waiting for the gap before them to fill.
    private var pending: [(offset: Int, data: [UInt8])] = []
    /// Set once a segment reached past `limit`: the stream can never be read whole.
    public private(set) var overflowed = false
    /// Set once a segment disagreed with bytes already in place. A receiver may keep either
    /// copy (Linux keeps the newer one), so the worker would judge bytes the server never
    /// reads: an evasion, not a network accident.
    public private(set) var conflicted = false
    static let maxPendingSegments = 32

    /// Nothing received yet: no bytes in order, none waiting, no limit hit.
    public var isEmpty: Bool { bytes.isEmpty && pending.isEmpty && !overflowed && !conflicted }

    public init(limit: Int) { self.limit = limit }

    /// Adds the segment that starts `offset` bytes into the stream.
    public mutating func insert(offset: Int, _ data: ArraySlice<UInt8>) {
        var offset = offset
        var data = data
        if offset < 0 {
            // Starts before the stream (data on a SYN, or a sequence jump back): keep the rest.
            data = data.dropFirst(-offset)
            offset = 0
        }
        guard !data.isEmpty else { return }
        if offset + data.count > limit {
            overflowed = true
            data = data.prefix(max(0, limit - offset))
            guard !data.isEmpty else { return }
        }
        if offset <= bytes.count {
            append(offset: offset, data)
            drainPending()
        } else if pending.count < Self.maxPendingSegments {
            for other in pending where other.offset < offset + data.count && offset < other.offset + other.data.count {
                let from = max(offset, other.offset), to = min(offset + data.count, other.offset + other.data.count)
                if !data[(data.startIndex + from - offset)..<(data.startIndex + to - offset)].elementsEqual(other.data[(from - other.offset)..<(to - other.offset)]) {
                    conflicted = true
                }
            }
            pending.append((offset, Array(data)))
        } else {
            overflowed = true
        }
    }

    private mutating func append(offset: Int, _ data: some Collection<UInt8>) {
        let overlap = bytes.count - offset
        let overlapEnd = min(bytes.count, offset + data.count)
        if !bytes[offset..<overlapEnd].elementsEqual(data.prefix(overlapEnd - offset)) { conflicted = true }
        guard overlap < data.count else { return }
        bytes.append(contentsOf: data.dropFirst(overlap))
    }

    private mutating func drainPending() {
        while let index = pending.firstIndex(where: { $0.offset <= bytes.count }) {
            let segment = pending.remove(at: index)
            append(offset: segment.offset, segment.data)
        }
    }
}

/// What the worker remembers of a flow until its first bytes are judged, and briefly
/// after, so that retransmissions and packets queued before the mark took effect get the
/// same answer.
public struct Flow: Sendable {
    /// Sequence number of the stream's first byte (the SYN's plus one).
    public var base: UInt32
    public var stream: StreamReassembly
    public var started: Double
    public var lastSeen: Double
    public var dataPackets = 0
    public var outcome: FlowOutcome?
    /// The sequence number of the SYN that started the flow; nil for a flow first seen in
    /// the middle (begun before the worker ran).
    public var synSequence: UInt32?

    /// What a slot holds while its flow is taken out; allocates nothing.
    static var empty: Flow { Flow(base: 0, stream: StreamReassembly(limit: 0), started: 0, lastSeen: 0) }
}

/// What a SYN means for the flow its 5-tuple names.
enum SYNRole: Equatable {
    /// A new flow: none tracked, or a judged one whose 5-tuple a new connection reuses.
    case starts
    /// The tracked flow's own SYN sent again.
    case retransmits
    /// Another sequence number on a flow still being judged (or one first seen mid-stream).
    case conflicts

    init(of sequence: UInt32, tracked: Flow?) {
        guard let tracked else { self = .starts; return }
        if tracked.synSequence == sequence { self = .retransmits }
        else if tracked.outcome != nil { self = .starts }
        else { self = .conflicts }
    }
}

/// Flows being judged, bounded in number, each for a bounded time.
///
/// Flows live in a dense array of slots with a key → slot index beside it, so the worker
/// hashes a packet's key once, then works on the flow in its slot: `take(at:)` moves it
/// out (its buffers keep a single owner, so appending to them copies nothing) and
/// `put(_:at:)` moves it back without hashing again.
public struct FlowTable: Sendable {
    public let capacity: Int
    /// Seconds a flow may take to send its first request or ClientHello.
    public let timeout: Double
    private var index: FlowIndex
    private var keys: [FlowKey] = []
    private var slots: [Flow] = []

    public init(capacity: Int, timeout: Double) {
        self.capacity = capacity
        self.timeout = timeout
        // The arrays are dense, so room for many flows costs only address space; the index
        // grows with the flows instead, so that a few thousand of them hash into a table
        // that stays in cache rather than one spread over megabytes.
        let reserved = min(capacity, 1 << 16)
        index = FlowIndex(minimumCount: min(reserved, 1024))
        keys.reserveCapacity(reserved)
        slots.reserveCapacity(reserved)
    }

    public var count: Int { slots.count }
    public var isFull: Bool { slots.count >= capacity }

    public subscript(key: FlowKey) -> Flow? {
        slot(of: key).map { slots[$0] }
    }

    /// The slot `key`'s flow is in.
    public func slot(of key: FlowKey) -> Int? {
        if case .found(let slot) = index.find(key, keys: keys) { return slot }
        return nil
    }

    /// Moves the flow out of `slot`, leaving an empty flow there until `put(_:at:)` or
    /// `remove(at:)`.
    public mutating func take(at slot: Int) -> Flow {
        var flow = Flow.empty
        swap(&flow, &slots[slot])
        return flow
    }

    public mutating func put(_ flow: consuming Flow, at slot: Int) {
        slots[slot] = flow
    }

    /// The slot for `key`: its flow's, or a new one holding an empty flow (`isNew`) when the
    /// table has room; nil when it has none. One probe either way, which is what a SYN needs.
    public mutating func claim(_ key: FlowKey) -> (slot: Int, isNew: Bool)? {
        switch index.find(key, keys: keys) {
        case .found(let slot):
            return (slot, false)
        case .absent(let bucket):
            guard !isFull else { return nil }
            let slot = slots.count
            keys.append(key)
            slots.append(.empty)
            index.insert(slot: slot, into: bucket, keys: keys)
            return (slot, true)
        }
    }

    /// Adds a flow for a key the table does not hold; returns its slot.
    @discardableResult
    public mutating func insert(_ flow: consuming Flow, for key: FlowKey) -> Int {
        guard case .absent(let bucket) = index.find(key, keys: keys) else { preconditionFailure("flow inserted twice") }
        let slot = slots.count
        keys.append(key)
        slots.append(flow)
        index.insert(slot: slot, into: bucket, keys: keys)
        return slot
    }

    /// Forgets the flow in `slot`; the last flow moves into it.
    public mutating func remove(at slot: Int) {
        let last = slots.count - 1
        index.remove(slot: slot, keys: keys)
        if slot != last {
            slots.swapAt(slot, last)
            keys.swapAt(slot, last)
            index.move(from: last, to: slot, keys: keys)
        }
        keys.removeLast()
        slots.removeLast()
    }

    /// Forgets flows idle past the timeout (decided ones included: their marks carry them).
    public mutating func expire(now: Double) -> Int {
        let before = slots.count
        // From the end, so the flow `remove` moves into a slot has been looked at already.
        var slot = slots.count - 1
        while slot >= 0 {
            if now - slots[slot].lastSeen >= timeout { remove(at: slot) }
            slot -= 1
        }
        return before - slots.count
    }
}

/// The key → slot index of a `FlowTable`: open addressing with linear probing over a
/// power-of-two array of slot numbers (0 for an empty bucket, else slot + 1), at most half
/// full, and backward-shift deletion, so no tombstones pile up as flows come and go.
///
/// Every packet the worker reads looks its flow up here, so the hash is two multiplies
/// rather than a general-purpose hasher; it is keyed by a random seed drawn per table, so
/// senders cannot choose addresses and ports that pile into one run of buckets.
struct FlowIndex: Sendable {
    private var buckets: [Int32]
    private var mask: Int
    private let seed: (UInt64, UInt64, UInt64)

    enum Probe: Equatable {
        case found(Int)
        /// The empty bucket where the key would go.
        case absent(bucket: Int)
    }

    init(minimumCount: Int) {
        var size = 16
        while size < 2 * minimumCount { size *= 2 }
        buckets = [Int32](repeating: 0, count: size)
        mask = size - 1
        var generator = SystemRandomNumberGenerator()
        seed = (generator.next(), generator.next(), generator.next())
    }

    /// Folded 64×64→128-bit products of the key's words with the seed: every input bit
    /// reaches every output bit, and without the seed the result cannot be predicted.
    func bucket(of key: FlowKey) -> Int {
        let ports = UInt64(key.clientPort) | UInt64(key.serverPort) << 16 | (key.client.isIPv4 ? 1 << 32 : 0) | (key.server.isIPv4 ? 1 << 33 : 0)
        var words: (UInt64, UInt64)
        if key.client.isIPv4 && key.server.isIPv4 {
            words = (UInt64(truncatingIfNeeded: key.client.value) << 32 | UInt64(truncatingIfNeeded: key.server.value), ports)
        } else {
            let first = Self.mix(UInt64(truncatingIfNeeded: key.client.value) ^ seed.2, UInt64(truncatingIfNeeded: key.client.value >> 64) ^ seed.0)
            let second = Self.mix(UInt64(truncatingIfNeeded: key.server.value) ^ seed.2, UInt64(truncatingIfNeeded: key.server.value >> 64) ^ seed.1)
            words = (first ^ ports, second)
        }
        let hash = Self.mix(words.0 ^ seed.0, words.1 ^ seed.1)
        return Int(truncatingIfNeeded: hash ^ hash >> 29) & mask
    }

    private static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b ^ 0x9E37_79B9_7F4A_7C15)
        return product.high ^ product.low
    }

    func find(_ key: FlowKey, keys: [FlowKey]) -> Probe {
        var bucket = bucket(of: key)
        while true {
            let entry = Int(buckets[bucket])
            if entry == 0 { return .absent(bucket: bucket) }
            if keys[entry - 1] == key { return .found(entry - 1) }
            bucket = (bucket + 1) & mask
        }
    }

    /// Records `slot` (its key is `keys[slot]`) in the empty bucket `bucket` that `find`
    /// named; rebuilds a twice larger array instead when the entry would make it more
    /// than half full.
    mutating func insert(slot: Int, into bucket: Int, keys: [FlowKey]) {
        guard 2 * keys.count <= buckets.count else {
            rebuild(size: buckets.count * 2, keys: keys)
            return
        }
        buckets[bucket] = Int32(slot + 1)
    }

    private mutating func rebuild(size: Int, keys: [FlowKey]) {
        buckets = [Int32](repeating: 0, count: size)
        mask = size - 1
        for (slot, key) in keys.enumerated() {
            var bucket = bucket(of: key)
            while buckets[bucket] != 0 { bucket = (bucket + 1) & mask }
            buckets[bucket] = Int32(slot + 1)
        }
    }

    /// The bucket holding `slot`, found by probing from the home bucket of `key`.
    private func bucket(holding slot: Int, key: FlowKey) -> Int {
        var bucket = bucket(of: key)
        while Int(buckets[bucket]) != slot + 1 {
            precondition(buckets[bucket] != 0, "flow index lost a slot")
            bucket = (bucket + 1) & mask
        }
        return bucket
    }

    /// Empties the bucket of `slot` (its key is `keys[slot]`) and shifts back each entry
    /// after it whose probe from its home bucket passed the hole, so that every key stays
    /// reachable without a gap and no deleted markers are needed.
    mutating func remove(slot: Int, keys: [FlowKey]) {
        var hole = bucket(holding: slot, key: keys[slot])
        buckets[hole] = 0
        var bucket = (hole + 1) & mask
        while buckets[bucket] != 0 {
            let home = self.bucket(of: keys[Int(buckets[bucket]) - 1])
            if (bucket - home) & mask >= (bucket - hole) & mask {
                buckets[hole] = buckets[bucket]
                buckets[bucket] = 0
                hole = bucket
            }
            bucket = (bucket + 1) & mask
        }
    }

    /// The flow of slot `from` now lives in slot `to` (its key is `keys[to]`).
    mutating func move(from: Int, to: Int, keys: [FlowKey]) {
        buckets[bucket(holding: from, key: keys[to])] = Int32(to + 1)
    }
}
