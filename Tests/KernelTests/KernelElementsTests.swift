import Compiler
import Testing
@testable import Kernel

/// A hosts map's kernel elements are packed (keys end to end, a verdict number each); they
/// must read, compare, diff, size and record exactly as the list of the same elements.
@Suite struct KernelElementsTests {
    static let hostsMap = NamedSet(name: "in_hosts_v4", key: [.ipv4Address], data: .verdict)
    static let hostsMap6 = NamedSet(name: "in_hosts_v6", key: [.ipv6Address], data: .verdict)

    static func hosts(_ addresses: [UInt32], chain: (UInt32) -> String = { $0 % 3 == 0 ? "in_a" : "in_b" }) -> SetElements {
        SetElements(addresses.map { SetElement([.addresses(AddressRange(IPAddress(v4: $0)))], verdict: .jump(chain($0))) })
    }

    /// The same elements as a plain list.
    static func list(_ elements: KernelElements) -> KernelElements { KernelElements(Array(elements)) }

    @Test func packedElementsReadAsTheirList() throws {
        let model = Self.hosts([0x0a00_0001, 0x0a00_0002, 0xffff_ffff])
        let packed = RulesetEncoder.kernelElements(model, of: Self.hostsMap)
        #expect(model.hostColumns != nil)
        #expect(packed.count == 3)
        #expect(packed[0] == NFTElement(key: [10, 0, 0, 1], verdict: NFTVerdict(code: -3, chain: "in_b")))
        #expect(packed[2] == NFTElement(key: [255, 255, 255, 255], verdict: NFTVerdict(code: -3, chain: "in_a")))
        #expect(packed == Self.list(packed) && Self.list(packed) == packed)
        #expect(packed.hashValue == Self.list(packed).hashValue)
        #expect(Set(packed.distinctVerdicts) == [NFTVerdict(code: -3, chain: "in_a"), NFTVerdict(code: -3, chain: "in_b")])

        let v6 = SetElements([SetElement([.addresses(AddressRange(try IPAddress.parse("fd00::1:2")))], verdict: .accept)])
        let packed6 = RulesetEncoder.kernelElements(v6, of: Self.hostsMap6)
        #expect(Array(packed6) == [NFTElement(key: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2], verdict: NFTVerdict(code: 1, chain: nil))])

        var trimmed = packed
        trimmed.removeAll { $0.key == [10, 0, 0, 2] }
        #expect(Array(trimmed) == [packed[0], packed[2]])
    }

