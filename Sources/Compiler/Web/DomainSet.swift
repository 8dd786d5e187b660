/// A set of domain names where each entry matches itself and all its subdomains,
/// case-insensitively: `example.com` matches `example.com` and `www.example.com`, never
/// `badexample.com`; the entry `ch` matches every name under `.ch`.
///
/// Built for lists of millions of entries. Instead of a `Set<String>` (one heap object
/// per name), all names sit back to back in one byte buffer, found through an
/// open-addressing table of 8-byte slots. The hash of a name is computed from its last
/// byte to its first, so one right-to-left pass over a queried host yields the hash of
/// every parent (`com`, `example.com`, `www.example.com`) and a lookup costs one probe per
/// label, whatever the size of the list.
public struct DomainSet: Sendable {
    /// Every distinct entry, normalised (ASCII lowercase, no leading `*.`, no trailing
    /// dot), back to back.
    private var bytes: [UInt8] = []
    /// Linear-probing table, at most half full. A slot is `tag << 40 | length << 32 | offset`
    /// for the entry `bytes[offset ..< offset + length]`; 0 marks an empty slot. The tag
    /// (24 hash bits the position did not use) rejects nearly every mismatch without
    /// touching `bytes`, and a hit costs one more memory access, not two.
    private var slots: [UInt64] = Array(repeating: 0, count: 16)
    /// Number of distinct entries.
    public private(set) var count = 0
    /// Per-set hash seed, so which names collide is not predictable from outside.
    private let seed: UInt64 = .random(in: .min ... .max)

    /// An empty set.
    public init() {}

    /// A set of the given names. Each is normalised (surrounding whitespace trimmed, ASCII
    /// lowercased, a leading `*.` and a trailing dot dropped); empty names and names
    /// longer than 253 bytes are skipped, duplicates are fine. Names are not otherwise
    /// validated: `load(contentsOf:)` does that for files.
    public init(_ domains: some Sequence<some StringProtocol>) {
        var builder = Builder()
        for domain in domains {
            let name = String(domain)
            let utf8 = name.utf8.span
            var low = 0, high = utf8.count
            while low < high, Self.isSpace(utf8[low]) { low += 1 }
            while high > low, Self.isSpace(utf8[high - 1]) { high -= 1 }
            if let (from, to) = Self.trimDecorations(utf8, low, high) {
                builder.append(utf8, from, to)
            }
        }
        self.init(indexing: consume builder)
    }

    public var isEmpty: Bool { count == 0 }

    /// The listed entry that matches `host` or a parent of it, if any, in its normalised
    /// form (lowercase, without `*.`). When several do, the shortest (broadest) one.
    @inlinable
    public func match(_ host: some StringProtocol) -> String? {
        entry(Self.withUTF8(host) { lookup($0) })
    }

    /// Same as `match`, for a host name still in wire bytes (TLS SNI, HTTP Host).
    public func match(_ host: Span<UInt8>) -> String? {
        entry(lookup(host))
    }

    @inlinable
    public func contains(domainOrParentOf host: some StringProtocol) -> Bool {
        Self.withUTF8(host) { lookup($0) } != nil
    }

    public func contains(domainOrParentOf host: Span<UInt8>) -> Bool {
        lookup(host) != nil
    }

    // MARK: Lookup

    /// Avoids copying the common concrete types; specialised away in callers.
    @inlinable
    static func withUTF8<R>(_ host: some StringProtocol, _ body: (Span<UInt8>) -> R) -> R {
        if let string = host as? String { return body(string.utf8.span) }
        if let substring = host as? Substring { return body(substring.utf8.span) }
        let string = String(host)
        return body(string.utf8.span)
    }

    @usableFromInline
    func entry(_ slot: UInt64?) -> String? {
        guard let slot else { return nil }
        let offset = Int(truncatingIfNeeded: slot & 0xffff_ffff)
        return String(decoding: bytes[offset ..< offset + Self.length(slot)], as: UTF8.self)
    }

    /// The slot of the broadest entry equal to `host` (case-insensitive, one trailing dot
    /// ignored) or to one of its parents.
    @usableFromInline
    func lookup(_ host: Span<UInt8>) -> UInt64? {
        var end = host.count
        if end > 0, host[end - 1] == Self.dot { end -= 1 }
        guard end > 0 else { return nil }

        // A numeric last label means an IPv4 literal (no top-level domain is all digits):
        // `1.2.3.4` must not match an entry `3.4`, only a verbatim `1.2.3.4`. IPv6
        // literals contain ':', which no entry can, so they never match.
        var lastDot = end - 1
        while lastDot >= 0, host[lastDot] != Self.dot { lastDot -= 1 }
        var numeric = true
        for i in (lastDot + 1) ..< end where !Self.isDigit(host[i]) { numeric = false }

        // Candidates are collected right to left (`com`, `example.com`, ...), and the first
        // slot of each batch of candidates is read before any is examined: those reads are
        // independent cache misses, so they overlap instead of queueing one per label.
        var froms = InlineArray<8, Int>(repeating: 0)
        var mixed = InlineArray<8, UInt64>(repeating: 0)
        var firstSlots = InlineArray<8, UInt64>(repeating: 0)
        var pending = 0
        let mask = slots.count - 1
        var hash = seed
        var i = end - 1
        while true {
            // At a dot (and at the start), `hash` covers exactly the name to its right.
            if i < 0 || (!numeric && host[i] == Self.dot) {
                let m = Self.mix(hash)
                froms[pending] = i + 1
                mixed[pending] = m
                firstSlots[pending] = slots[Int(truncatingIfNeeded: m) & mask]
                pending += 1
                if pending == 8 || i < 0 {
                    for j in 0 ..< pending where firstSlots[j] != 0 {
                        if let slot = find(mixed[j], host, froms[j], end).slot { return slot }
                    }
                    pending = 0
                }
                if i < 0 { return nil }
            }
            hash = Self.step(hash, Self.lowercased(host[i]))
            i -= 1
        }
    }

