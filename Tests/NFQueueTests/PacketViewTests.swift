import Compiler
import Testing
@testable import NFQueue

/// Builds IP packets field by field for the decoding table.
enum PacketBuilder {
    static let source4: [UInt8] = [192, 0, 2, 1]
    static let destination4: [UInt8] = [198, 51, 100, 2]
    static let source6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1]
    static let destination6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [2]

    static func u16(_ value: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)] }

    /// `headerWords` and `totalLength` override the computed fields to make inconsistent packets.
    static func ipv4(protocol number: UInt8 = 6, options: [UInt8] = [], fragmentField: Int = 0,
                     headerWords: Int? = nil, totalLength: Int? = nil, _ body: [UInt8]) -> [UInt8] {
        let words = headerWords ?? (20 + options.count) / 4
        let header: [UInt8] = [0x40 | UInt8(words & 0x0f), 0] + u16(totalLength ?? 20 + options.count + body.count)
            + [0x12, 0x34] + u16(fragmentField) + [64, number, 0, 0] + source4 + destination4 + options
        return header + body
    }

    static func tcp(sourcePort: Int = 40000, destinationPort: Int = 443, sequence: UInt32 = 1000,
                    flags: TCPFlags, options: [UInt8] = [], dataOffsetWords: Int? = nil, _ payload: String = "") -> [UInt8] {
        let words = dataOffsetWords ?? (20 + options.count) / 4
        let sequenceBytes = (0..<4).map { UInt8(truncatingIfNeeded: sequence >> (24 - 8 * $0)) }
        return u16(sourcePort) + u16(destinationPort) + sequenceBytes + [0, 0, 0, 0]
            + [UInt8(words << 4), flags.rawValue] + u16(64240) + [0, 0, 0, 0] + options + Array(payload.utf8)
    }

    static func udp(sourcePort: Int = 5353, destinationPort: Int = 53, length: Int? = nil, _ payload: String) -> [UInt8] {
        u16(sourcePort) + u16(destinationPort) + u16(length ?? 8 + payload.utf8.count) + [0, 0] + Array(payload.utf8)
    }

    static func ipv6(next: UInt8, payloadLength: Int? = nil, _ body: [UInt8]) -> [UInt8] {
        [0x60, 0, 0, 0] + u16(payloadLength ?? body.count) + [next, 64] + source6 + destination6 + body
    }

    /// Hop-by-hop, routing or destination options: (units + 1) × 8 bytes.
    static func extensionHeader(next: UInt8, units: UInt8 = 0) -> [UInt8] {
        [next, units] + Array(repeating: 0, count: (Int(units) + 1) * 8 - 2)
    }

    static func fragmentHeader(next: UInt8, offset: Int, more: Bool) -> [UInt8] {
        [next, 0] + u16(offset | (more ? 1 : 0)) + [0, 0, 0x0a, 0xbc]
    }

    /// An AH with a 12-byte ICV: 24 bytes, length field (24 / 4) − 2 = 4.
    static func authenticationHeader(next: UInt8) -> [UInt8] {
        [next, 4, 0, 0] + Array(repeating: 0, count: 20)
    }
}

/// What the table compares: the decoded facts, nil where a field must be unreadable.
struct PacketFacts: Sendable, Equatable, CustomStringConvertible {
    var version: PacketView.IPVersion
    var source: String? = nil
    var destination: String? = nil
    var transportProtocol: UInt8? = nil
    /// TCP or UDP source and destination port.
    var ports: [UInt16]? = nil
    var flags: TCPFlags? = nil
    var payload: String? = nil
    var fragmentOffset: Int? = nil
    var truncated = false

    init(version: PacketView.IPVersion, source: String? = nil, destination: String? = nil, transportProtocol: UInt8? = nil,
         ports: [UInt16]? = nil, flags: TCPFlags? = nil, payload: String? = nil, fragmentOffset: Int? = nil,
         truncated: Bool = false) {
        self.version = version
        self.source = source
        self.destination = destination
        self.transportProtocol = transportProtocol
        self.ports = ports
        self.flags = flags
        self.payload = payload
        self.fragmentOffset = fragmentOffset
        self.truncated = truncated
    }

    init(_ view: PacketView) {
        version = view.version
        source = view.source?.description
        destination = view.destination?.description
        transportProtocol = view.transportProtocol
        if let tcp = view.tcp {
            ports = [tcp.sourcePort, tcp.destinationPort]
            flags = tcp.flags
        } else if let udp = view.udp {
            ports = [udp.sourcePort, udp.destinationPort]
        }
        payload = view.payload.map { String(decoding: $0, as: UTF8.self) }
        fragmentOffset = view.fragmentOffset
        truncated = view.isTruncated
    }

