import Foundation
import Testing
@testable import Compiler

/// A set's elements are kept by column while they are single addresses with a verdict and
/// as a list otherwise; either way they must read, compare and code as the same elements.
@Suite struct SetElementsTests {
    static func host(_ text: String, _ verdict: Verdict? = .jump("in_a")) -> SetElement {
        SetElement([.addresses(AddressRange(try! IPAddress.parse(text)))], verdict: verdict)
    }

    static let range = SetElement([.addresses(try! AddressRange.parse("10.0.0.0/24"))], verdict: .jump("in_a"))

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var elements: [SetElement]
        var columns: Bool
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "empty", elements: [], columns: false),
        Case(name: "IPv4 hosts", elements: [host("10.0.0.1"), host("10.0.0.3", .jump("in_b")), host("10.0.0.2")], columns: true),
        Case(name: "IPv6 hosts", elements: [host("fd00::1"), host("fd00::ffff:1", nil), host("::")], columns: true),
        Case(name: "hosts of a set (no verdict)", elements: [host("10.0.0.1", nil), host("10.0.0.2", nil)], columns: true),
        Case(name: "a range after hosts", elements: [host("10.0.0.1"), range, host("10.0.0.9")], columns: false),
        Case(name: "a range first", elements: [range, host("10.0.0.9")], columns: false),
        Case(name: "both families", elements: [host("10.0.0.1"), host("fd00::1")], columns: false),
        Case(name: "a host with a comment", elements: [host("10.0.0.1"), SetElement([.addresses(AddressRange(try! IPAddress.parse("10.0.0.2")))], comment: "x")],
             columns: false),
        Case(name: "a host with a timeout", elements: [SetElement([.addresses(AddressRange(try! IPAddress.parse("10.0.0.2")))], timeout: 5)],
             columns: false),
        Case(name: "ports", elements: [SetElement([.ports(PortRange(first: 80, last: 80))])], columns: false),
        Case(name: "a concatenation", elements: [SetElement([.addresses(AddressRange(try! IPAddress.parse("10.0.0.2"))), .proto(.tcp)])],
             columns: false),
    ]

    @Test(arguments: cases)
    func readsAsTheElementsAppended(_ test: Case) throws {
        let elements = SetElements(test.elements)
        #expect((elements.hostColumns != nil) == test.columns)
        #expect(Array(elements) == test.elements)
        #expect(elements == SetElements(test.elements))
        #expect(Set(elements.distinctVerdicts) == Set(test.elements.map(\.verdict)))
        // The coded form is the list's, whatever the storage.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let coded = try encoder.encode(elements)
        #expect(coded == (try encoder.encode(test.elements)))
        #expect(try JSONDecoder().decode(SetElements.self, from: coded) == elements)
    }

    /// `appendHost` is `append` of the host element, whatever the storage holds so far.
    @Test(arguments: cases)
    func appendingAHostIsAppendingItsElement(_ test: Case) throws {
        for host in ["10.0.0.7", "fd00::7"] {
            let address = try IPAddress.parse(host)
            for verdict in [Verdict.jump("in_a"), .jump("in_c"), nil] {
                var viaHost = SetElements(test.elements), viaElement = SetElements(test.elements)
                viaHost.appendHost(address, verdict: verdict)
                viaElement.append(SetElement([.addresses(AddressRange(address))], verdict: verdict))
                #expect(Array(viaHost) == Array(viaElement) && (viaHost.hostColumns != nil) == (viaElement.hostColumns != nil))
            }
        }
    }

    @Test func equalityIsByElementsNotByHowTheyAreNumbered() throws {
        let hosts = (0..<1000).map { Self.host("10.1.\($0 / 256).\($0 % 256)", .jump($0 % 3 == 0 ? "in_a" : "in_b")) }
        let columns = SetElements(hosts)
        let parts = try #require(columns.hostColumns)
        #expect(parts.count == 1000 && parts.verdicts == [.jump("in_a"), .jump("in_b")])
        // The same elements with their verdicts numbered the other way round.
        let renumbered = try #require(SetElements(family: .v4, words: parts.words, verdicts: [.jump("in_b"), .jump("in_a")],
                                                  verdictIndex: parts.verdictIndex.map { 1 - $0 }))
        #expect(renumbered == columns && renumbered.hashValue == columns.hashValue)
        #expect(SetElements(hosts.reversed()) != columns)
        var changed = hosts
        changed[500] = Self.host("10.1.1.244", .jump("in_c"))
        #expect(SetElements(changed) != columns)
        #expect(SetElements(hosts + [Self.range]) != columns && SetElements(hosts + [Self.range]) == SetElements(hosts + [Self.range]))
    }

    /// The columns keep a count of each verdict as addresses come and go (`counts(of:)` and
    /// `distinctVerdicts` read it): after random replacements and compactions it must agree
    /// with counting the elements one by one.
    @Test func verdictCountsFollowReplacementsAndCompaction() throws {
        var generator = SystemRandomNumberGenerator()
        let verdicts: [Verdict?] = [.jump("in_a"), .jump("in_b"), .jump("in_c"), nil]
        for family in [IPFamily.v4, .v6] {
            var columns = HostColumns(family: family)
            let base: UInt128 = family == .v4 ? 0x0A00_0000 : 0xfd00 << 112
            for value in 0..<UInt128(200) { _ = columns.append(IPAddress(family: family, value: base + value * 2), verdicts[Int(value % 3)]) }
            for round in 0..<60 {
                let present = (0..<columns.count).map { columns.value(at: $0) }
                let removed = Array(Set((0..<Int.random(in: 0...5, using: &generator)).compactMap { _ in present.randomElement(using: &generator) })).sorted()
                let gone = Set(removed)
                let free = (0..<UInt128(400)).map { base + $0 }.filter { !present.contains($0) || gone.contains($0) }
                let added = Array(Set((0..<Int.random(in: 0...5, using: &generator)).compactMap { _ in free.randomElement(using: &generator) })).sorted()
                    .map { (value: $0, verdict: verdicts.randomElement(using: &generator)!) }
                columns = try #require(columns.replacing(removed: removed, added: added))
                if round % 7 == 6 { columns = columns.compacted() }
                let elements = SetElements(columns)
                var expected: [Verdict?: Int] = [:]
                for index in 0..<columns.count { expected[columns.verdict(at: index), default: 0] += 1 }
                #expect(elements.counts(of: Set(verdicts)) == expected)
                #expect(elements.counts(of: [.jump("in_b")]) == expected.filter { $0.key == .jump("in_b") })
                #expect(Set(elements.distinctVerdicts) == Set(expected.keys))
            }
        }
    }

    @Test func theLastVerdictNumberIsTheLimit() {
        // 65,536 distinct verdicts fit the 2-byte numbers; the next one turns the storage into a list.
        var elements = SetElements()
        for i in 0..<65_536 { elements.append(Self.host("10.\(i >> 8 & 0xff).\(i & 0xff).1", .jump("c\(i)"))) }
        #expect(elements.hostColumns?.verdicts.count == 65_536)
        elements.append(Self.host("11.0.0.1", .jump("one_more")))
        #expect(elements.hostColumns == nil && elements.count == 65_537)
        #expect(elements.last == Self.host("11.0.0.1", .jump("one_more")) && elements[65_535] == Self.host("10.255.255.1", .jump("c65535")))
    }

    @Test func columnsFromTheirPartsAreChecked() {
        #expect(SetElements(family: .v4, words: [1, 2], verdicts: [.accept], verdictIndex: [0, 0]) == SetElements([
            SetElement([.addresses(AddressRange(IPAddress(v4: 1)))], verdict: .accept),
            SetElement([.addresses(AddressRange(IPAddress(v4: 2)))], verdict: .accept),
        ]))
        #expect(SetElements(family: .v4, words: [1, 2], verdicts: [.accept], verdictIndex: [0]) == nil)  // word count
        #expect(SetElements(family: .v6, words: [1, 2], verdicts: [.accept], verdictIndex: [0, 0]) == nil)  // four words each
        #expect(SetElements(family: .v4, words: [1], verdicts: [.accept], verdictIndex: [1]) == nil)  // no such verdict
        #expect(SetElements(family: .v4, words: [1], verdicts: [.accept, .accept], verdictIndex: [0]) == nil)  // not distinct
    }

    /// The halves of the 8-byte-aligned layout must not change what an address or range is.
    @Test func addressesKeepTheirValuesAndCodedForm() throws {
        for text in ["0.0.0.0", "255.255.255.255", "10.1.2.3", "::", "::1", "fd00::1:2", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1:2:3:4:5:6:7:8"] {
            let address = try IPAddress.parse(text)
            #expect(address.description == text)
            #expect(IPAddress(bytes: address.bytes) == address)
            let range = AddressRange(first: address, last: address)
            #expect(range.first == address && range.last == address && range.family == address.family)
            #expect(try JSONDecoder().decode(IPAddress.self, from: JSONEncoder().encode(address)) == address)
            #expect(try JSONDecoder().decode(AddressRange.self, from: JSONEncoder().encode(range)) == range)
        }
        #expect(MemoryLayout<IPAddress>.stride == 24 && MemoryLayout<AddressRange>.stride == 40 && MemoryLayout<AddressBlock>.stride == 24)
        // A reversed range in a record is refused, not trapped on.
        let five = String(decoding: try JSONEncoder().encode(IPAddress(v4: 5)), as: UTF8.self)
        let one = String(decoding: try JSONEncoder().encode(IPAddress(v4: 1)), as: UTF8.self)
        let reversed = "{\"first\":\(five),\"last\":\(one)}"
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(AddressRange.self, from: Data(reversed.utf8)) }
    }
}