    @Test func randomPackedSetsDiffAsTheirLists() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let universe = UInt32.random(in: 1...300, using: &generator)
            func pick() -> KernelElements {
                let chosen = (0..<universe).filter { _ in Bool.random(using: &generator) }
                let chains = Dictionary(uniqueKeysWithValues: chosen.map { ($0, Bool.random(using: &generator) ? "in_a" : "in_b") })
                return RulesetEncoder.kernelElements(Self.hosts(chosen) { chains[$0]! }, of: Self.hostsMap)
            }
            let before = pick(), after = pick()
            let packed = Delta.difference(before, after)
            let listed = Delta.difference(Self.list(before), Self.list(after))
            #expect(packed.removed == listed.removed && packed.added == listed.added)
            #expect((before == after) == (Self.list(before) == Self.list(after)))
        }
    }

    /// Removing given elements (the recent table's senders) from packed storage searches the
    /// sorted keys; it must leave what removing them from the list leaves.
    @Test func randomRemovalsMatchTheList() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let chosen = (0..<UInt32.random(in: 1...300, using: &generator)).filter { _ in Bool.random(using: &generator) }
            let elements = RulesetEncoder.kernelElements(Self.hosts(chosen), of: Self.hostsMap)
            // Some present, some absent, some with the other chain (not equal: must stay).
            let unwanted = (0..<Int.random(in: 0...20, using: &generator)).map { _ in
                let address = UInt32.random(in: 0...300, using: &generator)
                let key = [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: address >> $0) }
                return NFTElement(key: key, verdict: NFTVerdict(code: -3, chain: Bool.random(using: &generator) ? "in_a" : "in_b"))
            }
            var packed = elements, listed = Self.list(elements)
            packed.remove(unwanted)
            listed.remove(unwanted)
            #expect(Array(packed) == Array(listed))
        }
    }

    /// Where given elements sit in packed storage: what filtering the collection finds; nil
    /// when one is missing or the storage is a list.
    @Test func positionsAreWhatAFilterFinds() {
        let elements = RulesetEncoder.kernelElements(Self.hosts((0..<500).map { 0x0a00_0000 + $0 * 3 }), of: Self.hostsMap)
        let wanted = [elements[7], elements[499], elements[0], elements[7]]
        #expect(elements.positions(of: wanted) == [0, 7, 499])
        #expect(elements.positions(of: wanted) == elements.indices.filter { Set(wanted).contains(elements[$0]) })
        #expect(elements.positions(of: [NFTElement(key: [10, 0, 0, 1], verdict: elements[0].verdict)]) == nil)
        #expect(Self.list(elements).positions(of: wanted) == nil)
    }

    /// The packed merge compares verdicts by number: a table holding one verdict twice, or
    /// keys out of order (an old record), must still diff as the list does.
    @Test func packedDiffWithARepeatedVerdictOrUnsortedKeys() {
        let a = NFTVerdict(code: -3, chain: "in_a"), b = NFTVerdict(code: -3, chain: "in_b")
        let before = KernelElements(width: 1, keys: [1, 2, 3, 4], verdicts: [a, b], verdictIndex: [0, 1, 0, 1])
        let after = KernelElements(width: 1, keys: [1, 2, 3, 5], verdicts: [b, a, a], verdictIndex: [2, 0, 0, 1])
        let packed = Delta.difference(before, after)
        #expect(packed.removed == [NFTElement(key: [3], verdict: a), NFTElement(key: [4], verdict: b)])
        #expect(packed.added == [NFTElement(key: [3], verdict: b), NFTElement(key: [5], verdict: a)])
        let unsorted = KernelElements(width: 1, keys: [2, 1], verdicts: [a], verdictIndex: [0, 0])
        let listed = Delta.difference(Self.list(unsorted), Self.list(after))
        let fromPacked = Delta.difference(unsorted, after)
        #expect(Set(fromPacked.removed) == Set(listed.removed) && Set(fromPacked.added) == Set(listed.added))
    }

    /// The batch is reserved from these sizes: they must be what libnftnl writes, or the
    /// large batch of a big sender map is copied when it outgrows its reservation.
    @Test(arguments: [1, 2, 100, 1000])
    func sizeEstimateMatchesTheEncodedMessage(count: Int) {
        let packed = RulesetEncoder.kernelElements(Self.hosts((0..<UInt32(count)).map { 0x0a00_0000 + $0 }), of: Self.hostsMap)
        let listed = Self.list(packed)
        let table = Table(family: .inet, name: "enforcer", sets: [Self.hostsMap], chains: [])
        let encoder = RulesetEncoder(queue: .xtablesTarget)
        for elements in [packed, listed] {
            let messages = encoder.chunks(elements, of: Self.hostsMap, in: table, delete: false)
            let encoded = messages.reduce(0) { $0 + LibNFTNL.encode($1.message, sequence: 1).count }
            let estimated = messages.reduce(0) { $0 + $1.estimatedBytes }
            #expect(estimated >= encoded, "estimate \(estimated) below the \(encoded) bytes encoded")
            #expect(Double(estimated) <= Double(encoded) * 1.03 + 256, "estimate \(estimated) far over the \(encoded) bytes encoded")
        }
    }

    /// Packed elements are encoded from their columns without building elements: the bytes
    /// must be those of the same elements as a list (padding included: the scratch buffer
    /// is zeroed after each message, so nothing of an earlier one shows through).
    @Test func packedElementsEncodeAsTheirList() {
        let packed = RulesetEncoder.kernelElements(Self.hosts((0..<700).map { 0x0a00_0000 + $0 * 5 }), of: Self.hostsMap)
        let listed = Self.list(packed)
        let table = Table(family: .inet, name: "enforcer", sets: [Self.hostsMap], chains: [])
        let encoder = RulesetEncoder(queue: .xtablesTarget)
        for delete in [false, true] {
            let bytes = { (elements: KernelElements) in
                encoder.chunks(elements, of: Self.hostsMap, in: table, delete: delete).map { LibNFTNL.encode($0.message, sequence: 7) }
            }
            #expect(bytes(packed) == bytes(listed), "delete: \(delete)")
        }
    }

    /// A batch encoded in parts on several threads is, parts joined, the batch encoded in
    /// one: the same messages, sequence numbers and padding, BEGIN first and END last.
    @Test func aBatchInPartsIsTheBatchInOne() {
        let packed = RulesetEncoder.kernelElements(Self.hosts((0..<10_000).map { 0x0a00_0000 + $0 * 3 }), of: Self.hostsMap)
        let table = Table(family: .inet, name: "enforcer", sets: [Self.hostsMap], chains: [])
        let messages = RulesetEncoder(queue: .xtablesTarget).chunks(packed, of: Self.hostsMap, in: table, delete: false)
        #expect(messages.count > 3)
        let whole = NFTablesConnection.encodeBatch(messages, begin: 40, parts: 1)
        #expect(whole.count == 1)
        for parts in [2, 3, messages.count + 2] {
            let cut = NFTablesConnection.encodeBatch(messages, begin: 40, parts: parts)
            #expect(cut.count == parts)
            #expect(Array(cut.joined()) == whole[0], "parts: \(parts)")
        }
    }

    @Test func generationsRecordColumnsAsColumns() throws {
        let sets: [String: SetElements] = [
            "in_hosts_v4": Self.hosts((0..<5000).map { 0x0a00_0000 + $0 * 2 }),
            "in_hosts_v6": SetElements((1...3).map { SetElement([.addresses(AddressRange(IPAddress(v6: UInt128($0) << 100 | 7)))], verdict: .goto("g\($0)")) }),
            "ports": SetElements([SetElement([.ports(PortRange(first: 22, last: 22))])]),
        ]
        let bytes = ElementCodec.encode(sets)
        let decoded = try #require(ElementCodec.decode(bytes))
        #expect(decoded == sets)
        #expect(decoded["in_hosts_v4"]?.hostColumns != nil && decoded["in_hosts_v6"]?.hostColumns != nil)
        // An IPv4 sender is its 4-byte address and a 2-byte verdict number (the list form
        // spells out every element).
        #expect(bytes.count < 5000 * 6 + 200)
        for cut in [1, 7, bytes.count / 2] { #expect(ElementCodec.decode(Array(bytes.dropLast(cut))) == nil) }
    }

    /// A generation recorded before the columns (`ENFS1`: every set a list) still reads.
    @Test func listRecordsOfEarlierVersionsStillRead() throws {
        var bytes = Array("ENFS1".utf8)
        func u32(_ v: UInt32) { bytes += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        func string(_ s: String) { u32(UInt32(s.utf8.count)); bytes += s.utf8 }
        u32(1)                      // one set
        string("in_hosts_v4")
        u32(1)                      // one element
        bytes.append(1)             // one key part
        bytes.append(4)             // IPv4 addresses, first and last as 128-bit little-endian
        bytes += [5, 0, 0, 10] + [UInt8](repeating: 0, count: 12)
        bytes += [5, 0, 0, 10] + [UInt8](repeating: 0, count: 12)
        bytes.append(4); string("in_a")  // jump in_a
        u32(.max)                   // no timeout
        u32(.max)                   // no comment
        let decoded = try #require(ElementCodec.decode(bytes))
        #expect(Array(decoded["in_hosts_v4"] ?? []) == [SetElement([.addresses(AddressRange(try IPAddress.parse("10.0.0.5")))], verdict: .jump("in_a"))])
    }

    /// Random damage to a record of every kind of element: decoding answers (often nil)
    /// and never traps.
    @Test func damagedRecordsNeverTrap() {
        let sets: [String: SetElements] = [
            "in_hosts_v4": Self.hosts((0..<40).map { 0x0a00_0000 + $0 }),
            "in_hosts_v6": SetElements([SetElement([.addresses(AddressRange(IPAddress(v6: 1)))], verdict: .goto("g"))]),
            "in_senders_v4": SetElements([SetElement([.addresses(AddressRange(first: IPAddress(v4: 1), last: IPAddress(v4: 9)))], verdict: .drop, comment: "c")]),
            "mixed": SetElements([SetElement([.proto(.tcp), .ports(PortRange(first: 1, last: 2)), .mark(7)], verdict: .return, timeout: 3)]),
        ]
        let bytes = ElementCodec.encode(sets)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            var damaged = bytes
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                damaged[Int.random(in: 0..<damaged.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            _ = ElementCodec.decode(damaged)
        }
    }

    /// A damaged record is refused, never trapped on: here a port range 443-80.
    @Test func aReversedPortRangeInARecordIsDamage() {
        var bytes = Array("ENFS2".utf8)
        func u32(_ v: UInt32) { bytes += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        u32(1)
        u32(5); bytes += "ports".utf8
        bytes.append(0)             // a list
        u32(1)                      // one element
        bytes += [1, 2]             // one key part: ports
        bytes += [0xbb, 0x01, 80, 0]  // 443, then 80
        bytes.append(0)             // no verdict
        u32(.max); u32(.max)
        #expect(ElementCodec.decode(bytes) == nil)
        bytes[bytes.count - 13] = 0; bytes[bytes.count - 12] = 0  // 0-80 instead: reads
        #expect(ElementCodec.decode(bytes)?["ports"]?.first == SetElement([.ports(PortRange(first: 0, last: 80))]))
    }
}
