/// The two address families. IPv4 sorts before IPv6, so mixed lists sort family by family.
public enum IPFamily: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    case v4, v6

    /// Address width in bits: 32 or 128.
    public var bitWidth: Int { self == .v4 ? 32 : 128 }

    /// The highest address value of the family.
    public var maxValue: UInt128 { self == .v4 ? UInt128(UInt32.max) : UInt128.max }

    public var description: String { self == .v4 ? "IPv4" : "IPv6" }
}

/// One IPv4 or IPv6 address. Addresses of different families are never equal; IPv4 sorts
/// first. An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is an IPv6 address, as it is for
/// nftables.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    // Two 64-bit halves rather than a UInt128: 8-byte alignment makes the struct's stride
    // 24 bytes rather than 32, and an `AddressRange` 40 rather than 64 (policies and the
    // compiler hold them by the million).
    @usableFromInline let high: UInt64
    @usableFromInline let low: UInt64
    public let family: IPFamily

    /// The address as a number; an IPv4 address uses the low 32 bits.
    @inlinable
    public var value: UInt128 { UInt128(high) << 64 | UInt128(low) }

    public init(v4: UInt32) {
        self.init(family: .v4, value: UInt128(v4))
    }

    public init(v6: UInt128) {
        self.init(family: .v6, value: v6)
    }

    /// An address from its network-order bytes: 4 for IPv4, 16 for IPv6, else nil.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        var number: UInt128 = 0
        for byte in bytes { number = number << 8 | UInt128(byte) }
        self.init(family: bytes.count == 4 ? .v4 : .v6, value: number)
    }

    /// Used where the value is known to fit the family.
    @usableFromInline
    init(family: IPFamily, value: UInt128) {
        self.family = family
        high = UInt64(truncatingIfNeeded: value >> 64)
        low = UInt64(truncatingIfNeeded: value)
    }

    // The coded form predates the halves: `value` and `family`.
    private enum CodingKeys: String, CodingKey { case value, family }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(family: try container.decode(IPFamily.self, forKey: .family), value: try container.decode(UInt128.self, forKey: .value))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(value, forKey: .value)
        try container.encode(family, forKey: .family)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        a.family != b.family ? a.family < b.family : a.value < b.value
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        let count = family == .v4 ? 4 : 16
        return (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - $0))) }
    }

    /// Parses dotted-quad IPv4 or any RFC 4291 IPv6 text form.
    ///
    /// IPv4 is strict: exactly four decimal numbers 0–255 without leading zeros (`010`
    /// means 8 to inet_aton but 10 to most people). IPv6 accepts 1–4 hex digits per group in
    /// either case, one `::`, and a trailing embedded IPv4 address. Zone ids (`fe80::1%eth0`)
    /// are rejected: nftables has no use for them.
    @inlinable
    public static func parse(_ text: some StringProtocol) throws(ValueError) -> IPAddress {
        try parseNetText(text, parse(bytes:))
    }

    /// The address in the form `nft list ruleset` prints: dotted quad for IPv4; for IPv6
    /// RFC 5952 (lowercase, no leading zeros, the first longest run of two or more zero
    /// groups shown as `::`) with glibc inet_ntop's dotted tail for `::ffff:a.b.c.d` and
    /// `::a.b.c.d` (when the seventh group is nonzero).
    public var description: String {
        family == .v4 ? Self.formatV4(UInt32(truncatingIfNeeded: value)) : Self.formatV6(value)
    }
}

// MARK: - Parsing

extension IPAddress {
    @usableFromInline
    static func parse(bytes: NetBytes) throws(NetParseFailure) -> IPAddress {
        guard !bytes.isEmpty else { throw NetParseFailure("expected an IP address, found nothing", at: 0) }
        if bytes[0] == NetSyntax.openBracket {
            throw NetParseFailure("brackets are not part of an address; write it without '[' and ']'", at: 0)
        }
        var hasColon = false
        for (offset, byte) in bytes.enumerated() {
            switch byte {
            case NetSyntax.colon:
                hasColon = true
            case NetSyntax.percent:
                let zone = NetSyntax.text(bytes, offset..<bytes.count)
                throw NetParseFailure(
                    "zone ids such as '\(zone)' are not supported; write the address without '\(zone)'", at: offset)
            case NetSyntax.slash:
                let prefix = NetSyntax.text(bytes, offset..<bytes.count)
                throw NetParseFailure("expected a single address, but '\(prefix)' makes it a network", at: offset)
            default:
                break
            }
        }
        if hasColon { return IPAddress(v6: try parseV6(bytes)) }
        if NetSyntax.isLetter(bytes[0]) {
            throw NetParseFailure("'\(NetSyntax.text(bytes))' is not an IP address", at: 0)
        }
        return IPAddress(v4: try parseV4(bytes, from: 0, embedded: false))
    }

