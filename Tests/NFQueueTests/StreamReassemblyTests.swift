import Testing
@testable import NFQueue

/// A segment as the tables write it: where it starts in the stream, and its bytes as text.
private struct Piece: Sendable {
    var offset: Int
    var text: String
}

private func at(_ offset: Int, _ text: String) -> Piece { Piece(offset: offset, text: text) }

/// A reassembly fed `pieces` in the order given.
private func reassembled(_ pieces: [Piece], limit: Int = 64) -> StreamReassembly {
    var stream = StreamReassembly(limit: limit)
    for piece in pieces { stream.insert(offset: piece.offset, ArraySlice(piece.text.utf8)) }
    return stream
}

private func text(_ stream: StreamReassembly) -> String { String(decoding: stream.bytes, as: UTF8.self) }

struct ReassemblyCase: Sendable, CustomTestStringConvertible {
    let name: String
    fileprivate let pieces: [Piece]
    let limit: Int
    let bytes: String
    let overflowed: Bool

    fileprivate init(_ name: String, _ pieces: [Piece], limit: Int = 64, _ bytes: String, overflowed: Bool = false) {
        self.name = name
        self.pieces = pieces
        self.limit = limit
        self.bytes = bytes
        self.overflowed = overflowed
    }

    var testDescription: String { name }
}

@Suite("TCP stream reassembly")
struct StreamReassemblyTests {
    static let cases: [ReassemblyCase] = [
        // In order.
        ReassemblyCase("one segment", [at(0, "hello")], "hello"),
        ReassemblyCase("segments in order", [at(0, "hel"), at(3, "lo "), at(6, "world")], "hello world"),
        ReassemblyCase("empty segment is nothing", [at(0, ""), at(0, "ab"), at(2, "")], "ab"),
        ReassemblyCase("nothing yet", [], ""),
        // Out of order: later bytes wait for the gap before them.
        ReassemblyCase("gap never filled", [at(3, "def")], ""),
        ReassemblyCase("gap filled last", [at(3, "def"), at(0, "abc")], "abcdef"),
        ReassemblyCase("two waiting, filled from the front", [at(6, "ghi"), at(3, "def"), at(0, "abc")], "abcdefghi"),
        ReassemblyCase("waiting past a remaining gap", [at(6, "ghi"), at(0, "abc")], "abc"),
        // Duplicates.
        ReassemblyCase("same segment twice", [at(0, "abc"), at(0, "abc")], "abc"),
        ReassemblyCase("waiting segment twice", [at(3, "def"), at(3, "def"), at(0, "abc")], "abcdef"),
        ReassemblyCase("old segment after more arrived", [at(0, "abc"), at(3, "def"), at(0, "abc")], "abcdef"),
        // Overlaps: bytes already read are kept, only what lies past them is added.
        ReassemblyCase("overlap extends the stream", [at(0, "abcd"), at(2, "cdef")], "abcdef"),
        ReassemblyCase("segment inside what was read", [at(0, "abcdef"), at(2, "cd")], "abcdef"),
        ReassemblyCase("longer retransmission from the start", [at(0, "ab"), at(0, "abcd")], "abcd"),
        ReassemblyCase("first bytes win over different retransmitted ones", [at(0, "abcd"), at(2, "XXef")], "abcdef"),
        ReassemblyCase("waiting segments overlapping each other", [at(3, "defg"), at(5, "fghij"), at(0, "abc")], "abcdefghij"),
        ReassemblyCase("waiting segment overlapping the filler", [at(4, "efgh"), at(0, "abcdef")], "abcdefgh"),
        ReassemblyCase("waiting segment covered by the filler", [at(2, "cd"), at(0, "abcdef")], "abcdef"),
        // Before offset 0 (data on a SYN, a sequence jump back): only the part from 0 on counts.
        ReassemblyCase("starts before the stream", [at(-2, "xxab"), at(2, "cd")], "abcd"),
        ReassemblyCase("ends before the stream", [at(-5, "xyz"), at(0, "ab")], "ab"),
        ReassemblyCase("ends exactly at the stream start", [at(-3, "xyz")], ""),
        // The limit.
        ReassemblyCase("exactly the limit", [at(0, "abcdefgh")], limit: 8, "abcdefgh"),
        ReassemblyCase("one segment past the limit", [at(0, "abcdefghij")], limit: 8, "abcdefgh", overflowed: true),
        ReassemblyCase("a later segment past the limit", [at(0, "abcdef"), at(6, "ghij")], limit: 8, "abcdefgh", overflowed: true),
        ReassemblyCase("a segment wholly past the limit", [at(0, "abcdefgh"), at(8, "i")], limit: 8, "abcdefgh", overflowed: true),
        ReassemblyCase("waiting segment cut at the limit", [at(6, "ghij"), at(0, "abcdef")], limit: 8, "abcdefgh", overflowed: true),
        ReassemblyCase("waiting segment wholly past the limit", [at(9, "j"), at(0, "abcdefgh")], limit: 8, "abcdefgh", overflowed: true),
    ]

