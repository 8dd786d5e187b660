/// A TCP flow as its client sends it: the worker only sees the original direction.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var client: PacketAddress
    public var server: PacketAddress
    public var clientPort: UInt16
    public var serverPort: UInt16

    /// Whole words into the hasher rather than one call per field (every packet hashes its
    /// key): two for IPv4, five for IPv6. Each is the key itself, not a digest of it, so no
    /// two keys share their words and the hasher's seed keeps collisions unguessable.
    public func hash(into hasher: inout Hasher) {
        let ports = UInt64(clientPort) | UInt64(serverPort) << 16 | (client.isIPv4 ? 1 << 32 : 0) | (server.isIPv4 ? 1 << 33 : 0)
        if client.isIPv4 && server.isIPv4 {
            hasher.combine(UInt64(truncatingIfNeeded: client.value) << 32 | UInt64(truncatingIfNeeded: server.value))
            hasher.combine(ports)
            return
        }
        hasher.combine(UInt64(truncatingIfNeeded: client.value))
        hasher.combine(UInt64(truncatingIfNeeded: client.value >> 64))
        hasher.combine(UInt64(truncatingIfNeeded: server.value))
        hasher.combine(UInt64(truncatingIfNeeded: server.value >> 64))
        hasher.combine(ports)
    }

    public var description: String {
        var text: [UInt8] = []
        text.reserveCapacity(64)
        appendDescription(to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// `client:port → server:port` (IPv6 in brackets), appended to `text`.
    func appendDescription(to text: inout [UInt8]) {
        func endpoint(_ address: PacketAddress, _ port: UInt16) {
            if !address.isIPv4 { text.append(UInt8(ascii: "[")) }
            address.appendDescription(to: &text)
            if !address.isIPv4 { text.append(UInt8(ascii: "]")) }
            text.append(UInt8(ascii: ":"))
            text.appendDecimal(Int(port))
        }
        endpoint(client, clientPort)
        text.append(contentsOf: " → ".utf8)
        endpoint(server, serverPort)
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

    /// What a slot holds while its flow is taken out; allocates nothing.
    static var empty: Flow { Flow(base: 0, stream: StreamReassembly(limit: 0), started: 0, lastSeen: 0) }
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
    private var slotOf: [FlowKey: Int] = [:]
    private var keys: [FlowKey] = []
    private var slots: [Flow] = []

    public init(capacity: Int, timeout: Double) {
        self.capacity = capacity
        self.timeout = timeout
        // The arrays are dense, so room for many flows costs only address space; the index
        // grows with the flows instead, so that a few thousand of them hash into a table
        // that stays in cache rather than one spread over megabytes.
        let reserved = min(capacity, 1 << 16)
        slotOf.reserveCapacity(min(reserved, 1024))
        keys.reserveCapacity(reserved)
        slots.reserveCapacity(reserved)
    }

    public var count: Int { slots.count }
    public var isFull: Bool { slots.count >= capacity }

    public subscript(key: FlowKey) -> Flow? {
        slotOf[key].map { slots[$0] }
    }

    /// The slot `key`'s flow is in.
    public func slot(of key: FlowKey) -> Int? { slotOf[key] }

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
    /// table has room; nil when it has none. One hash either way, which is what a SYN needs.
    public mutating func claim(_ key: FlowKey) -> (slot: Int, isNew: Bool)? {
        // Through the dictionary's in-place accessor: found or inserted in one lookup.
        guard let claimed = Self.claim(&slotOf[key], next: slots.count, full: isFull) else { return nil }
        if claimed.isNew {
            keys.append(key)
            slots.append(.empty)
        }
        return claimed
    }

    private static func claim(_ entry: inout Int?, next: Int, full: Bool) -> (slot: Int, isNew: Bool)? {
        if let existing = entry { return (existing, false) }
        guard !full else { return nil }
        entry = next
        return (next, true)
    }

    /// Adds a flow for a key the table does not hold; returns its slot.
    @discardableResult
    public mutating func insert(_ flow: consuming Flow, for key: FlowKey) -> Int {
        precondition(slotOf[key] == nil, "flow inserted twice")
        let slot = slots.count
        slotOf[key] = slot
        keys.append(key)
        slots.append(flow)
        return slot
    }

    /// Forgets the flow in `slot`; the last flow moves into it.
    public mutating func remove(at slot: Int) {
        let last = slots.count - 1
        if slot != last {
            slots.swapAt(slot, last)
            keys.swapAt(slot, last)
            slotOf[keys[slot]] = slot
        }
        slotOf[keys[last]] = nil
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

extension [UInt8] {
    /// The decimal digits of a non-negative number.
    mutating func appendDecimal(_ number: Int) {
        guard number > 0 else { append(UInt8(ascii: "0")); return }
        var divisor = 1
        while divisor <= number / 10 { divisor *= 10 }
        while divisor > 0 {
            append(UInt8(48 + number / divisor % 10))
            divisor /= 10
        }
    }
}
