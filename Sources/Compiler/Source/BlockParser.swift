/// `key: value` inside a block, with the places of both for diagnostics. There is one per
/// line of a policy, held until the directory is checked, so the two places share their
/// file and line: 64 bytes an entry rather than 96 with two whole `SourceLocation`s.
struct RawEntry: Sendable {
    var key: String
    /// The value as written, or the text inside its quotes when it is one quoted string.
    var value: String
    private var file: String
    private var line: Int32
    private var keyColumn: Int32
    private var valueColumn: Int32
    /// The whole value was one quoted string: as a list, it is one item, commas and all.
    /// (Last, where it fits in the padding: the entry stays 64 bytes.)
    var isQuoted: Bool

    var keyLocation: SourceLocation { SourceLocation(file: file, line: Int(line), column: Int(keyColumn)) }

    /// Moved down `lines` lines (up when negative): text above it gained or lost lines.
    mutating func shift(lines: Int) { line += Int32(lines) }
    var valueLocation: SourceLocation { SourceLocation(file: file, line: Int(line), column: Int(valueColumn)) }

    /// Both places are on one line of one file; lines and columns fit 32 bits, as files
    /// are far smaller than 4 GiB (`SourceLimits`).
    init(key: String, keyLocation: SourceLocation, value: String, valueLocation: SourceLocation, isQuoted: Bool = false) {
        precondition(keyLocation.file == valueLocation.file && keyLocation.line == valueLocation.line, "an entry on two lines")
        self.key = key
        self.value = value
        self.isQuoted = isQuoted
        file = keyLocation.file
        line = Int32(keyLocation.line)
        keyColumn = Int32(keyLocation.column)
        valueColumn = Int32(valueLocation.column)
    }
}

/// `[kind] name: { … }` as written, before any key is interpreted.
struct RawBlock: Sendable {
    var kind: String?
    var kindLocation: SourceLocation
    var name: String
    var nameLocation: SourceLocation
    var entries: [RawEntry]

    /// The same block `lines` lines further down its file.
    func shifted(lines: Int) -> RawBlock {
        guard lines != 0 else { return self }
        var out = self
        out.kindLocation.line += lines
        out.nameLocation.line += lines
        for index in out.entries.indices { out.entries[index].shift(lines: lines) }
        return out
    }
}

/// Splits a policy file into blocks. Errors are collected and parsing resumes at the next
/// block, so one run reports every problem in the file.
struct BlockParser {
    private let text: SourceText
    private(set) var blocks: [RawBlock] = []
    /// Where each block of `blocks` stands: from the start of its header's line to the end
    /// of its closing line (its newline included), and its first and last line.
    private(set) var spans: [(bytes: Range<Int>, lines: ClosedRange<Int>)] = []
    private(set) var diagnostics: [Diagnostic] = []
    var hasBlockComment: Bool { text.hasBlockComment }

    /// `firstLine`: the number of the first line of `bytes` (more than 1 for a part of a file).
    init(file: String, bytes: [UInt8], firstLine: Int = 1) {
        text = SourceText(file: file, bytes: bytes, firstLine: firstLine)
        diagnostics = text.diagnostics
        parse()
    }

    private mutating func parse() {
        var open: RawBlock?
        var openLine = 0
        var openStart = 0
        func close(_ block: RawBlock, at line: SourceText.Line) {
            blocks.append(block)
            let end = line.original.endIndex
            spans.append((openStart..<(end < text.byteCount ? end + 1 : end), openLine...line.number))
        }
        // After a header too broken to open a block: skip to its '}' or the next header.
        var skippingBrokenBlock = false
        for line in text.lines {
            var cursor = LineCursor(line: line, text: text)
            cursor.skipBlanks()
            if cursor.atEnd { continue }
            if skippingBrokenBlock {
                if cursor.peek == .closeBrace { skippingBrokenBlock = false; continue }
                if !line.looksLikeHeader { continue }
                skippingBrokenBlock = false
            }
            if open != nil {
                if cursor.peek == .closeBrace {
                    cursor.advance()
                    cursor.skipBlanks()
                    if !cursor.atEnd {
                        diagnostics.append(.error(cursor.location, "unexpected '\(cursor.rest)' after '}'"))
                    }
                    close(open!, at: line)
                    open = nil
                    continue
                }
                if !line.looksLikeHeader {
                    // Appended in place: a copy of the block taken out and put back would
                    // copy its entries at every line (a system can have thousands).
                    if let entry = parseEntry(&cursor) { open!.entries.append(entry) }
                    continue
                }
                // A new header inside a block: the '}' is missing. Keep what the block said,
                // so that its names still resolve, and read the new header.
                let block = open!
                diagnostics.append(.error(block.nameLocation,
                                          "block '\(block.name)' opened on line \(openLine) is never closed (missing '}' before line \(line.number))"))
                close(block, at: line)
                open = nil
            }
            openStart = line.original.startIndex
            openLine = line.number
            switch parseHeader(&cursor) {
            case .block(let block): open = block
            case .closed(let block): close(block, at: line)
            case .broken: skippingBrokenBlock = true
            }
        }
        // An unterminated '/*' already explains a missing '}' (the comment swallowed it).
        if let block = open, !text.hasUnterminatedComment {
            diagnostics.append(.error(block.nameLocation,
                                      "block '\(block.name)' opened on line \(openLine) is never closed (missing '}')"))
            blocks.append(block)
            spans.append((openStart..<text.byteCount, openLine...openLine))
        }
    }

