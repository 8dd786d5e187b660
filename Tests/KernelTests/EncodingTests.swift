import CNFTables
import Compiler
import Testing
@testable import Kernel

/// A netlink message walked attribute by attribute (host-order headers, 4-byte alignment).
struct Attributes {
    var entries: [(type: UInt16, value: [UInt8])]

    init(_ bytes: [UInt8]) {
        entries = NetlinkReply.attributes(bytes, from: 0, to: bytes.count).map { ($0.0, $0.1) }
    }

    subscript(type: Int32) -> [UInt8]? { entries.first { $0.type == UInt16(type) }?.value }
    func all(_ type: Int32) -> [[UInt8]] { entries.filter { $0.type == UInt16(type) }.map(\.value) }

    static func string(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
    static func bigEndian(_ bytes: [UInt8]?) -> UInt64? { bytes.map { $0.reduce(0) { $0 << 8 | UInt64($1) } } }
}

struct EncodingTests {
    @Test func constantsMatchTheKernelHeaders() {
        #expect(NFTConstants.ctState == NFT_CT_STATE.rawValue)
        #expect(NFTConstants.ctDirection == NFT_CT_DIRECTION.rawValue)
        #expect(NFTConstants.ctMark == NFT_CT_MARK.rawValue)
        #expect(NFTConstants.metaMark == NFT_META_MARK.rawValue)
        #expect(NFTConstants.metaIIF == NFT_META_IIF.rawValue)
        #expect(NFTConstants.metaNFProto == NFT_META_NFPROTO.rawValue)
        #expect(NFTConstants.metaL4Proto == NFT_META_L4PROTO.rawValue)
        #expect(NFTConstants.reg32(0) == NFT_REG32_00.rawValue)
        #expect(NFTConstants.regVerdict == NFT_REG_VERDICT.rawValue)
        #expect(NFTConstants.cmpEq == NFT_CMP_EQ.rawValue)
        #expect(NFTConstants.cmpNeq == NFT_CMP_NEQ.rawValue)
        #expect(NFTConstants.networkHeader == NFT_PAYLOAD_NETWORK_HEADER.rawValue)
        #expect(NFTConstants.transportHeader == NFT_PAYLOAD_TRANSPORT_HEADER.rawValue)
        #expect(NFTConstants.setAnonymous == NFT_SET_ANONYMOUS.rawValue)
        #expect(NFTConstants.setConstant == NFT_SET_CONSTANT.rawValue)
        #expect(NFTConstants.setInterval == NFT_SET_INTERVAL.rawValue)
        #expect(NFTConstants.setMap == NFT_SET_MAP.rawValue)
        #expect(NFTConstants.setTimeout == NFT_SET_TIMEOUT.rawValue)
        #expect(NFTConstants.setConcat == NFT_SET_CONCAT.rawValue)
        #expect(NFTConstants.elementIntervalEnd == NFT_SET_ELEM_INTERVAL_END.rawValue)
        #expect(NFTConstants.verdictJump == NFT_JUMP.rawValue)
        #expect(NFTConstants.verdictGoto == NFT_GOTO.rawValue)
        #expect(NFTConstants.verdictReturn == NFT_RETURN.rawValue)
        #expect(NFTConstants.dataVerdict == NFT_DATA_VERDICT.rawValue)
        #expect(NFTConstants.rejectTCPReset == NFT_REJECT_TCP_RST.rawValue)
        #expect(NFTConstants.rejectICMPX == NFT_REJECT_ICMPX_UNREACH.rawValue)
        #expect(UInt32(NFTConstants.icmpxPortUnreachable) == NFT_REJECT_ICMPX_PORT_UNREACH.rawValue)
        #expect(UInt32(NFTConstants.icmpxAdminProhibited) == NFT_REJECT_ICMPX_ADMIN_PROHIBITED.rawValue)
        #expect(UInt32(NFTConstants.queueBypass) == UInt32(NFT_QUEUE_FLAG_BYPASS))
    }