    /// Probes for `key[from ..< to]` (compared ASCII-lowercased) given its mixed hash:
    /// the matching slot if present, and the position it occupies or would occupy.
    private func find(_ mixed: UInt64, _ key: Span<UInt8>, _ from: Int, _ to: Int) -> (slot: UInt64?, position: Int) {
        let tag = mixed >> 40
        let length = to - from
        let mask = slots.count - 1
        var position = Int(truncatingIfNeeded: mixed) & mask
        while true {
            let slot = slots[position]
            if slot == 0 { return (nil, position) }
            if slot >> 40 == tag, Self.length(slot) == length {
                let offset = Int(truncatingIfNeeded: slot & 0xffff_ffff)
                var equal = true
                for k in 0 ..< length where bytes[offset + k] != Self.lowercased(key[from + k]) {
                    equal = false
                    break
                }
                if equal { return (slot, position) }
            }
            position = (position + 1) & mask
        }
    }

    @inline(__always)
    private static func length(_ slot: UInt64) -> Int { Int(truncatingIfNeeded: (slot >> 32) & 0xff) }

    // MARK: Building

    /// Collects entries first and indexes them once at the end: with the final size known
    /// the table is never rehashed, which is most of the cost of a growing table.
    struct Builder {
        /// Entries, lowercased, back to back; duplicates included until indexing.
        fileprivate var bytes: [UInt8] = []
        fileprivate var lengths: [UInt8] = []

        /// Adds `text[from ..< to]`, lowercased; empty names and names over 253 bytes
        /// (no host can have them) are skipped.
        mutating func append(_ text: Span<UInt8>, _ from: Int, _ to: Int) {
            guard to > from, to - from <= 253 else { return }
            for i in from ..< to { bytes.append(DomainSet.lowercased(text[i])) }
            lengths.append(UInt8(to - from))
        }
    }

    init(indexing builder: consuming Builder) {
        let lengths = builder.lengths
        bytes = builder.bytes
        builder = Builder()  // so `bytes` is uniquely referenced and compacts without a copy
        // Offsets are 32-bit to fit in a slot.
        precondition(bytes.count <= UInt32.max, "domain list larger than 4 GiB")
        var capacity = 16
        while capacity < lengths.count * 2 { capacity *= 2 }
        slots = Array(repeating: 0, count: capacity)

        // Duplicates are dropped by compacting `bytes` in place: each new entry moves
        // down to `write`, which never passes `read`.
        var read = 0, write = 0
        for length in lengths {
            let length = Int(length)
            var hash = seed
            for i in stride(from: read + length - 1, through: read, by: -1) {
                hash = Self.step(hash, bytes[i])
            }
            let mixed = Self.mix(hash)
            let (existing, position) = find(mixed, bytes.span, read, read + length)
            if existing == nil {
                if write != read {
                    for k in 0 ..< length { bytes[write + k] = bytes[read + k] }
                }
                slots[position] = (mixed >> 40) << 40 | UInt64(length) << 32 | UInt64(write)
                write += length
                count += 1
            }
            read += length
        }
        bytes.removeSubrange(write...)
    }

    // MARK: Bytes

    static let dot = UInt8(ascii: ".")
    static let star = UInt8(ascii: "*")

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || (byte >= 0x09 && byte <= 0x0d)  // space, \t \n \v \f \r
    }

    /// Drops a leading `*.` and one trailing dot; nil when nothing is left.
    static func trimDecorations(_ text: Span<UInt8>, _ from: Int, _ to: Int) -> (Int, Int)? {
        var from = from, to = to
        if to - from >= 2, text[from] == star, text[from + 1] == dot { from += 2 }
        if to > from, text[to - 1] == dot { to -= 1 }
        return to > from ? (from, to) : nil
    }

    /// FNV-1a step: cheap per byte; `mix` makes up for its weak low bits.
    @inline(__always)
    static func step(_ hash: UInt64, _ byte: UInt8) -> UInt64 {
        (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }

    /// MurmurHash3's 64-bit finaliser: spreads every input bit over the slot index and tag.
    @inline(__always)
    static func mix(_ hash: UInt64) -> UInt64 {
        var h = hash
        h ^= h >> 33
        h &*= 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h &*= 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }
}