    private enum Header { case block(RawBlock), closed(RawBlock), broken }

    private mutating func parseHeader(_ cursor: inout LineCursor) -> Header {
        var kind: String?
        var kindLocation = cursor.location
        if cursor.peek == .openBracket {
            cursor.advance()
            cursor.skipBlanks()
            kindLocation = cursor.location
            let word = cursor.take { $0 != .closeBracket && !$0.isBlank }
            cursor.skipBlanks()
            guard cursor.peek == .closeBracket, !word.isEmpty else {
                diagnostics.append(.error(kindLocation, "expected a kind word and ']' in a block header, found '\(cursor.line.textTrimmed)'"))
                return .broken
            }
            cursor.advance()
            cursor.skipBlanks()
            kind = word
        }
        let nameLocation = cursor.location
        let name: String
        let quoted = cursor.peek == .quote
        if quoted {
            guard let inside = cursor.takeQuoted() else {
                diagnostics.append(.error(nameLocation, "unterminated quoted name"))
                return .broken
            }
            // Any printable text: the quotes are what set the name apart from the header.
            if let problem = QuotedText.problem(in: inside) {
                diagnostics.append(.error(text.location(line: cursor.line, byte: inside.startIndex + problem.offset), problem.message))
                return .broken
            }
            if inside.isEmpty {
                diagnostics.append(.error(nameLocation, "empty quoted name"))
                return .broken
            }
            name = String(decoding: inside, as: UTF8.self)
        } else {
            name = cursor.take { $0 != .colon && !$0.isBlank && $0 != .openBrace }
        }
        cursor.skipBlanks()
        if name.isEmpty || (kind == nil && cursor.atEnd) {
            // Nothing here reads as a header (a stray word, a lone '}'): quote the line.
            diagnostics.append(.error(kind == nil ? cursor.line.startLocation(text) : nameLocation,
                                      "expected a block '[kind] name: {', found '\(cursor.line.textTrimmed)'"))
            return .broken
        }
        if !quoted && !Self.isValidName(name) {
            diagnostics.append(.error(nameLocation, "bad name '\(name)': use letters, digits, '.', '_', '-', or quote it"))
            return .broken
        }
        let block = RawBlock(kind: kind, kindLocation: kindLocation, name: name, nameLocation: nameLocation, entries: [])
        if cursor.peek == .colon {
            cursor.advance()
            cursor.skipBlanks()
        } else if cursor.peek == .openBrace {
            // `name {`: report the missing ':' and read the block as intended.
            diagnostics.append(.error(cursor.location, "expected ':' after the name '\(name)', found '\(cursor.rest)'"))
        } else {
            diagnostics.append(.error(cursor.location, "expected ':' after the name '\(name)'\(cursor.atEnd ? "" : ", found '\(cursor.rest)'")"))
            return .broken
        }
        if cursor.atEnd {
            // `name:` alone: the '{' is missing; read the lines below as the block's keys.
            diagnostics.append(.error(cursor.location, "expected '{' to open block '\(name)'"))
            return .block(block)
        }
        guard cursor.peek == .openBrace else {
            diagnostics.append(.error(cursor.location, "expected '{' to open block '\(name)', found '\(cursor.rest)'"))
            return .broken
        }
        cursor.advance()
        cursor.skipBlanks()
        var opened = block
        if !cursor.atEnd {
            diagnostics.append(.error(cursor.location, "unexpected '\(cursor.rest)' after '{': put each 'key: value' on its own line"))
            // Keep the entry if it reads as one, so no "needs 'key:'" error follows; a
            // one-line block `{ key: value }` is closed on the same line.
            var line = cursor.line
            let closing = line.bytes.lastIndex { !$0.isBlank }.flatMap { line.bytes[$0] == .closeBrace ? $0 : nil }
            if let closing { line.bytes = line.bytes[..<closing] }
            var rest = LineCursor(line: line, text: text)
            rest.index = cursor.index
            let reported = diagnostics.count
            if !rest.atEnd, let entry = parseEntry(&rest) { opened.entries.append(entry) }
            diagnostics.removeSubrange(reported...)
            if closing != nil { return .closed(opened) }
        }
        return .block(opened)
    }

