import Testing
@testable import Compiler

/// A set's size: the hint the compile gives by its element count, and the size a set the
/// kernel holds keeps while its elements fit (`Ruleset.keepingSetSizes`).
struct SetSizeTests {
    @Test("size hints", arguments: [(0, nil), (4_095, nil), (4_096, 8_192), (4_097, 16_384), (8_192, 16_384), (1_000_000, 2_097_152)] as [(Int, Int?)])
    func sizeHints(_ count: Int, _ hint: Int?) {
        #expect(NamedSet.sizeHint(for: count) == hint)
    }

    static func ruleset(_ count: Int, size: Int?, comment: String = "senders", name: String = "in_hosts_v4") -> Ruleset {
        let elements = (0..<count).map { index in
            SetElement([.addresses(AddressRange(IPAddress(v4: 0x0A00_0000 + UInt32(index))))], verdict: .jump("c"))
        }
        let set = NamedSet(name: name, key: [.ipv4Address], data: .verdict, elements: elements, comment: comment, size: size)
        return Ruleset(table: Table(family: .inet, name: "enforcer", sets: [set], chains: []))
    }

    /// (elements now, size the compile gives, size the kernel holds, size kept)
    @Test("the kernel's size stays while the elements fit", arguments: [
        (4_100, 8_192, nil, nil),          // grown past the hint's threshold: the kernel's set has no limit
        (4_000, nil, 8_192, 8_192),        // shrunk below it: 8,192 still holds them
        (9_000, 32_768, 8_192, 32_768),    // grown past the kernel's size: the new one
        (8_192, 16_384, 8_192, 8_192),     // exactly full still fits
        (100, nil, nil, nil),
    ] as [(Int, Int?, Int?, Int?)])
    func keepsTheKernelsSize(_ count: Int, _ compiled: Int?, _ live: Int?, _ kept: Int?) {
        let next = Self.ruleset(count, size: compiled)
        let result = next.keepingSetSizes(of: Self.ruleset(10, size: live))
        #expect(result.table.sets[0].size == kept)
        #expect(result.table.sets[0].elements == next.table.sets[0].elements)
    }

    @Test func aSetDefinedOtherwiseOrNamedOtherwiseIsLeftAlone() {
        let next = Self.ruleset(4_100, size: 8_192)
        #expect(next.keepingSetSizes(of: Self.ruleset(10, size: nil, comment: "other")).table.sets[0].size == 8_192)
        #expect(next.keepingSetSizes(of: Self.ruleset(10, size: nil, name: "in_hosts_v6")).table.sets[0].size == 8_192)
    }
}