    var description: String {
        "\(version) \(source ?? "-") > \(destination ?? "-") proto \(transportProtocol.map(String.init) ?? "-") ports \(ports ?? []) flags \(flags?.rawValue ?? 0) payload \(payload.map { "'\($0)'" } ?? "-") frag \(fragmentOffset.map(String.init) ?? "-") truncated \(truncated)"
    }
}

struct PacketCase: Sendable, CustomTestStringConvertible {
    let name: String
    let packet: [UInt8]
    let expected: PacketFacts

    init(_ name: String, _ packet: [UInt8], _ expected: PacketFacts) {
        self.name = name
        self.packet = packet
        self.expected = expected
    }

    var testDescription: String { name }
}

private typealias P = PacketBuilder
private let v4 = (source: "192.0.2.1", destination: "198.51.100.2")
private let v6 = (source: "2001:db8::1", destination: "2001:db8::2")
private let mss: [UInt8] = [2, 4, 0x05, 0xb4]
private let hopByHop: UInt8 = 0, tcpNumber: UInt8 = 6, udpNumber: UInt8 = 17, routing: UInt8 = 43, fragment: UInt8 = 44
private let authentication: UInt8 = 51, icmpv6: UInt8 = 58, noNext: UInt8 = 59, destinationOptions: UInt8 = 60

