/// A closed range of TCP/UDP ports, `first <= last`; a single port has `first == last`.
public struct PortRange: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public var first: UInt16
    public var last: UInt16

    /// Precondition: `first <= last` (parse user text with `PortRange.parse`).
    public init(first: UInt16, last: UInt16) {
        precondition(first <= last, "invalid port range \(first)-\(last)")
        self.first = first
        self.last = last
    }

    public init(_ port: UInt16) {
        self.init(first: port, last: port)
    }

    /// Every valid port, 1-65535.
    public static let all = PortRange(first: 1, last: .max)

    public func contains(_ port: UInt16) -> Bool { first <= port && port <= last }

    public static func < (a: PortRange, b: PortRange) -> Bool {
        a.first != b.first ? a.first < b.first : a.last < b.last
    }

    /// "22" or "8000-8100", as nft writes them.
    public var description: String { first == last ? "\(first)" : "\(first)-\(last)" }

    /// "22" or "8000-8100": decimal ports 1-65535, low end first.
    @inlinable
    public static func parse(_ text: some StringProtocol) throws(ValueError) -> PortRange {
        try parseNetText(text, parse(bytes:))
    }

    @usableFromInline
    static func parse(bytes: NetBytes) throws(NetParseFailure) -> PortRange {
        let first = try port(in: bytes, from: 0)
        guard first.end < bytes.count else { return PortRange(first.value) }
        guard bytes[first.end] == NetSyntax.dash else {
            throw .unexpected(at: first.end, in: "port")
        }
        let last = try port(in: bytes, from: first.end + 1)
        guard last.end == bytes.count else {
            throw .unexpected(at: last.end, in: "port range")
        }
        guard first.value <= last.value else {
            throw NetParseFailure(
                "reversed port range '\(NetSyntax.text(bytes))' (did you mean \(last.value)-\(first.value)?)",
                at: 0)
        }
        return PortRange(first: first.value, last: last.value)
    }

    private static func port(in bytes: NetBytes, from start: Int) throws(NetParseFailure) -> (value: UInt16, end: Int) {
        let (number, end) = NetSyntax.scanDecimal(bytes, from: start, limit: Int(UInt16.max))
        guard end > start else {
            if start == bytes.count {
                throw NetParseFailure(start == 0 ? "expected a port number, found nothing" : "missing port after '-'",
                                      at: start)
            }
            if bytes[start] == NetSyntax.dash {
                throw NetParseFailure("missing port before '-'", at: start)
            }
            // Quote the whole word: service names such as 'ssh' are a likely mistake.
            var wordEnd = start
            while wordEnd < bytes.count && bytes[wordEnd] != NetSyntax.dash { wordEnd += 1 }
            throw NetParseFailure(
                "expected a port number, found '\(NetSyntax.text(bytes, start..<wordEnd))'", at: start)
        }
        guard number != 0 else { throw NetParseFailure("port 0 is not a valid port", at: start) }
        guard number <= Int(UInt16.max) else {
            throw NetParseFailure("port \(NetSyntax.text(bytes, start..<end)) is out of range (1-65535)", at: start)
        }
        return (UInt16(number), end)
    }
}
