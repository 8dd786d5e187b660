/// A TCP flow as its client sends it: the worker only sees the original direction.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var client: PacketAddress
    public var server: PacketAddress
    public var clientPort: UInt16
    public var serverPort: UInt16

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
}

/// Flows being judged, bounded in number, each for a bounded time.
public struct FlowTable: Sendable {
    public let capacity: Int
    /// Seconds a flow may take to send its first request or ClientHello.
    public let timeout: Double
    private var flows: [FlowKey: Flow] = [:]

    public init(capacity: Int, timeout: Double) {
        self.capacity = capacity
        self.timeout = timeout
        flows.reserveCapacity(min(capacity, 1 << 16))
    }

    public var count: Int { flows.count }
    public var isFull: Bool { flows.count >= capacity }

    public subscript(key: FlowKey) -> Flow? {
        get { flows[key] }
        set { flows[key] = newValue }
    }

    /// Removes and returns the flow, so the caller holds its only copy: mutating its buffer
    /// then costs no copy-on-write. The caller puts it back (or not) when done.
    public mutating func take(_ key: FlowKey) -> Flow? { flows.removeValue(forKey: key) }

    /// Forgets flows idle past the timeout (decided ones included: their marks carry them).
    public mutating func expire(now: Double) -> Int {
        let before = flows.count
        flows = flows.filter { now - $0.value.lastSeen < timeout }
        return before - flows.count
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
