/// A CIDR block: an address whose host bits are zero, and a prefix length. A single
/// address is a block with a full-length prefix (/32 or /128).
public struct AddressBlock: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    // One byte, in the address's tail padding: a stride of 24 bytes rather than 32 (a policy
    // can list a million of them).
    private let storedPrefixLength: UInt8
    public var prefixLength: Int { Int(storedPrefixLength) }

    /// The block holding just `address`.
    public init(_ address: IPAddress) {
        self.address = address
        storedPrefixLength = UInt8(address.family.bitWidth)
    }

    /// nil when the prefix is out of range for the family or host bits are set.
    public init?(address: IPAddress, prefixLength: Int) {
        guard (0...address.family.bitWidth).contains(prefixLength),
              address.value & Self.hostMask(address.family, prefixLength) == 0
        else { return nil }
        self.address = address
        storedPrefixLength = UInt8(prefixLength)
    }

    private init(unchecked address: IPAddress, prefixLength: Int) {
        self.address = address
        storedPrefixLength = UInt8(prefixLength)
    }

    /// "10.0.0.5" (a /32), "10.0.0.0/8", "2001:db8::/32", "::1/128". The prefix must be
    /// decimal and the host bits zero; the error for `10.0.0.1/8` suggests `10.0.0.0/8`.
    @inlinable
    public static func parse(_ text: some StringProtocol) throws(ValueError) -> AddressBlock {
        try parseNetText(text, parse(bytes:))
    }

    /// Each of `items` (UTF-8 offsets into `text`) parsed as `parse` would, in order.
    static func parse(items: [Range<Int>], of text: String, _ each: (Int, Result<AddressBlock, ValueError>) -> Void) {
        parseNetItems(text, items, parse(bytes:), each)
    }

    @usableFromInline
    static func parse(bytes: NetBytes) throws(NetParseFailure) -> AddressBlock {
        // The common case first, in one pass: a plain dotted quad ("10.1.2.3"). Anything
        // else, wrong ones included, takes the full parser and its messages.
        if let value = IPAddress.plainDottedQuad(bytes) { return AddressBlock(unchecked: IPAddress(v4: value), prefixLength: 32) }
        if let dash = bytes.firstIndex(of: NetSyntax.dash), dash < (bytes.firstIndex(of: NetSyntax.slash) ?? bytes.count) {
            // Neither notation has a '-'; a range gets its own message (and the CIDR it equals, if any).
            let range = try AddressRange.parse(bytes: bytes)
            let blocks = Compiler.blocks(of: range)
            if blocks.count == 1 {
                throw NetParseFailure("write the range '\(NetSyntax.text(bytes))' as the CIDR block \(blocks[0])", at: 0)
            }
            throw NetParseFailure(
                "address ranges are not accepted here; write addresses or CIDR blocks (this range is \(blocks.count) blocks)", at: dash)
        }
        guard let slash = bytes.firstIndex(of: NetSyntax.slash) else {
            return AddressBlock(try IPAddress.parse(bytes: bytes))
        }
        if slash == 0 { throw NetParseFailure("missing address before '/'", at: 0) }
        let address = try IPAddress.parse(bytes: NetSyntax.slice(bytes, 0..<slash))
        let family = address.family
        let prefixStart = slash + 1
        guard prefixStart < bytes.count else {
            throw NetParseFailure("missing prefix length after '/'", at: prefixStart)
        }
        let (length, end) = NetSyntax.scanDecimal(bytes, from: prefixStart, limit: 999)
        guard end == bytes.count else {
            let prefixText = NetSyntax.text(bytes, prefixStart..<bytes.count)
            // A netmask gets a pointed hint rather than a bare "not a number".
            if family == .v4, let mask = try? IPAddress.parse(bytes: NetSyntax.slice(bytes, prefixStart..<bytes.count)),
               mask.family == .v4, let maskLength = Self.prefixLength(ofNetmask: mask.value) {
                throw NetParseFailure(
                    "write the netmask '\(prefixText)' as a prefix length: /\(maskLength)", at: prefixStart)
            }
            throw NetParseFailure("prefix length must be a decimal number, found '\(prefixText)'", at: prefixStart)
        }
        guard length <= family.bitWidth else {
            let prefixText = NetSyntax.text(bytes, prefixStart..<bytes.count)
            throw NetParseFailure(
                "prefix /\(prefixText) is too long for an \(family) address (at most /\(family.bitWidth))",
                at: slash)
        }
        let hostMask = Self.hostMask(family, length)
        guard address.value & hostMask == 0 else {
            let network = IPAddress(family: family, value: address.value & ~hostMask)
            throw NetParseFailure(
                "host bits set in '\(NetSyntax.text(bytes))' (did you mean \(network)/\(length)?)", at: slash)
        }
        return AddressBlock(unchecked: address, prefixLength: length)
    }

    /// Bits of the family's width below the prefix.
    static func hostMask(_ family: IPFamily, _ prefixLength: Int) -> UInt128 {
        // A smart shift: a full-length prefix shifts everything out, leaving 0.
        family.maxValue >> prefixLength
    }

    /// The prefix length of a contiguous IPv4 netmask such as 255.255.0.0, else nil.
    static func prefixLength(ofNetmask mask: UInt128) -> Int? {
        let mask32 = UInt32(truncatingIfNeeded: mask)
        let length = (~mask32).leadingZeroBitCount  // leading one bits
        return hostMask(.v4, length) == UInt128(~mask32) ? length : nil
    }

    public var first: IPAddress { address }

    public var last: IPAddress {
        IPAddress(family: address.family, value: address.value | Self.hostMask(address.family, prefixLength))
    }

    public var range: AddressRange { AddressRange(first: first, last: last) }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == address.family && other.value & ~Self.hostMask(address.family, prefixLength) == address.value
    }

    /// "10.0.0.0/8", or the bare address for a full-length prefix, as nft prints them.
    public var description: String {
        prefixLength == address.family.bitWidth ? address.description : "\(address)/\(prefixLength)"
    }
}

