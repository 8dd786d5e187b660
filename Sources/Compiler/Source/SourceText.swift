/// One policy file's text, with comments blanked out so that every remaining byte keeps
/// its line and column. Comment markers count only at the start of a token (line start or
/// after whitespace), so `https://host` and `[^#]` inside values are not comments.
struct SourceText {
    struct Line {
        var number: Int
        /// The line's bytes with comments replaced by spaces.
        var bytes: ArraySlice<UInt8>
        /// The line as written, for column arithmetic.
        var original: ArraySlice<UInt8>
    }

    let file: String
    /// The text as written: the only copy. Lines are slices of it, made as they are read;
    /// a line with a comment gets a blanked copy of its own, so the text is never copied
    /// whole (a policy file can be tens of megabytes of short lines).
    private let text: [UInt8]
    /// Where each line ends: its newline, or the end of the text for a last line without one.
    private let lineEnds: [Int]
    /// The byte ranges of comments, in order.
    private let comments: [Range<Int>]
    private(set) var diagnostics: [Diagnostic] = []
    /// A `/*` without its `*/`: everything after it was blanked.
    var hasUnterminatedComment: Bool { !diagnostics.isEmpty }
    /// The number of the text's first line: 1, or more for a part of a file read again
    /// alone (see `ParseCache`).
    private let firstLine: Int

    init(file: String, bytes: [UInt8], firstLine: Int = 1) {
        self.file = file
        self.firstLine = firstLine
        var scan = Self.scan(bytes.span, file: file, firstLine: firstLine)
        if let unterminated = scan.unterminated {
            diagnostics.append(.error(unterminated, "unterminated '/*' comment"))
        }
        if (scan.newlines.last.map { $0 + 1 } ?? 0) < bytes.count { scan.newlines.append(bytes.count) }
        text = bytes
        lineEnds = scan.newlines
        comments = scan.comments
    }

    /// Whether a `/* … */` comment is anywhere in the text: it may span lines, so a part of
    /// the text cannot be read again alone.
    var hasBlockComment: Bool { comments.contains { text[$0.lowerBound] == .slash && $0.count > 1 && text[$0.lowerBound + 1] == .star } }

    var byteCount: Int { text.count }

    /// The lines in order, each with its comments blanked.
    var lines: Lines { Lines(source: self) }

    struct Lines: Sequence {
        let source: SourceText

        func makeIterator() -> Iterator { Iterator(source: source) }

        struct Iterator: IteratorProtocol {
            let source: SourceText
            private var index = 0
            /// The first comment that does not end before the current line.
            private var comment = 0

            init(source: SourceText) { self.source = source }

            mutating func next() -> Line? {
                guard index < source.lineEnds.count else { return nil }
                let start = index == 0 ? 0 : source.lineEnds[index - 1] + 1, end = source.lineEnds[index]
                index += 1
                let original = source.text[start..<end]
                let comments = source.comments
                while comment < comments.count && comments[comment].upperBound <= start { comment += 1 }
                var cleaned = original
                // Comments are few: most lines share the text's storage; the first write to
                // one with a comment copies that line alone (a slice keeps its indices).
                var each = comment
                while each < comments.count && comments[each].lowerBound < end {
                    for position in Swift.max(comments[each].lowerBound, start)..<Swift.min(comments[each].upperBound, end) { cleaned[position] = .space }
                    each += 1
                }
                return Line(number: index + source.firstLine - 1, bytes: cleaned, original: original)
            }
        }
    }

    /// One pass over the text: where each line ends, the byte ranges of comments, and where
    /// a `/*` without its `*/` opened.
    private static func scan(_ text: Span<UInt8>, file: String, firstLine: Int) -> (newlines: [Int], comments: [Range<Int>], unterminated: SourceLocation?) {
        var newlines: [Int] = [], comments: [Range<Int>] = []
        var unterminated: SourceLocation? = nil
        let count = text.count
        var i = 0
        var lineStart = 0
        var quoted = false
        // Where the last block comment ended: a comment marker right after one starts a word.
        var afterBlock = -1
        // A comment marker counts at the start of a word: at the start of the file or of a
        // line, after a blank, or right after a block comment.
        func atWordStart(_ i: Int) -> Bool {
            if i == 0 || i == afterBlock { return true }
            let before = text[i - 1]
            return before == .newline || before == .space || before == .tab || before == .carriageReturn
        }
        // Only newlines, quotes, `#` and `/` matter here; a megabyte of addresses is mostly
        // other bytes, passed over by this mask test alone.
        let special: UInt64 = 1 << UInt64(UInt8.newline) | 1 << UInt64(UInt8.quote) | 1 << UInt64(UInt8.hash) | 1 << UInt64(UInt8.slash)
        while i < count {
            let b = text[i]
            if b >= 64 || special >> UInt64(b) & 1 == 0 { i += 1; continue }
            switch b {
            case .newline:
                newlines.append(i)
                lineStart = i + 1; quoted = false
            case .quote:
                quoted.toggle()
            case .hash where !quoted && atWordStart(i),
                 .slash where !quoted && i + 1 < count && text[i + 1] == .slash && atWordStart(i):
                let start = i
                while i < count && text[i] != .newline { i += 1 }
                comments.append(start..<i)
                continue  // the newline, if any, is read next
            case .slash where !quoted && i + 1 < count && text[i + 1] == .star && atWordStart(i):
                let start = i, openLine = newlines.count + firstLine, openLineStart = lineStart
                var closed = false
                i += 2
                while i < count {
                    if text[i] == .star && i + 1 < count && text[i + 1] == .slash { i += 2; closed = true; break }
                    if text[i] == .newline { newlines.append(i); lineStart = i + 1 }
                    i += 1
                }
                comments.append(start..<i)
                if !closed {
                    var column = 1
                    for k in openLineStart..<start where text[k] & 0xC0 != 0x80 { column += 1 }
                    unterminated = SourceLocation(file: file, line: openLine, column: column)
                }
                afterBlock = i
                continue
            default:
                break
            }
            i += 1
        }
        return (newlines, comments, unterminated)
    }

    func location(line: Line, byte index: Int) -> SourceLocation {
        let prefix = line.original[line.original.startIndex..<min(index, line.original.endIndex)]
        let column = 1 + prefix.reduce(0) { $0 + ($1 & 0xC0 != 0x80 ? 1 : 0) }
        return SourceLocation(file: file, line: line.number, column: column)
    }
}

extension String.UTF8View {
    /// Whether every byte satisfies `test`, or nil when the text is not all ASCII (the
    /// caller then asks Unicode): names and tags checked by byte.
    func asciiSatisfy(_ test: (UInt8) -> Bool) -> Bool? {
        var all = true
        for byte in self {
            if byte >= 0x80 { return nil }
            if !test(byte) { all = false }
        }
        return all
    }
}

extension UInt8 {
    var isASCIILetterOrDigit: Bool {
        (self >= 0x61 && self <= 0x7a) || (self >= 0x41 && self <= 0x5a) || (self >= 0x30 && self <= 0x39)
    }
    static let dot = UInt8(ascii: ".")
    static let underscore = UInt8(ascii: "_")
    static let hyphen = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let at = UInt8(ascii: "@")
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let hash = UInt8(ascii: "#")
    static let slash = UInt8(ascii: "/")
    static let star = UInt8(ascii: "*")
    static let quote = UInt8(ascii: "\"")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let backslash = UInt8(ascii: "\\")

    var isBlank: Bool { self == .space || self == .tab || self == .carriageReturn }
}