    /// `bytes` as four decimal numbers 0-255 without leading zeros, separated by dots and
    /// nothing else; nil for anything else (which `parseV4` then explains).
    @inline(__always)
    static func plainDottedQuad(_ bytes: NetBytes) -> UInt32? {
        guard bytes.count >= 7 && bytes.count <= 15 else { return nil }
        var value: UInt32 = 0, part: UInt32 = 0, digits = 0, dots = 0
        for byte in bytes {
            let digit = byte &- NetSyntax.zero
            if digit < 10 {
                if digits == 1 && part == 0 { return nil }  // a leading zero
                part = part * 10 + UInt32(digit)
                digits += 1
                if part > 255 { return nil }
            } else if byte == NetSyntax.dot && digits > 0 && dots < 3 {
                value = value << 8 | part
                part = 0; digits = 0; dots += 1
            } else {
                return nil
            }
        }
        guard dots == 3 && digits > 0 else { return nil }
        return value << 8 | part
    }

    /// Parses a dotted quad from `start` to the end of `bytes`. `embedded` means it is the
    /// tail of an IPv6 address, which only changes the wording of errors.
    static func parseV4(_ bytes: NetBytes, from start: Int, embedded: Bool) throws(NetParseFailure) -> UInt32 {
        let context = embedded ? "embedded IPv4 address" : "IPv4 address"
        var index = start
        var value: UInt32 = 0
        var numbers = 0
        while true {
            let numberStart = index
            let (number, end) = NetSyntax.scanDecimal(bytes, from: index, limit: 255)
            index = end
            if index == numberStart {
                if index == bytes.count {
                    throw NetParseFailure("an IPv4 address cannot end with '.'", at: index - 1)
                }
                if bytes[index] == NetSyntax.dot {
                    throw NetParseFailure("missing number before '.' in \(context)", at: index)
                }
                throw .unexpected(at: index, in: context)
            }
            if index - numberStart > 1 && bytes[numberStart] == NetSyntax.zero {
                let hint = number <= 255 ? "; write \(number)" : ""
                let digits = NetSyntax.text(bytes, numberStart..<index)
                throw NetParseFailure(
                    "ambiguous leading zero in '\(digits)' (some tools read it as octal)\(hint)", at: numberStart)
            }
            if number > 255 {
                let digits = NetSyntax.text(bytes, numberStart..<index)
                throw NetParseFailure("'\(digits)' is out of range for an IPv4 address part (0-255)", at: numberStart)
            }
            value = value << 8 | UInt32(number)
            numbers += 1
            if index == bytes.count { break }
            switch bytes[index] {
            case NetSyntax.dot where numbers < 4:
                index += 1
            case NetSyntax.dot:
                throw NetParseFailure("too many parts: an IPv4 address has 4 numbers separated by dots", at: index)
            case NetSyntax.colon where embedded:
                throw NetParseFailure("an embedded IPv4 address must come last in an IPv6 address", at: index)
            default:
                throw .unexpected(at: index, in: context)
            }
        }
        guard numbers == 4 else {
            throw NetParseFailure(
                "incomplete \(context): expected 4 numbers separated by dots, found \(numbers)", at: bytes.count)
        }
        return value
    }

