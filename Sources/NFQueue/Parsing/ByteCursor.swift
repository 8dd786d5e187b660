/// The parsers' bounds-checked reader: a read position and limit within a buffer that each
/// read is handed, so hostile length fields can only ever produce "not enough bytes", never
/// an out-of-range index. A read succeeds and advances, or returns nil and leaves the cursor
/// as it was; length-prefixed fields come back as cursors capped at their declared length,
/// which keeps one field from reading into the next. A cursor holds no bytes, so copying one
/// costs no reference counting (the ClientHello parser makes one per field, for every judged
/// flow). Positions are the buffer's own indices; reading a buffer the cursor was not made
/// for traps on the slice's bounds check, never reads stray memory.
struct ByteCursor {
    private(set) var position: Int
    let end: Int

    init(_ range: Range<Int>) {
        position = range.lowerBound
        end = range.upperBound
    }

    /// The unread part.
    var range: Range<Int> { position..<end }
    var remaining: Int { end - position }
    var isAtEnd: Bool { position >= end }

    mutating func readUInt8(_ bytes: ArraySlice<UInt8>) -> UInt8? {
        guard position < end else { return nil }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readUInt16(_ bytes: ArraySlice<UInt8>) -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { position += 2 }
        return UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
    }

    mutating func readUInt24(_ bytes: ArraySlice<UInt8>) -> UInt32? {
        guard remaining >= 3 else { return nil }
        defer { position += 3 }
        return UInt32(bytes[position]) << 16 | UInt32(bytes[position + 1]) << 8 | UInt32(bytes[position + 2])
    }

    mutating func readUInt32(_ bytes: ArraySlice<UInt8>) -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { position += 4 }
        return UInt32(bytes[position]) << 24 | UInt32(bytes[position + 1]) << 16 | UInt32(bytes[position + 2]) << 8 | UInt32(bytes[position + 3])
    }

    @discardableResult
    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, count <= remaining else { return false }
        position += count
        return true
    }

    /// Up to `count` bytes: whatever is there when fewer remain.
    mutating func readAvailable(upTo count: Int) -> Range<Int> {
        let taken = Swift.max(0, Swift.min(count, remaining))
        defer { position += taken }
        return position..<(position + taken)
    }

    /// The next `count` bytes as a cursor of their own, consumed from this one.
    mutating func readCursor(count: Int) -> ByteCursor? {
        guard count >= 0, count <= remaining else { return nil }
        defer { position += count }
        return ByteCursor(position..<(position + count))
    }

    /// A field prefixed by a one-, two- or three-byte big-endian length, as a capped
    /// cursor; all or nothing, so a short body leaves the length unread too.
    mutating func readLengthPrefixed8(_ bytes: ArraySlice<UInt8>) -> ByteCursor? {
        var probe = self
        guard let length = probe.readUInt8(bytes), let field = probe.readCursor(count: Int(length)) else { return nil }
        self = probe
        return field
    }

    mutating func readLengthPrefixed16(_ bytes: ArraySlice<UInt8>) -> ByteCursor? {
        var probe = self
        guard let length = probe.readUInt16(bytes), let field = probe.readCursor(count: Int(length)) else { return nil }
        self = probe
        return field
    }

    mutating func readLengthPrefixed24(_ bytes: ArraySlice<UInt8>) -> ByteCursor? {
        var probe = self
        guard let length = probe.readUInt24(bytes), let field = probe.readCursor(count: Int(length)) else { return nil }
        self = probe
        return field
    }
}