    /// The one expression of a NEWRULE message: (expression name, its data attributes).
    func onlyExpression(_ message: [UInt8], sequence: UInt32) throws -> (String, Attributes) {
        let type = UInt16(message[4]) | UInt16(message[5]) << 8
        let flags = UInt16(message[6]) | UInt16(message[7]) << 8
        let seq = NetlinkReply.u32(message, 8)
        #expect(type == UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(NFT_MSG_NEWRULE.rawValue))
        let wanted = UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND)
        #expect(flags & wanted == wanted)
        #expect(seq == sequence)
        #expect(Int(NetlinkReply.u32(message, 0)) == message.count)
        let rule = Attributes(Array(message[20...]))  // nlmsghdr (16) + nfgenmsg (4)
        #expect(Attributes.string(rule[Int32(NFTA_RULE_TABLE.rawValue)]) == "t")
        #expect(Attributes.string(rule[Int32(NFTA_RULE_CHAIN.rawValue)]) == "c")
        let list = Attributes(try #require(rule[Int32(NFTA_RULE_EXPRESSIONS.rawValue)]))
        let elements = list.all(Int32(NFTA_LIST_ELEM.rawValue))
        try #require(elements.count == 1)
        let expression = Attributes(elements[0])
        let name = try #require(Attributes.string(expression[Int32(NFTA_EXPR_NAME.rawValue)]))
        return (name, Attributes(try #require(expression[Int32(NFTA_EXPR_DATA.rawValue)])))
    }

    func queueRule(_ encoding: QueueEncoding, bypass: Bool) -> [UInt8] {
        LibNFTNL.encode(.newRule(NFTRuleSpec(family: 1, table: "t", chain: "c",
                                             expressions: [RulesetEncoder.queueExpression(number: 7, bypass: bypass, encoding: encoding)],
                                             userData: [])), sequence: 4242)
    }

    @Test(arguments: [true, false])
    func nativeQueueBytes(bypass: Bool) throws {
        let (name, data) = try onlyExpression(queueRule(.native, bypass: bypass), sequence: 4242)
        #expect(name == "queue")
        #expect(data[Int32(NFTA_QUEUE_NUM.rawValue)] == [0, 7])
        #expect(data[Int32(NFTA_QUEUE_TOTAL.rawValue)] == [0, 1])
        #expect(data[Int32(NFTA_QUEUE_FLAGS.rawValue)] == [0, bypass ? 1 : 0])
    }

    @Test(arguments: [true, false])
    func xtablesNFQueueTargetBytes(bypass: Bool) throws {
        let (name, data) = try onlyExpression(queueRule(.xtablesTarget, bypass: bypass), sequence: 4242)
        #expect(name == "target")
        #expect(Attributes.string(data[Int32(NFTA_TARGET_NAME.rawValue)]) == "NFQUEUE")
        #expect(Attributes.bigEndian(data[Int32(NFTA_TARGET_REV.rawValue)]) == 3)
        // struct xt_NFQ_info_v3 { u16 queuenum = 7; u16 queues_total = 1; u16 flags; u16 ccpu = 0 }, host order.
        #expect(data[Int32(NFTA_TARGET_INFO.rawValue)] == [7, 0, 1, 0, bypass ? 1 : 0, 0, 0, 0])
    }

    static func range(_ a: String, _ b: String) -> KeyPart {
        .addresses(AddressRange(first: try! IPAddress.parse(a), last: try! IPAddress.parse(b)))
    }

    @Test func intervalPoints() {
        let set = NamedSet(name: "m", key: [.ipv4Address], data: .verdict, flags: .interval)
        let elements = [
            SetElement([Self.range("10.0.0.5", "10.0.0.5")], verdict: .jump("a")),
            SetElement([Self.range("10.0.0.6", "10.0.0.9")], verdict: .jump("b")),  // adjacent: no end point between
            SetElement([Self.range("10.0.1.0", "10.0.1.255")], verdict: .jump("a")),
            SetElement([Self.range("255.255.255.0", "255.255.255.255")], verdict: .drop),  // at the top: no end point
        ]
        let points = RulesetEncoder.kernelElements(elements, of: set).map { ($0.key, $0.flags, $0.verdict?.chain) }
        let expected: [([UInt8], UInt32, String?)] = [
            ([10, 0, 0, 5], 0, "a"), ([10, 0, 0, 6], 0, "b"), ([10, 0, 0, 10], 1, nil),
            ([10, 0, 1, 0], 0, "a"), ([10, 0, 2, 0], 1, nil), ([255, 255, 255, 0], 0, nil),
        ]
        #expect(points.count == expected.count)
        for (point, want) in zip(points, expected) {
            #expect(point.0 == want.0 && point.1 == want.1 && point.2 == want.2)
        }
        let v6 = NamedSet(name: "m6", key: [.ipv6Address], data: .verdict, flags: .interval)
        let all = RulesetEncoder.kernelElements([SetElement([Self.range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")], verdict: .accept)], of: v6)
        #expect(all.count == 1 && all[0].key == [UInt8](repeating: 0, count: 16))
    }

    @Test func concatenatedAndMarkKeys() {
        let ports = NamedSet(name: "p", key: [.ipv4Address, .inetProtocol, .inetService], data: .verdict, flags: .interval)
        let element = SetElement([Self.range("10.0.0.0", "10.0.0.255"), .proto(.tcp), .ports(PortRange(first: 8000, last: 8100))], verdict: .goto("g"))
        let kernel = RulesetEncoder.kernelElements([element], of: ports)
        #expect(kernel.count == 1)
        #expect(kernel[0].key == [10, 0, 0, 0, 6, 0, 0, 0, 0x1f, 0x40, 0, 0])
        #expect(kernel[0].keyEnd == [10, 0, 0, 255, 6, 0, 0, 0, 0x1f, 0xa4, 0, 0])
        #expect(RulesetEncoder.keyLength(ports.key) == 12)
        #expect(RulesetEncoder.keyType(ports.key) == (7 << 12 | 12 << 6 | 13))
        let marks = NamedSet(name: "a", key: [.mark])
        #expect(RulesetEncoder.kernelElements([SetElement([.mark(0x0000_0400)])], of: marks)[0].key == [0x00, 0x04, 0x00, 0x00])
    }

    @Test func elementMessagesStayUnderTheAttributeLimit() throws {
        let set = NamedSet(name: "big", key: [.ipv6Address], data: .verdict, flags: .interval)
        let elements = (0..<200_000).map { i -> SetElement in
            let address = IPAddress(v6: (UInt128(0xfd00) << 112) | UInt128(i * 4))
            return SetElement([.addresses(AddressRange(first: address, last: address))], verdict: .jump("some_chain"))
        }
        let table = Table(family: .inet, name: "t", sets: [set], chains: [])
        let messages = RulesetEncoder(queue: .xtablesTarget).addElements(SetElements(elements), to: set, in: table)
        var total = 0
        for message in messages {
            guard case .newElements(let spec) = message.message else { Issue.record("not an element message"); continue }
            total += spec.elements.count
            let bytes = LibNFTNL.encode(message.message, sequence: 1)
            #expect(bytes.count < 65_536)
        }
        #expect(total == 400_000)  // a start and an end point per address
    }

    /// A comment record holds what nft can read back: the name as written when it fits,
    /// else cut between characters within 128 bytes (never inside a UTF-8 sequence).
    @Test(arguments: ["policy Database Servers for SRE (24/7), on-call", "policy Café Zürich",
                      "policy " + String(repeating: "é", count: 100), "policy \"quoted\""])
    func commentRecordsFitNFT(_ text: String) {
        let record = UserData.comment(text)
        #expect(record.count <= 2 + NFTComment.maxBytes + 1)
        #expect(record[0] == 0 && Int(record[1]) == record.count - 2 && record.last == 0)
        let back = UserData.comment(in: record)
        #expect(back == NFTComment.fitted(text))
        #expect(back?.contains("\u{FFFD}") == false, "cut inside a character")
    }

    @Test func acknowledgementParsing() {
        func ack(sequence: UInt32, error: Int32, text: String? = nil) -> [UInt8] {
            var body: [UInt8] = []
            withUnsafeBytes(of: error) { body += $0 }
            var original = [UInt8](repeating: 0, count: 16)
            withUnsafeBytes(of: sequence) { original.replaceSubrange(8..<12, with: $0) }
            body += original
            var flags: UInt16 = 0
            if let text {
                flags = 0x200
                let value = Array(text.utf8) + [0]
                var attribute: [UInt8] = []
                withUnsafeBytes(of: UInt16(4 + value.count)) { attribute += $0 }
                withUnsafeBytes(of: UInt16(1)) { attribute += $0 }
                attribute += value
                while attribute.count % 4 != 0 { attribute.append(0) }
                body += attribute
            }
            var header: [UInt8] = []
            withUnsafeBytes(of: UInt32(16 + body.count)) { header += $0 }
            withUnsafeBytes(of: UInt16(2)) { header += $0 }
            withUnsafeBytes(of: flags) { header += $0 }
            header += [UInt8](repeating: 0, count: 8)
            return header + body
        }
        let datagram = ack(sequence: 7, error: 0) + ack(sequence: 8, error: -2, text: "no such chain")
        let replies = NetlinkReply.parse(datagram)
        #expect(replies.count == 2)
        if case let .acknowledgement(error, sequence, message) = replies[0] { #expect(error == 0 && sequence == 7 && message == nil) } else { Issue.record("\(replies[0])") }
        if case let .acknowledgement(error, sequence, message) = replies[1] { #expect(error == -2 && sequence == 8 && message == "no such chain") } else { Issue.record("\(replies[1])") }
        #expect(NetlinkReply.parse(Array(datagram.dropLast(5))).count == 1)  // a truncated datagram: what is whole
        #expect(NetlinkReply.parse([1, 2, 3]).isEmpty)
    }

    @Test func generationElementsRoundTrip() {
        let elements: [String: [SetElement]] = [
            "a": [SetElement([Self.range("10.0.0.0", "10.0.0.255")], verdict: .jump("x"), comment: "p"),
                  SetElement([Self.range("fd00::", "fd00::ff"), .proto(.udp), .ports(PortRange(first: 53, last: 53))], verdict: .goto("g"), timeout: 60)],
            "b": [SetElement([.mark(0x400)], comment: "Internet for Office"), SetElement([.ports(PortRange(first: 80, last: 80))], verdict: .drop)],
        ]
        let sets = elements.mapValues { SetElements($0) }
        let bytes = ElementCodec.encode(sets)
        #expect(ElementCodec.decode(bytes) == sets)
        #expect(ElementCodec.decode(Array(bytes.dropLast())) == nil)
    }
}
