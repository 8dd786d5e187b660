/// One TCP segment the worker writes itself: a reset for the server of a denied flow, or
/// the portal redirect for its client. IPv4 or IPv6 by the addresses' family.
public struct ForgedSegment: Sendable, Hashable {
    public var source: PacketAddress
    public var destination: PacketAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    public var payload: [UInt8]

    public init(source: PacketAddress, destination: PacketAddress, sourcePort: UInt16, destinationPort: UInt16,
                sequence: UInt32, acknowledgment: UInt32, flags: TCPFlags, payload: [UInt8] = []) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.payload = payload
    }

    /// The packet, IP header first, checksums filled in.
    public var bytes: [UInt8] {
        var tcp: [UInt8] = []
        tcp.reserveCapacity(20 + payload.count)
        tcp.appendBigEndian(sourcePort)
        tcp.appendBigEndian(destinationPort)
        tcp.appendBigEndian(sequence)
        tcp.appendBigEndian(acknowledgment)
        tcp.append(5 << 4)  // data offset: 20 bytes, no options
        tcp.append(flags.rawValue)
        tcp.appendBigEndian(UInt16(flags.contains(.rst) ? 0 : 65535))
        tcp.append(contentsOf: [0, 0, 0, 0])  // checksum, urgent pointer
        tcp.append(contentsOf: payload)

        // Pseudo-header (RFC 793 / RFC 8200 §8.1) for the TCP checksum.
        var pseudo = source.bytes + destination.bytes
        if source.isIPv4 {
            pseudo += [0, PacketView.ProtocolNumber.tcp]
            pseudo.appendBigEndian(UInt16(tcp.count))
        } else {
            pseudo.appendBigEndian(UInt32(tcp.count))
            pseudo += [0, 0, 0, PacketView.ProtocolNumber.tcp]
        }
        let checksum = Self.checksum(pseudo + tcp)
        tcp[16] = UInt8(checksum >> 8)
        tcp[17] = UInt8(checksum & 0xff)

        var ip: [UInt8] = []
        if source.isIPv4 {
            ip.append(0x45)
            ip.append(0)
            ip.appendBigEndian(UInt16(20 + tcp.count))
            ip.append(contentsOf: [0, 0, 0x40, 0])  // id 0, don't fragment
            ip.append(64)
            ip.append(PacketView.ProtocolNumber.tcp)
            ip.append(contentsOf: [0, 0])
            ip += source.bytes + destination.bytes
            let headerChecksum = Self.checksum(ip)
            ip[10] = UInt8(headerChecksum >> 8)
            ip[11] = UInt8(headerChecksum & 0xff)
        } else {
            ip.append(contentsOf: [0x60, 0, 0, 0])
            ip.appendBigEndian(UInt16(tcp.count))
            ip.append(PacketView.ProtocolNumber.tcp)
            ip.append(64)
            ip += source.bytes + destination.bytes
        }
        return ip + tcp
    }

    /// The Internet checksum (RFC 1071).
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        for shift in stride(from: T.bitWidth - 8, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: value >> shift)) }
    }
}