    @Test("segments give the stream", arguments: cases)
    func reassembles(_ c: ReassemblyCase) {
        let stream = reassembled(c.pieces, limit: c.limit)
        #expect(text(stream) == c.bytes)
        #expect(stream.overflowed == c.overflowed)
    }

    static let orders: [[Int]] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]

    @Test("three pieces in any order give the same bytes", arguments: orders)
    func anyOrder(_ order: [Int]) {
        let pieces = [at(0, "GET / HT"), at(8, "TP/1.1\r\nHost: a."), at(24, "example\r\n\r\n")]
        let stream = reassembled(order.map { pieces[$0] })
        #expect(text(stream) == "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        #expect(!stream.overflowed)
    }

    @Test("bytes become readable only when the gap before them fills", arguments: orders)
    func readableWhenGapFills(_ order: [Int]) {
        let pieces = [at(0, "ab"), at(2, "cd"), at(4, "ef")]
        var stream = StreamReassembly(limit: 64)
        var seen: [Int] = []
        for index in order {
            stream.insert(offset: pieces[index].offset, ArraySlice(pieces[index].text.utf8))
            seen.append(stream.bytes.count)
        }
        // After each insert, the readable length is the longest prefix of pieces that arrived.
        let expected = order.indices.map { step in
            let arrived = Set(order[...step])
            return 2 * (0..<3).prefix { arrived.contains($0) }.count
        }
        #expect(seen == expected)
    }

    @Test("at most maxPendingSegments wait; one more marks the stream overflowed")
    func tooManyPending() {
        let limit = 1000
        let max = StreamReassembly.maxPendingSegments
        // One byte every other offset, so none of them can be read before offset 0 arrives.
        let waiting = (1...max).map { at(2 * $0, "w") }
        let full = reassembled(waiting, limit: limit)
        #expect(!full.overflowed)
        #expect(full.bytes.isEmpty)

        let over = reassembled(waiting + [at(2 * (max + 1), "x")], limit: limit)
        #expect(over.overflowed)

        // The segments that did wait are still read once the gap fills.
        let filled = reassembled(waiting + [at(0, "ab")], limit: limit)
        #expect(text(filled) == "abw")
        #expect(!filled.overflowed)
    }

    @Test("a segment that fills a gap is never refused for the pending count")
    func fillerAlwaysFits() {
        let max = StreamReassembly.maxPendingSegments
        let waiting = (1...max).map { at(2 * $0 + 1, "w") }
        let stream = reassembled(waiting + [at(0, "abc")], limit: 1000)
        #expect(text(stream) == "abcw")
        #expect(!stream.overflowed)
    }

    @Test("overlaps that disagree are flagged, in place or while pending", arguments: [
        ([at(0, "hello"), at(3, "LO world")], true),
        ([at(0, "hello"), at(3, "lo world")], false),
        ([at(6, "world"), at(8, "RLD!"), at(0, "hello ")], true),
        ([at(6, "world"), at(8, "rld!"), at(0, "hello ")], false),
        ([at(0, "hello"), at(0, "hellO")], true),
        ([at(0, "hello"), at(0, "hel")], false),
    ] as [([Piece], Bool)])
    fileprivate func conflictingOverlaps(_ pieces: [Piece], conflicted: Bool) {
        #expect(reassembled(pieces).conflicted == conflicted)
    }
}