    private mutating func parseEntry(_ cursor: inout LineCursor) -> RawEntry? {
        let keyLocation = cursor.location
        let key = cursor.take { $0 != .colon && !$0.isBlank }
        cursor.skipBlanks()
        guard !key.isEmpty, cursor.peek == .colon || !cursor.atEnd else {
            diagnostics.append(.error(keyLocation, "expected 'key: value', found '\(cursor.line.textTrimmed)'"))
            return nil
        }
        let valueStart: SourceLocation
        if cursor.peek == .colon {
            cursor.advance()
            valueStart = cursor.location
            cursor.skipBlanks()
        } else {
            // `key value`: report the missing ':' and keep the entry, so nothing else cascades.
            diagnostics.append(.error(cursor.location, "expected ':' after the key '\(key)', found '\(cursor.rest)'"))
            if cursor.peek == UInt8(ascii: "=") { cursor.advance(); cursor.skipBlanks() }  // `key = value`
            valueStart = cursor.location
        }
        let valueLocation = cursor.location
        var value = cursor.restTrimmingTrailingBlanks
        var isQuoted = false
        if value.hasPrefix("\"") {
            var quoted = cursor
            guard let unquoted = quoted.takeQuoted() else {
                diagnostics.append(.error(valueLocation, "unterminated quoted value"))
                return nil
            }
            quoted.skipBlanks()
            if quoted.atEnd {
                value = String(decoding: unquoted, as: UTF8.self)
                isQuoted = true
            } else if quoted.peek != .comma {
                diagnostics.append(.error(quoted.location, "unexpected '\(quoted.rest)' after the quoted value"))
                return nil
            }
            // `"db (primary), east", ops`: a list whose items are split, quotes and all, by
            // the key that reads it (`QuotedText.items`).
        }
        if value.isEmpty {
            diagnostics.append(.error(valueStart, "missing value for '\(key)'"))
            return nil
        }
        return RawEntry(key: key, keyLocation: keyLocation, value: value, valueLocation: valueLocation, isQuoted: isQuoted)
    }

    static func isValidName(_ name: String) -> Bool {
        if let ascii = name.utf8.asciiSatisfy({
            $0.isASCIILetterOrDigit || $0 == .dot || $0 == .underscore || $0 == .hyphen || $0 == .space || $0 == .plus || $0 == .at
        }) { return ascii }
        return name.unicodeScalars.allSatisfy { s in
            s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "." || s == "_" || s == "-" || s == " " || s == "+" || s == "@"
        }
    }
}

/// Reads one cleaned line left to right.
private struct LineCursor {
    let line: SourceText.Line
    let text: SourceText
    var index: Int

    init(line: SourceText.Line, text: SourceText) {
        self.line = line
        self.text = text
        self.index = line.bytes.startIndex
    }

    var atEnd: Bool { index >= line.bytes.endIndex || line.bytes[index...].allSatisfy(\.isBlank) }
    var peek: UInt8? { index < line.bytes.endIndex ? line.bytes[index] : nil }
    var location: SourceLocation { text.location(line: line, byte: index) }
    var rest: String { String(decoding: line.bytes[index...].trimmingBlanks, as: UTF8.self) }
    var restTrimmingTrailingBlanks: String { rest }

    mutating func advance() { index += 1 }

    mutating func skipBlanks() {
        while index < line.bytes.endIndex && line.bytes[index].isBlank { index += 1 }
    }

    mutating func take(while predicate: (UInt8) -> Bool) -> String {
        let start = index
        while index < line.bytes.endIndex && predicate(line.bytes[index]) { index += 1 }
        return String(decoding: line.bytes[start..<index], as: UTF8.self)
    }

    /// The bytes between a '"' and the next one on the line, read from the original bytes so
    /// that comment markers inside survive; nil without a closing '"'. Nothing is an escape
    /// (`QuotedText`).
    mutating func takeQuoted() -> ArraySlice<UInt8>? {
        guard peek == .quote else { return nil }
        let start = index + 1
        guard let close = line.original[start...].firstIndex(of: .quote) else { return nil }
        index = close + 1
        return line.original[start..<close]
    }
}

extension SourceText.Line {
    var textTrimmed: String { String(decoding: bytes.trimmingBlanks, as: UTF8.self) }

    /// Where the line's first non-blank character is.
    func startLocation(_ text: SourceText) -> SourceLocation {
        text.location(line: self, byte: bytes.firstIndex { !$0.isBlank } ?? bytes.startIndex)
    }

    /// `[kind] …` or `name: {`: a block header, even where a '}' is missing before it.
    var looksLikeHeader: Bool {
        // Asked of every line: read in its bytes, without making a string of it.
        let trimmed = bytes.trimmingBlanks
        if trimmed.first == .openBracket { return true }
        guard trimmed.last == .openBrace else { return false }
        return trimmed.dropLast().trimmingBlanks.last == .colon
    }
}

extension StringProtocol {
    /// Trims spaces, tabs and carriage returns (not Unicode whitespace in general). Works on
    /// UTF-8 bytes: the blanks are ASCII, so byte positions are character boundaries.
    var trimmingBlanks: String {
        let text = Substring(self)
        let bytes = text.utf8
        guard let first = bytes.firstIndex(where: { !$0.isBlank }), let last = bytes.lastIndex(where: { !$0.isBlank }) else { return "" }
        return String(text[first...last])
    }
}

extension ArraySlice<UInt8> {
    /// The bytes without leading and trailing spaces, tabs and carriage returns.
    var trimmingBlanks: ArraySlice<UInt8> {
        guard let first = firstIndex(where: { !$0.isBlank }), let last = lastIndex(where: { !$0.isBlank }) else { return self[endIndex...] }
        return self[first...last]
    }
}
