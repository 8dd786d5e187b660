import Compiler

/// An IP address exactly as it appears in a packet header.
public struct PacketAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address as a number (its bytes in network order); inline, so a flow key costs
    /// no allocation to build or hash.
    public let value: UInt128
    public let isIPv4: Bool

    /// nil unless `bytes` holds exactly 4 or 16 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        var number: UInt128 = 0
        for byte in bytes { number = number << 8 | UInt128(byte) }
        value = number
        isIPv4 = bytes.count == 4
    }

    /// 4 bytes for IPv4, 16 for IPv6, network order.
    public var bytes: [UInt8] {
        let count = isIPv4 ? 4 : 16
        return (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - $0))) }
    }

    /// The description's bytes (IPv6 goes through `description`): on the log path of
    /// every judged flow. At most `maxDescriptionLength` bytes.
    func write(to out: inout OutputSpan<UInt8>) {
        if isIPv4 { out.writeIPv4(UInt32(truncatingIfNeeded: value)) } else { out.write(description) }
    }

    /// "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" is the longest text `description` makes.
    static let maxDescriptionLength = 39

    /// The same address as the policy side spells it.
    public var ipAddress: IPAddress { isIPv4 ? IPAddress(v4: UInt32(truncatingIfNeeded: value)) : IPAddress(v6: value) }

    /// Dotted quad for IPv4; RFC 5952 text for IPv6 (lowercase, longest zero run
    /// shortened to "::", IPv4-mapped addresses with a dotted tail).
    public var description: String {
        if isIPv4 {
            var text: [UInt8] = []
            text.append(addingCapacity: 15) { $0.writeIPv4(UInt32(truncatingIfNeeded: value)) }
            return String(decoding: text, as: UTF8.self)
        }
        let bytes = self.bytes
        if bytes.prefix(10).allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return "::ffff:" + bytes.suffix(4).map(String.init).joined(separator: ".")
        }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        // Longest run of two or more zero groups; the first one wins a tie.
        var best: Range<Int>?
        var index = 0
        while index < groups.count {
            guard groups[index] == 0 else { index += 1; continue }
            let start = index
            while index < groups.count, groups[index] == 0 { index += 1 }
            if index - start >= 2, index - start > (best?.count ?? 0) { best = start..<index }
        }
        let text = { (range: Range<Int>) in groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard let best else { return text(0..<8) }
        return text(0..<best.lowerBound) + "::" + text(best.upperBound..<8)
    }
}

/// TCP header flag bits (RFC 9293 §3.1; ECE/CWR from RFC 3168).
public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

public struct TCPSegmentHeader: Sendable, Hashable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    /// The data offset field in bytes (4 × the 4-bit value), as sent; only 20...60 and
    /// within the packet gives a payload.
    public var headerLength: Int
    public var flags: TCPFlags
    public var window: UInt16
}

public struct UDPDatagramHeader: Sendable, Hashable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// The length field as sent (header included).
    public var length: UInt16
}

/// A read-only decoding of an IP packet as NFQUEUE delivers it (starting at the IP
/// header).
///
/// Decoding never fails: whatever cannot be read consistently — a truncated header,
/// a length that points past the packet, an IPv6 header chain that does not add up —
/// is left nil, and an unrecognised version is `.unknown`. The verdict logic decides
/// what a packet it cannot see into deserves.
public struct PacketView: Sendable {
    public enum IPVersion: Sendable, Hashable {
        case v4, v6, unknown
    }

    /// IANA protocol numbers used here.
    public enum ProtocolNumber {
        public static let hopByHop: UInt8 = 0
        public static let icmp: UInt8 = 1
        public static let tcp: UInt8 = 6
        public static let udp: UInt8 = 17
        public static let routing: UInt8 = 43
        public static let fragment: UInt8 = 44
        public static let esp: UInt8 = 50
        public static let authentication: UInt8 = 51
        public static let icmpv6: UInt8 = 58
        public static let noNextHeader: UInt8 = 59
        public static let destinationOptions: UInt8 = 60
    }

