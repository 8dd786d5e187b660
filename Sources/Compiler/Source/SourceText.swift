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
    private(set) var lines: [Line] = []
    private(set) var diagnostics: [Diagnostic] = []
    /// A `/*` without its `*/`: everything after it was blanked.
    var hasUnterminatedComment: Bool { !diagnostics.isEmpty }

    init(file: String, bytes: [UInt8]) {
        self.file = file
        var cleaned = bytes
        var i = 0
        var line = 1
        var lineStart = 0
        var atTokenStart = true
        var quoted = false
        while i < cleaned.count {
            let b = cleaned[i]
            if b == .newline {
                line += 1; lineStart = i + 1; atTokenStart = true; quoted = false; i += 1; continue
            }
            if b == .quote { quoted.toggle() }
            let next: UInt8? = i + 1 < cleaned.count ? cleaned[i + 1] : nil
            if atTokenStart && !quoted && (b == .hash || (b == .slash && next == .slash)) {
                while i < cleaned.count && cleaned[i] != .newline { cleaned[i] = .space; i += 1 }
                continue
            }
            if atTokenStart && !quoted && b == .slash && next == .star {
                let openLine = line
                let openColumn = 1 + bytes[lineStart..<i].filter { $0 & 0xC0 != 0x80 }.count
                cleaned[i] = .space; cleaned[i + 1] = .space; i += 2
                var closed = false
                while i < cleaned.count {
                    if cleaned[i] == .star && i + 1 < cleaned.count && cleaned[i + 1] == .slash {
                        cleaned[i] = .space; cleaned[i + 1] = .space; i += 2; closed = true; break
                    }
                    if cleaned[i] == .newline { line += 1; lineStart = i + 1 } else { cleaned[i] = .space }
                    i += 1
                }
                if !closed {
                    diagnostics.append(.error(SourceLocation(file: file, line: openLine, column: openColumn),
                                              "unterminated '/*' comment"))
                }
                atTokenStart = true
                continue
            }
            atTokenStart = b == .space || b == .tab || b == .carriageReturn
            i += 1
        }
        var start = 0
        var number = 1
        for (index, b) in cleaned.enumerated() where b == .newline {
            lines.append(Line(number: number, bytes: cleaned[start..<index], original: bytes[start..<index]))
            start = index + 1
            number += 1
        }
        if start < cleaned.count {
            lines.append(Line(number: number, bytes: cleaned[start...], original: bytes[start...]))
        }
    }

    func location(line: Line, byte index: Int) -> SourceLocation {
        let prefix = line.original[line.original.startIndex..<min(index, line.original.endIndex)]
        let column = 1 + prefix.reduce(0) { $0 + ($1 & 0xC0 != 0x80 ? 1 : 0) }
        return SourceLocation(file: file, line: line.number, column: column)
    }
}

extension UInt8 {
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
