import Testing
@testable import NFQueue

private let client4 = PacketAddress(bytes: [192, 0, 2, 10])!
private let server4 = PacketAddress(bytes: [198, 51, 100, 20])!
private let client6 = PacketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [0x0a])!
private let server6 = PacketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1] + Array(repeating: 0, count: 7) + [0x14])!

private func segment(_ source: PacketAddress, _ destination: PacketAddress, sequence: UInt32 = 0x0102_0304,
                     acknowledgment: UInt32 = 0xa0b0_c0d0, _ flags: TCPFlags, _ payload: String = "") -> ForgedSegment {
    ForgedSegment(source: source, destination: destination, sourcePort: 50_000, destinationPort: 443,
                  sequence: sequence, acknowledgment: acknowledgment, flags: flags, payload: Array(payload.utf8))
}

/// The one's-complement sum of 16-bit big-endian words, odd byte padded with zero, carries
/// folded: 0xffff over a header (or pseudo-header and segment) whose checksum is right.
/// Written apart from `ForgedSegment.checksum`, so the two cannot share a mistake.
private func onesComplementSum(_ bytes: [UInt8]) -> UInt16 {
    let padded = bytes.count % 2 == 0 ? bytes : bytes + [0]
    var sum = 0
    for word in stride(from: 0, to: padded.count, by: 2) {
        sum += Int(padded[word]) * 256 + Int(padded[word + 1])
        sum = sum % 0x10000 + sum / 0x10000
    }
    return UInt16(sum)
}

private func bigEndian(_ value: Int, bytes count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - $0))) }
}

struct SegmentCase: Sendable, CustomTestStringConvertible {
    let name: String
    let segment: ForgedSegment
    var testDescription: String { name }
}

@Suite("Forged TCP segments")
struct ForgedSegmentTests {
    static let cases: [SegmentCase] = [
        SegmentCase(name: "IPv4 reset", segment: segment(client4, server4, [.rst, .ack])),
        SegmentCase(name: "IPv4 redirect with even payload", segment: segment(server4, client4, [.psh, .ack, .fin], "HTTP/1.1 302 Found\r\n\r\n")),
        SegmentCase(name: "IPv4 odd-length payload", segment: segment(server4, client4, [.psh, .ack], "odd")),
        SegmentCase(name: "IPv4 sequence numbers at the top", segment: segment(client4, server4, sequence: 0xffff_ffff, acknowledgment: 0xffff_fffe, [.rst, .ack])),
        SegmentCase(name: "IPv4 all-zero fields", segment: segment(client4, server4, sequence: 0, acknowledgment: 0, [])),
        SegmentCase(name: "IPv6 reset", segment: segment(client6, server6, [.rst, .ack])),
        SegmentCase(name: "IPv6 redirect", segment: segment(server6, client6, [.psh, .ack, .fin], "HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n")),
        SegmentCase(name: "IPv6 odd-length payload", segment: segment(server6, client6, [.psh, .ack], "x")),
        SegmentCase(name: "IPv6 1400-byte payload", segment: segment(server6, client6, [.psh, .ack], String(repeating: "0123456789", count: 140))),
    ]

    @Test("parses back to the same fields and payload", arguments: cases)
    func parsesBack(_ c: SegmentCase) throws {
        let s = c.segment
        let view = PacketView(s.bytes)
        let tcp = try #require(view.tcp)
        #expect(view.version == (s.source.isIPv4 ? .v4 : .v6))
        #expect(view.source == s.source)
        #expect(view.destination == s.destination)
        #expect(view.transportProtocol == PacketView.ProtocolNumber.tcp)
        #expect(!view.isTruncated && !view.isFragment)
        #expect(tcp.sourcePort == s.sourcePort && tcp.destinationPort == s.destinationPort)
        #expect(tcp.sequenceNumber == s.sequence && tcp.acknowledgmentNumber == s.acknowledgment)
        #expect(tcp.flags == s.flags)
        #expect(tcp.headerLength == 20)
        #expect(tcp.window == (s.flags.contains(.rst) ? 0 : 65535))
        #expect(view.payload.map(Array.init) == s.payload)
    }

    @Test("IP header: lengths, TTL, don't-fragment", arguments: cases)
    func ipHeader(_ c: SegmentCase) {
        let bytes = c.segment.bytes
        let tcpLength = 20 + c.segment.payload.count
        if c.segment.source.isIPv4 {
            #expect(bytes.count == 20 + tcpLength)
            #expect(Array(bytes[2..<4]) == bigEndian(bytes.count, bytes: 2))
            #expect(bytes[6] & 0x40 != 0)  // DF
            #expect(bytes[8] == 64)
        } else {
            #expect(bytes.count == 40 + tcpLength)
            #expect(Array(bytes[4..<6]) == bigEndian(tcpLength, bytes: 2))
            #expect(bytes[7] == 64)
        }
    }

    @Test("IPv4 header checksum verifies", arguments: cases.filter { $0.segment.source.isIPv4 })
    func ipv4HeaderChecksum(_ c: SegmentCase) {
        #expect(onesComplementSum(Array(c.segment.bytes.prefix(20))) == 0xffff)
    }

    @Test("TCP checksum verifies over pseudo-header and segment", arguments: cases)
    func tcpChecksum(_ c: SegmentCase) {
        let s = c.segment
        let bytes = s.bytes
        let headerLength = s.source.isIPv4 ? 20 : 40
        let tcp = Array(bytes[headerLength...])
        // RFC 9293 §3.1 and RFC 8200 §8.1.
        let pseudo = s.source.isIPv4
            ? s.source.bytes + s.destination.bytes + [0, 6] + bigEndian(tcp.count, bytes: 2)
            : s.source.bytes + s.destination.bytes + bigEndian(tcp.count, bytes: 4) + [0, 0, 0, 6]
        #expect(onesComplementSum(pseudo + tcp) == 0xffff)
    }

    @Test("a changed byte breaks the TCP checksum")
    func checksumCoversPayload() {
        var bytes = segment(client4, server4, [.psh, .ack], "payload").bytes
        bytes[bytes.count - 1] ^= 0x01
        let tcp = Array(bytes[20...])
        let pseudo = client4.bytes + server4.bytes + [0, 6] + bigEndian(tcp.count, bytes: 2)
        #expect(onesComplementSum(pseudo + tcp) != 0xffff)
    }

    @Test("RFC 1071 checksum known answers", arguments: [
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2; its complement is 220d.
        ([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0x220d),
        ([], 0xffff),
        ([0x01], 0xfeff),  // an odd byte is the high half of a last word
        ([0xff, 0xff], 0x0000),
        ([0xff, 0xff, 0x00, 0x01], 0xfffe),  // the end-around carry
        ([0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7], 0xb861),
    ] as [([UInt8], UInt16)])
    func knownAnswers(_ bytes: [UInt8], _ checksum: UInt16) {
        #expect(ForgedSegment.checksum(bytes) == checksum)
    }
}