    /// The packet as given.
    public let bytes: [UInt8]
    public private(set) var version: IPVersion = .unknown
    public private(set) var source: PacketAddress?
    public private(set) var destination: PacketAddress?
    /// The upper-layer protocol: IPv4's protocol field, or for IPv6 the next header
    /// after the hop-by-hop, routing, destination-options, fragment and AH headers.
    /// nil when the IPv6 header chain cannot be walked.
    public private(set) var transportProtocol: UInt8?
    /// Whether this is a piece of a fragmented datagram (IPv4 MF/offset, or an IPv6
    /// fragment header).
    public private(set) var isFragment = false
    /// Byte offset of this fragment's data in the original datagram, for fragments.
    /// When it is above zero there is no transport header in this packet.
    public private(set) var fragmentOffset: Int?
    /// The IP header claims more bytes than were delivered (e.g. a short copy range);
    /// ranges below then stop at the end of what was delivered.
    public private(set) var isTruncated = false
    public private(set) var tcp: TCPSegmentHeader?
    public private(set) var udp: UDPDatagramHeader?
    /// Where the TCP or UDP payload lies in `bytes`.
    public private(set) var payloadRange: Range<Int>?

    public var payload: ArraySlice<UInt8>? { payloadRange.map { bytes[$0] } }
    public var isNonInitialFragment: Bool { (fragmentOffset ?? 0) > 0 }

    public init(_ packet: some Collection<UInt8>) {
        bytes = packet as? [UInt8] ?? Array(packet)
        switch bytes.first.map({ $0 >> 4 }) {
        case 4: decodeIPv4()
        case 6: decodeIPv6()
        default: break
        }
    }

    private mutating func decodeIPv4() {
        version = .v4
        // Cursors hold positions, not the bytes: nothing is retained per read.
        let bytes = self.bytes[...]
        var header = ByteCursor(bytes.indices)
        guard let versionAndLength = header.readUInt8(bytes), header.skip(1),
              let totalLength = header.readUInt16(bytes).map(Int.init), header.skip(2),
              let fragmentField = header.readUInt16(bytes), header.skip(1),
              let protocolNumber = header.readUInt8(bytes), header.skip(2),
              let sourceBytes = header.readCursor(count: 4), let destinationBytes = header.readCursor(count: 4) else { return }
        source = PacketAddress(bytes: bytes[sourceBytes.range])
        destination = PacketAddress(bytes: bytes[destinationBytes.range])
        transportProtocol = protocolNumber

        let offset = Int(fragmentField & 0x1fff) * 8
        let moreFragments = fragmentField & 0x2000 != 0
        if moreFragments || offset > 0 {
            isFragment = true
            fragmentOffset = offset
        }

        let headerLength = Int(versionAndLength & 0x0f) * 4
        guard headerLength >= 20, headerLength <= totalLength, headerLength <= bytes.count else { return }
        isTruncated = totalLength > bytes.count
        guard offset == 0 else { return }
        decodeTransport(protocolNumber, start: headerLength, declaredEnd: totalLength)
    }