@Suite("IP/TCP/UDP packet view")
struct PacketViewTests {
    static let cases: [PacketCase] = [
        PacketCase("IPv4 TCP SYN with MSS option", P.ipv4(P.tcp(flags: .syn, options: mss)), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: .syn, payload: "")),
        PacketCase("IPv4 TCP PSH/ACK with payload", P.ipv4(P.tcp(flags: [.psh, .ack], "GET /")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: [.psh, .ack], payload: "GET /")),
        PacketCase("IPv4 TCP FIN/RST/URG/ECE/CWR bits", P.ipv4(P.tcp(flags: [.fin, .rst, .urg, .ece, .cwr])), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: [.fin, .rst, .urg, .ece, .cwr], payload: "")),
        PacketCase("IPv4 with IP options", P.ipv4(options: [1, 1, 1, 0], P.tcp(flags: .ack, "hi")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack, payload: "hi")),
        PacketCase("IPv4 UDP", P.ipv4(protocol: 17, P.udp("query")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 17, ports: [5353, 53], payload: "query")),
        PacketCase("IPv4 ICMP", P.ipv4(protocol: 1, [8, 0, 0, 0, 0, 1, 0, 1]), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 1)),
        PacketCase("IPv4 first fragment", P.ipv4(fragmentField: 0x2000, P.tcp(flags: .ack, "frag")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack, payload: "frag", fragmentOffset: 0)),
        PacketCase("IPv4 later fragment has no TCP header", P.ipv4(fragmentField: 185, P.tcp(flags: .ack, "frag")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, fragmentOffset: 1480)),
        PacketCase("IPv4 cut inside the TCP header", Array(P.ipv4(P.tcp(flags: .ack, "data")).prefix(30)), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, truncated: true)),
        PacketCase("IPv4 cut inside the payload", Array(P.ipv4(P.tcp(flags: .ack, "GET /x")).prefix(42)), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack, payload: "GE", truncated: true)),
        PacketCase("IPv4 trailing padding beyond total length", P.ipv4(P.tcp(flags: .ack, "ok")) + [0, 0, 0, 0], PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack, payload: "ok")),
        PacketCase("IPv4 header length below 20", P.ipv4(headerWords: 4, P.tcp(flags: .ack)), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6)),
        PacketCase("IPv4 header length beyond the packet", P.ipv4(headerWords: 15, P.tcp(flags: .ack)), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6)),
        PacketCase("IPv4 total length below header length", P.ipv4(totalLength: 16, P.tcp(flags: .ack)), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6)),
        PacketCase("IPv4 total length ends inside the TCP header", P.ipv4(totalLength: 30, P.tcp(flags: .ack)), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6)),
        PacketCase("TCP data offset below 5", P.ipv4(P.tcp(flags: .ack, dataOffsetWords: 4, "x")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack)),
        PacketCase("TCP data offset beyond the packet", P.ipv4(P.tcp(flags: .ack, dataOffsetWords: 15, "x")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack)),
        PacketCase("UDP length beyond the packet", P.ipv4(protocol: 17, P.udp(length: 100, "q")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 17, ports: [5353, 53])),
        PacketCase("UDP length below 8", P.ipv4(protocol: 17, P.udp(length: 7, "q")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 17, ports: [5353, 53])),
        PacketCase("UDP length shorter than the IP payload", P.ipv4(protocol: 17, P.udp(length: 10, "query")), PacketFacts(version: .v4, source: v4.source, destination: v4.destination, transportProtocol: 17, ports: [5353, 53], payload: "qu")),
        PacketCase("IPv4 header cut at 10 bytes", Array(P.ipv4(P.tcp(flags: .syn)).prefix(10)), PacketFacts(version: .v4)),
        PacketCase("empty packet", [], PacketFacts(version: .unknown)),
        PacketCase("IP version 5", [0x50] + Array(repeating: 0, count: 39), PacketFacts(version: .unknown)),
        PacketCase("IPv6 TCP", P.ipv6(next: tcpNumber, P.tcp(flags: .syn)), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 6, ports: [40000, 443], flags: .syn, payload: "")),
        PacketCase("IPv6 UDP", P.ipv6(next: udpNumber, P.udp("q6")), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 17, ports: [5353, 53], payload: "q6")),
        PacketCase("IPv6 ICMPv6", P.ipv6(next: icmpv6, [128, 0, 0, 0]), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 58)),
        PacketCase("IPv6 hop-by-hop, routing, dest-opts, TCP", P.ipv6(next: hopByHop, P.extensionHeader(next: routing) + P.extensionHeader(next: destinationOptions, units: 2) + P.extensionHeader(next: tcpNumber) + P.tcp(flags: [.psh, .ack], "x")), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 6, ports: [40000, 443], flags: [.psh, .ack], payload: "x")),
        PacketCase("IPv6 dest-opts of 16 bytes, UDP", P.ipv6(next: destinationOptions, P.extensionHeader(next: udpNumber, units: 1) + P.udp("u")), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 17, ports: [5353, 53], payload: "u")),
        PacketCase("IPv6 AH then TCP", P.ipv6(next: authentication, P.authenticationHeader(next: tcpNumber) + P.tcp(flags: .ack, "ah")), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack, payload: "ah")),
        PacketCase("IPv6 first fragment", P.ipv6(next: fragment, P.fragmentHeader(next: tcpNumber, offset: 0, more: true) + P.tcp(flags: .ack, "f")), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack, payload: "f", fragmentOffset: 0)),
        PacketCase("IPv6 later fragment has no TCP header", P.ipv6(next: fragment, P.fragmentHeader(next: tcpNumber, offset: 1232, more: false) + P.tcp(flags: .ack, "f")), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 6, fragmentOffset: 1232)),
        PacketCase("IPv6 later fragment after dest-opts", P.ipv6(next: destinationOptions, P.extensionHeader(next: fragment) + P.fragmentHeader(next: udpNumber, offset: 8, more: true) + P.udp("f")), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 17, fragmentOffset: 8)),
        PacketCase("IPv6 hop-by-hop not first", P.ipv6(next: destinationOptions, P.extensionHeader(next: hopByHop) + P.extensionHeader(next: tcpNumber) + P.tcp(flags: .ack)), PacketFacts(version: .v6, source: v6.source, destination: v6.destination)),
        PacketCase("IPv6 extension header longer than the packet", P.ipv6(next: routing, Array(P.extensionHeader(next: tcpNumber, units: 40).prefix(8)) + P.tcp(flags: .ack)), PacketFacts(version: .v6, source: v6.source, destination: v6.destination)),
        PacketCase("IPv6 chain cut mid-header", Array(P.ipv6(next: hopByHop, P.extensionHeader(next: tcpNumber) + P.tcp(flags: .ack)).prefix(41)), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, truncated: true)),
        PacketCase("IPv6 payload length ends inside the chain", P.ipv6(next: hopByHop, payloadLength: 4, P.extensionHeader(next: tcpNumber) + P.tcp(flags: .ack)), PacketFacts(version: .v6, source: v6.source, destination: v6.destination)),
        PacketCase("IPv6 no next header", P.ipv6(next: noNext, []), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 59)),
        PacketCase("IPv6 cut at 30 bytes", Array(P.ipv6(next: tcpNumber, P.tcp(flags: .syn)).prefix(30)), PacketFacts(version: .v6, source: v6.source)),
        PacketCase("IPv6 payload length beyond the packet", Array(P.ipv6(next: tcpNumber, P.tcp(flags: .ack, "GET /")).prefix(62)), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack, payload: "GE", truncated: true)),
        PacketCase("IPv6 jumbogram takes the delivered length", P.ipv6(next: hopByHop, payloadLength: 0, P.extensionHeader(next: tcpNumber) + P.tcp(flags: .ack, "big")), PacketFacts(version: .v6, source: v6.source, destination: v6.destination, transportProtocol: 6, ports: [40000, 443], flags: .ack, payload: "big")),
    ]

    @Test("decoding", arguments: cases)
    func decode(_ testCase: PacketCase) {
        #expect(PacketFacts(PacketView(testCase.packet)) == testCase.expected)
    }

    /// No prefix of a packet traps, and whatever a prefix reports is what the whole reports.
    @Test("every prefix decodes without trapping", arguments: cases)
    func prefixes(_ testCase: PacketCase) {
        let whole = PacketView(testCase.packet)
        for length in 0...testCase.packet.count {
            let view = PacketView(testCase.packet[..<length])
            if let tcp = view.tcp { #expect(tcp == whole.tcp) }
            if let source = view.source { #expect(source == whole.source) }
        }
    }

    @Test("TCP header fields", arguments: [0 as UInt32, 1, 0xdead_beef, .max])
    func tcpFields(_ sequence: UInt32) throws {
        let view = PacketView(P.ipv4(P.tcp(sourcePort: 65535, destinationPort: 1, sequence: sequence, flags: .syn, options: mss)))
        let tcp = try #require(view.tcp)
        #expect(tcp == TCPSegmentHeader(sourcePort: 65535, destinationPort: 1, sequenceNumber: sequence,
                                        acknowledgmentNumber: 0, headerLength: 24, flags: .syn, window: 64240))
        #expect(view.payloadRange == 44..<44)
    }

    @Test("address text", arguments: [
        ([192, 0, 2, 255], "192.0.2.255"),
        ([0, 9, 10, 99], "0.9.10.99"),
        ([100, 101, 109, 110], "100.101.109.110"),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "::1"),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "::"),
        ([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "2001:db8::1"),
        ([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], "2001:db8:0:1:1:1:1:1"),
        ([0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3], "1:0:0:2::3"),
        ([0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4], "1::2:0:0:3:4"),
        ([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x1a, 0x2b, 0xff, 0xfe, 0x3c, 0x4d, 0x5e], "fe80::21a:2bff:fe3c:4d5e"),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1], "::ffff:192.0.2.1"),
    ] as [([UInt8], String)])
    func addressText(_ bytes: [UInt8], _ text: String) {
        #expect(PacketAddress(bytes: bytes)?.description == text)
    }

    @Test("flow key text") func flowKeyText() throws {
        let v4 = FlowKey(client: try #require(PacketAddress(bytes: [10, 0, 0, 1])), server: try #require(PacketAddress(bytes: [192, 0, 2, 80])),
                         clientPort: 0, serverPort: 65535)
        #expect(v4.description == "10.0.0.1:0 → 192.0.2.80:65535")
        let loopback: [UInt8] = Array(repeating: 0, count: 15) + [1]
        let v6 = FlowKey(client: try #require(PacketAddress(bytes: loopback)), server: try #require(PacketAddress(bytes: loopback)),
                         clientPort: 40000, serverPort: 443)
        #expect(v6.description == "[::1]:40000 → [::1]:443")
        #expect(PacketAddress(bytes: [1, 2, 3, 4])?.ipAddress == IPAddress(v4: 0x0102_0304))
    }

    @Test("IPv4 flow key text, every digit count of octets and ports", arguments: [0, 9, 10, 99, 100, 255] as [UInt8])
    func flowKeyDigits(_ octet: UInt8) throws {
        for port in [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 54321, 65535] as [UInt16] {
            let client = try #require(PacketAddress(bytes: [octet, 255 - octet, 0, octet]))
            let server = try #require(PacketAddress(bytes: [1, octet, 100, 9]))
            let key = FlowKey(client: client, server: server, clientPort: port, serverPort: 65535 - port)
            #expect(key.description == "\(octet).\(255 - octet).0.\(octet):\(port) → 1.\(octet).100.9:\(65535 - port)")
        }
    }

    @Test("addresses need 4 or 16 bytes", arguments: [0, 3, 5, 15, 17])
    func addressLengths(_ count: Int) {
        #expect(PacketAddress(bytes: Array(repeating: 1, count: count)) == nil)
    }
}
