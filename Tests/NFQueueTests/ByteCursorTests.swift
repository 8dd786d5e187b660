import Testing
@testable import NFQueue

@Suite("ByteCursor over a borrowed buffer")
struct ByteCursorTests {
    /// A slice that does not start at 0, as a packet's payload does.
    private let bytes: ArraySlice<UInt8> = [0xff, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x00, 0x02, 0xaa, 0xbb, 0xcc][2...]

    @Test("reads use the slice's own indices and stop at the cursor's end")
    func reads() {
        var cursor = ByteCursor(bytes.startIndex..<9)
        #expect(cursor.position == 2)
        let values = [cursor.readUInt8(bytes).map(UInt32.init), cursor.readUInt16(bytes).map(UInt32.init), cursor.readUInt24(bytes)]
        #expect(values == [0x01, 0x0203, 0x04_0506])
        let short = cursor.readUInt24(bytes)
        #expect(short == nil)
        #expect(cursor.position == 8)
        var word = ByteCursor(3..<8)
        let value = word.readUInt32(bytes), past = word.readUInt32(bytes)
        #expect(value == 0x0203_0405)
        #expect(past == nil)
        #expect(word.position == 7)
    }

    @Test("a short read consumes nothing", arguments: [1, 2, 3])
    func shortRead(_ width: Int) {
        var cursor = ByteCursor(bytes.startIndex..<(bytes.startIndex + width - 1))
        let value: UInt32? = switch width {
        case 1: cursor.readUInt8(bytes).map(UInt32.init)
        case 2: cursor.readUInt16(bytes).map(UInt32.init)
        default: cursor.readUInt24(bytes)
        }
        #expect(value == nil)
        #expect(cursor.position == bytes.startIndex)
    }

    @Test("length-prefixed fields are capped cursors; a short body consumes nothing")
    func lengthPrefixed() throws {
        var cursor = ByteCursor(8..<bytes.endIndex)
        let prefixed = cursor.readLengthPrefixed16(bytes)
        var field = try #require(prefixed)
        #expect(field.range == 10..<12)
        let inside = field.readUInt16(bytes), past = field.readUInt8(bytes), after = cursor.readUInt8(bytes)
        #expect(inside == 0xaabb)
        #expect(past == nil)
        #expect(after == 0xcc)

        var short = ByteCursor(8..<11)  // declares 2 bytes, holds 1
        let shortField = short.readLengthPrefixed16(bytes)
        #expect(shortField == nil)
        #expect(short.position == 8)
        var eight = ByteCursor(9..<bytes.endIndex)  // 0x02, then 2 bytes
        let sub = eight.readLengthPrefixed8(bytes)
        #expect(sub?.range == 10..<12)
        var wide = ByteCursor(2..<bytes.endIndex)  // 0x010203: far more than there is
        let wideField = wide.readLengthPrefixed24(bytes)
        #expect(wideField == nil)
        #expect(wide.position == 2)
    }

    @Test("readAvailable takes what is there, never more")
    func available() {
        var cursor = ByteCursor(10..<13)
        let first = cursor.readAvailable(upTo: 2), rest = cursor.readAvailable(upTo: 5), none = cursor.readAvailable(upTo: 1)
        #expect([first, rest, none] == [10..<12, 12..<13, 13..<13])
        let skipped = cursor.skip(1)
        #expect(!skipped)
    }
}