    private mutating func decodeIPv6() {
        version = .v6
        let bytes = self.bytes[...]
        var header = ByteCursor(bytes.indices)
        guard header.skip(4), let payloadLength = header.readUInt16(bytes).map(Int.init),
              let firstNextHeader = header.readUInt8(bytes), header.skip(1) else { return }
        if let sourceBytes = header.readCursor(count: 16) { source = PacketAddress(bytes: bytes[sourceBytes.range]) }
        guard let destinationBytes = header.readCursor(count: 16) else { return }
        destination = PacketAddress(bytes: bytes[destinationBytes.range])

        // A zero payload length after a hop-by-hop header is a jumbogram (RFC 2675):
        // the real length is in an option, so take what was delivered.
        let declaredEnd = payloadLength == 0 && firstNextHeader == ProtocolNumber.hopByHop
            ? bytes.count : 40 + payloadLength
        isTruncated = declaredEnd > bytes.count
        let end = min(declaredEnd, bytes.count)

        var nextHeader = firstNextHeader
        var offset = 40
        // Every extension header is at least 8 bytes, so the walk ends by itself; the
        // cap only keeps a pathological chain from costing much.
        for _ in 0..<32 {
            guard offset <= end else { return }
            var chain = ByteCursor(offset..<end)
            let headerLength: Int
            switch nextHeader {
            case ProtocolNumber.hopByHop where offset == 40,
                 ProtocolNumber.routing, ProtocolNumber.destinationOptions:
                guard let following = chain.readUInt8(bytes), let units = chain.readUInt8(bytes) else { return }
                nextHeader = following
                headerLength = (Int(units) + 1) * 8
            case ProtocolNumber.authentication:
                guard let following = chain.readUInt8(bytes), let units = chain.readUInt8(bytes) else { return }
                nextHeader = following
                headerLength = (Int(units) + 2) * 4
            case ProtocolNumber.fragment:
                guard let following = chain.readUInt8(bytes), chain.skip(1),
                      let fragmentField = chain.readUInt16(bytes), chain.skip(4) else { return }
                nextHeader = following
                headerLength = 8
                isFragment = true
                fragmentOffset = Int(fragmentField >> 3) * 8
            case ProtocolNumber.hopByHop:
                // Hop-by-hop is only valid right after the fixed header (RFC 8200 §4.1).
                return
            default:
                transportProtocol = nextHeader
                decodeTransport(nextHeader, start: offset, declaredEnd: declaredEnd)
                return
            }
            guard offset + headerLength <= end else { return }
            offset += headerLength
            if isNonInitialFragment {
                // Later fragments carry no transport header, but the protocol is known.
                transportProtocol = nextHeader
                return
            }
        }
    }

    /// Reads a TCP or UDP header at `start`; `declaredEnd` is where the IP header says
    /// the packet ends, which may lie past the bytes delivered.
    private mutating func decodeTransport(_ protocolNumber: UInt8, start: Int, declaredEnd: Int) {
        let bytes = self.bytes[...]
        let end = min(declaredEnd, bytes.count)
        guard start <= end else { return }
        var header = ByteCursor(start..<end)
        switch protocolNumber {
        case ProtocolNumber.tcp:
            guard let sourcePort = header.readUInt16(bytes), let destinationPort = header.readUInt16(bytes),
                  let sequence = header.readUInt32(bytes), let acknowledgment = header.readUInt32(bytes),
                  let offsetByte = header.readUInt8(bytes), let flagByte = header.readUInt8(bytes),
                  let window = header.readUInt16(bytes) else { return }
            let headerLength = Int(offsetByte >> 4) * 4
            tcp = TCPSegmentHeader(sourcePort: sourcePort, destinationPort: destinationPort,
                                   sequenceNumber: sequence, acknowledgmentNumber: acknowledgment,
                                   headerLength: headerLength, flags: TCPFlags(rawValue: flagByte),
                                   window: window)
            if headerLength >= 20, start + headerLength <= end {
                payloadRange = (start + headerLength)..<end
            }
        case ProtocolNumber.udp:
            // All 8 header bytes (checksum included) must be there before a payload can start.
            guard let sourcePort = header.readUInt16(bytes), let destinationPort = header.readUInt16(bytes),
                  let length = header.readUInt16(bytes), header.skip(2) else { return }
            udp = UDPDatagramHeader(sourcePort: sourcePort, destinationPort: destinationPort, length: length)
            let datagramEnd = start + Int(length)
            if length >= 8, datagramEnd <= declaredEnd {
                payloadRange = (start + 8)..<min(datagramEnd, end)
            }
        default:
            break
        }
    }
}
