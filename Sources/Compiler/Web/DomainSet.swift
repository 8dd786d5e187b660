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
    /// Every entry, normalised (ASCII lowercase, no leading `*.`, no trailing dot), back to back.
    private var bytes: [UInt8] = []
    /// Entry `i` is `bytes[starts[i] ..< starts[i + 1]]`; 32-bit to halve the index.
    private var starts: [UInt32] = [0]
    /// Linear-probing table, at most half full. A slot is `tag << 32 | (entry + 1)`, where
    /// the tag is the upper half of the mixed hash, so most mismatches are rejected
    /// without touching `bytes`; 0 marks an empty slot.
    private var slots: [UInt64] = Array(repeating: 0, count: 16)
    /// Per-set hash seed, so which names collide is not predictable from outside.
    private let seed: UInt64 = .random(in: .min ... .max)

    /// An empty set.
    public init() {}

    /// A set of the given names. Each is normalised (surrounding whitespace trimmed, ASCII
    /// lowercased, a leading `*.` and a trailing dot dropped); empty names are skipped and
    /// duplicates are fine. Names are not validated: `load(contentsOf:)` does that for files.
    public init(_ domains: some Sequence<some StringProtocol>) {
        for domain in domains {
            let name = String(domain)
            let utf8 = name.utf8.span
            var low = 0, high = utf8.count
            while low < high, Self.isSpace(utf8[low]) { low += 1 }
            while high > low, Self.isSpace(utf8[high - 1]) { high -= 1 }
            if let (from, to) = Self.trimDecorations(utf8, low, high) {
                insert(utf8, from, to)
            }
        }
    }

    /// Number of distinct entries.
    public var count: Int { starts.count - 1 }
    public var isEmpty: Bool { count == 0 }

    /// The listed entry that matches `host` or a parent of it, if any, in its normalised
    /// form (lowercase, without `*.`). When several do, the shortest (broadest) one.
    @inlinable
    public func match(_ host: some StringProtocol) -> String? {
        entry(Self.withUTF8(host) { entryIndex($0) })
    }

    /// Same as `match`, for a host name still in wire bytes (TLS SNI, HTTP Host).
    public func match(_ host: Span<UInt8>) -> String? {
        entry(entryIndex(host))
    }

    @inlinable
    public func contains(domainOrParentOf host: some StringProtocol) -> Bool {
        Self.withUTF8(host) { entryIndex($0) } != nil
    }

    public func contains(domainOrParentOf host: Span<UInt8>) -> Bool {
        entryIndex(host) != nil
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
    func entry(_ index: Int?) -> String? {
        guard let index else { return nil }
        return String(decoding: bytes[Int(starts[index]) ..< Int(starts[index + 1])], as: UTF8.self)
    }

    /// Index of the broadest entry equal to `host` (case-insensitive, one trailing dot
    /// ignored) or to one of its parents.
    @usableFromInline
    func entryIndex(_ host: Span<UInt8>) -> Int? {
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

        var hash = seed
        var i = end - 1
        while i >= 0 {
            let byte = Self.lowercased(host[i])
            // At a dot, `hash` covers exactly the parent name to its right.
            if byte == Self.dot, !numeric, let index = find(hash, host, i + 1, end) {
                return index
            }
            hash = Self.step(hash, byte)
            i -= 1
        }
        return find(hash, host, 0, end)
    }

    /// The entry equal to `key[from ..< to]` (compared ASCII-lowercased), given its hash.
    private func find(_ hash: UInt64, _ key: Span<UInt8>, _ from: Int, _ to: Int) -> Int? {
        let mixed = Self.mix(hash)
        let tag = mixed >> 32
        let mask = slots.count - 1
        var position = Int(truncatingIfNeeded: mixed) & mask
        while true {
            let slot = slots[position]
            if slot == 0 { return nil }
            if slot >> 32 == tag {
                let index = Int(truncatingIfNeeded: slot & 0xffff_ffff) - 1
                if equals(index, key, from, to) { return index }
            }
            position = (position + 1) & mask
        }
    }

    private func equals(_ index: Int, _ key: Span<UInt8>, _ from: Int, _ to: Int) -> Bool {
        let start = Int(starts[index])
        guard Int(starts[index + 1]) - start == to - from else { return false }
        for offset in 0 ..< (to - from) where bytes[start + offset] != Self.lowercased(key[from + offset]) {
            return false
        }
        return true
    }

    // MARK: Building

    /// Adds `key[from ..< to]`, lowercased, unless already present.
    mutating func insert(_ key: Span<UInt8>, _ from: Int, _ to: Int) {
        var hash = seed
        for i in stride(from: to - 1, through: from, by: -1) {
            hash = Self.step(hash, Self.lowercased(key[i]))
        }
        if find(hash, key, from, to) != nil { return }

        for i in from ..< to { bytes.append(Self.lowercased(key[i])) }
        precondition(bytes.count <= UInt32.max, "domain list larger than 4 GiB")
        starts.append(UInt32(bytes.count))
        if count * 2 > slots.count {
            grow()
        } else {
            place(count - 1, hash: hash)
        }
    }

    private mutating func place(_ index: Int, hash: UInt64) {
        let mixed = Self.mix(hash)
        let mask = slots.count - 1
        var position = Int(truncatingIfNeeded: mixed) & mask
        while slots[position] != 0 { position = (position + 1) & mask }
        slots[position] = (mixed >> 32) << 32 | UInt64(index + 1)
    }

    /// Doubles the table and re-places every entry (hashes are recomputed from `bytes`
    /// rather than stored, to keep the set at ~8 bytes of table per entry).
    private mutating func grow() {
        slots = Array(repeating: 0, count: slots.count * 2)
        for index in 0 ..< count {
            var hash = seed
            for i in stride(from: Int(starts[index + 1]) - 1, through: Int(starts[index]), by: -1) {
                hash = Self.step(hash, bytes[i])
            }
            place(index, hash: hash)
        }
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