    /// Parses the RFC 4291 section 2.2 text forms.
    static func parseV6(_ bytes: NetBytes) throws(NetParseFailure) -> UInt128 {
        let count = bytes.count
        // Groups before the '::' (all of them when there is none) and after it.
        var head: UInt128 = 0
        var headGroups = 0
        var tail: UInt128 = 0
        var tailGroups = 0
        var gapOffset: Int?
        var index = 0
        if count > 0 && bytes[0] == NetSyntax.colon {
            guard count > 1 && bytes[1] == NetSyntax.colon else {
                throw NetParseFailure("an IPv6 address cannot start with a single ':'", at: 0)
            }
            gapOffset = 0
            index = 2
        }
        while index < count {
            let groupStart = index
            var group: UInt128 = 0
            while index < count, let digit = NetSyntax.hexDigit(bytes[index]) {
                group = group << 4 | UInt128(digit)
                index += 1
            }
            let digits = index - groupStart
            var width = 16
            if index < count && bytes[index] == NetSyntax.dot {
                // An embedded IPv4 address fills the last 32 bits.
                group = UInt128(try parseV4(bytes, from: groupStart, embedded: true))
                width = 32
                index = count
            } else if digits == 0 {
                if bytes[index] == NetSyntax.colon {
                    // Only reachable right after a '::'.
                    throw NetParseFailure("':::' is not valid in an IPv6 address", at: index - 2)
                }
                throw .unexpected(at: index, in: "IPv6 address")
            } else if digits > 4 {
                let text = NetSyntax.text(bytes, groupStart..<index)
                throw NetParseFailure("'\(text)' has more than 4 hex digits; an IPv6 group is 16 bits", at: groupStart)
            }
            if (headGroups + tailGroups) * 16 + width > 128 {
                throw NetParseFailure("too many groups: an IPv6 address has 8", at: groupStart)
            }
            if gapOffset == nil {
                head = head << width | group
                headGroups += width / 16
            } else {
                tail = tail << width | group
                tailGroups += width / 16
            }
            if index == count { break }
            guard bytes[index] == NetSyntax.colon else { throw .unexpected(at: index, in: "IPv6 address") }
            if index + 1 < count && bytes[index + 1] == NetSyntax.colon {
                if gapOffset != nil {
                    throw NetParseFailure("'::' may appear only once in an IPv6 address", at: index)
                }
                gapOffset = index
                index += 2
            } else {
                index += 1
                if index == count {
                    throw NetParseFailure("an IPv6 address cannot end with a single ':'", at: index - 1)
                }
            }
        }
        let groups = headGroups + tailGroups
        guard let gapOffset else {
            guard groups == 8 else {
                throw NetParseFailure(
                    "IPv6 address has \(groups) groups; expected 8, or '::' for the zero groups", at: 0)
            }
            return head
        }
        guard groups < 8 else {
            throw NetParseFailure("'::' must stand for at least one zero group, but there are already 8", at: gapOffset)
        }
        // Smart shift: shifting by 128 when there is no head yields 0, as wanted.
        return head << (16 * (8 - headGroups)) | tail
    }
}

// MARK: - Formatting

extension IPAddress {
    static func formatV4(_ value: UInt32) -> String {
        String(unsafeUninitializedCapacity: 15) { buffer in writeDottedQuad(value, into: buffer, at: 0) }
    }

    static func formatV6(_ value: UInt128) -> String {
        let word = { (index: Int) -> UInt16 in UInt16(truncatingIfNeeded: value >> (16 * (7 - index))) }
        // Longest run of zero groups (first one wins a tie), as RFC 5952 section 4.2 says.
        var bestStart = -1
        var bestLength = 0
        var runStart = -1
        for index in 0..<8 {
            guard word(index) == 0 else {
                runStart = -1
                continue
            }
            if runStart < 0 { runStart = index }
            if index - runStart + 1 > bestLength {
                bestStart = runStart
                bestLength = index - runStart + 1
            }
        }
        if bestLength < 2 {  // a lone zero group is written as 0
            bestStart = -1
            bestLength = 0
        }
        // glibc inet_ntop (which nft uses) writes a dotted tail for ::ffff:a.b.c.d and for
        // ::a.b.c.d when the zero run is exactly six groups long.
        let dottedTail = bestStart == 0 && (bestLength == 6 || (bestLength == 5 && word(5) == 0xffff))
        return String(unsafeUninitializedCapacity: 46) { buffer in
            var length = 0
            var index = 0
            while index < 8 {
                if index == bestStart {
                    buffer[length] = NetSyntax.colon
                    buffer[length + 1] = NetSyntax.colon
                    length += 2
                    index += bestLength
                    continue
                }
                if index > 0 && index != bestStart + bestLength {  // no ':' right after '::'
                    buffer[length] = NetSyntax.colon
                    length += 1
                }
                if dottedTail && index == 6 {
                    length = writeDottedQuad(UInt32(truncatingIfNeeded: value), into: buffer, at: length)
                    break
                }
                let group = word(index)
                var started = false
                for shift in stride(from: 12, through: 0, by: -4) {
                    let nibble = UInt8(truncatingIfNeeded: group >> UInt16(shift) & 0xf)
                    if nibble != 0 || started || shift == 0 {
                        buffer[length] = nibble < 10 ? NetSyntax.zero + nibble : UInt8(ascii: "a") + nibble - 10
                        length += 1
                        started = true
                    }
                }
                index += 1
            }
            return length
        }
    }

    /// Writes `a.b.c.d` at `start`; returns the new end.
    private static func writeDottedQuad(
        _ value: UInt32, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int
    ) -> Int {
        var length = start
        for shift in stride(from: 24, through: 0, by: -8) {
            if shift != 24 {
                buffer[length] = NetSyntax.dot
                length += 1
            }
            let number = UInt8(truncatingIfNeeded: value >> shift)
            if number >= 100 {
                buffer[length] = NetSyntax.zero + number / 100
                length += 1
            }
            if number >= 10 {
                buffer[length] = NetSyntax.zero + number / 10 % 10
                length += 1
            }
            buffer[length] = NetSyntax.zero + number % 10
            length += 1
        }
        return length
    }
}