/// A closed range of addresses of one family, `first <= last`.
public struct AddressRange: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    // The family once and each bound as two 64-bit halves: 33 bytes, a stride of 40, where
    // two `IPAddress`es would take 48 (the compiler sweeps ranges by the million).
    private var firstHigh: UInt64, firstLow: UInt64
    private var lastHigh: UInt64, lastLow: UInt64
    public let family: IPFamily

    public var first: IPAddress {
        get { IPAddress(family: family, value: UInt128(firstHigh) << 64 | UInt128(firstLow)) }
        set {
            precondition(newValue.family == family, "an \(newValue.family) address in an \(family) range")
            (firstHigh, firstLow) = Self.halves(newValue.value)
        }
    }

    public var last: IPAddress {
        get { IPAddress(family: family, value: UInt128(lastHigh) << 64 | UInt128(lastLow)) }
        set {
            precondition(newValue.family == family, "an \(newValue.family) address in an \(family) range")
            (lastHigh, lastLow) = Self.halves(newValue.value)
        }
    }

    private static func halves(_ value: UInt128) -> (UInt64, UInt64) {
        (UInt64(truncatingIfNeeded: value >> 64), UInt64(truncatingIfNeeded: value))
    }

    /// Precondition: same family and `first <= last` (a programming error otherwise; parse
    /// user text with `AddressRange.parse`).
    public init(first: IPAddress, last: IPAddress) {
        precondition(first.family == last.family && first <= last, "invalid address range \(first)-\(last)")
        self.init(unchecked: first, last)
    }

    // The coded form predates the halves: `first` and `last` addresses.
    private enum CodingKeys: String, CodingKey { case first, last }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let first = try container.decode(IPAddress.self, forKey: .first), last = try container.decode(IPAddress.self, forKey: .last)
        guard first.family == last.family, first <= last else {
            throw DecodingError.dataCorruptedError(forKey: .last, in: container, debugDescription: "invalid address range \(first)-\(last)")
        }
        self.init(unchecked: first, last)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(first, forKey: .first)
        try container.encode(last, forKey: .last)
    }

    /// Whether the two ranges share an address.
    public func overlaps(_ other: AddressRange) -> Bool {
        family == other.family && first <= other.last && other.first <= last
    }

    public init(_ address: IPAddress) {
        self.init(first: address, last: address)
    }

    /// For results of range arithmetic, which are valid by construction.
    init(unchecked first: IPAddress, _ last: IPAddress) {
        family = first.family
        (firstHigh, firstLow) = Self.halves(first.value)
        (lastHigh, lastLow) = Self.halves(last.value)
    }

    public init(_ block: AddressBlock) {
        self.init(first: block.first, last: block.last)
    }

    public func contains(_ address: IPAddress) -> Bool {
        first <= address && address <= last
    }

    public static func < (a: AddressRange, b: AddressRange) -> Bool {
        a.first != b.first ? a.first < b.first : a.last < b.last
    }

    /// "10.0.0.1-10.0.0.6" as nft writes ranges, or the single address.
    public var description: String { first == last ? first.description : "\(first)-\(last)" }

    /// "10.0.0.1-10.0.0.6", a CIDR block, or a single address.
    @inlinable
    public static func parse(_ text: some StringProtocol) throws(ValueError) -> AddressRange {
        try parseNetText(text, parse(bytes:))
    }

    @usableFromInline
    static func parse(bytes: NetBytes) throws(NetParseFailure) -> AddressRange {
        guard let dash = bytes.firstIndex(of: NetSyntax.dash) else {
            return AddressRange(try AddressBlock.parse(bytes: bytes))
        }
        if dash == 0 { throw NetParseFailure("missing address before '-'", at: 0) }
        if dash + 1 == bytes.count { throw NetParseFailure("missing address after '-'", at: dash + 1) }
        let first = try IPAddress.parse(bytes: NetSyntax.slice(bytes, 0..<dash))
        let last: IPAddress
        do throws(NetParseFailure) {
            last = try IPAddress.parse(bytes: NetSyntax.slice(bytes, dash + 1..<bytes.count))
        } catch {
            throw NetParseFailure(error, shiftedBy: dash + 1)
        }
        guard first.family == last.family else {
            throw NetParseFailure(
                "a range cannot mix an \(first.family) and an \(last.family) address", at: dash + 1)
        }
        guard first <= last else {
            throw NetParseFailure(
                "reversed range '\(NetSyntax.text(bytes))' (did you mean \(last)-\(first)?)", at: 0)
        }
        return AddressRange(first: first, last: last)
    }
}

extension NetParseFailure {
    /// The same failure for text that was parsed from `offset` of a longer input.
    init(_ failure: NetParseFailure, shiftedBy offset: Int) {
        self = failure
        byteOffset += offset
    }
}
