/// `key: value` inside a block, with the places of both for diagnostics.
struct RawEntry: Sendable {
    var key: String
    var keyLocation: SourceLocation
    var value: String
    var valueLocation: SourceLocation
}

/// `[kind] name: { … }` as written, before any key is interpreted.
struct RawBlock: Sendable {
    var kind: String?
    var kindLocation: SourceLocation
    var name: String
    var nameLocation: SourceLocation
    var entries: [RawEntry]
}

/// Splits a policy file into blocks. Errors are collected and parsing resumes at the next
/// block, so one run reports every problem in the file.
struct BlockParser {
    private let text: SourceText
    private(set) var blocks: [RawBlock] = []
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String, bytes: [UInt8]) {
        text = SourceText(file: file, bytes: bytes)
        diagnostics = text.diagnostics
        parse()
    }

    private mutating func parse() {
        var open: RawBlock?
        var openLine = 0
        var skippingBrokenBlock = false
        for line in text.lines {
            var cursor = LineCursor(line: line, text: text)
            cursor.skipBlanks()
            if cursor.atEnd { continue }
            if skippingBrokenBlock {
                if cursor.peek == .closeBrace { skippingBrokenBlock = false }
                continue
            }
            if var block = open {
                if cursor.peek == .closeBrace {
                    cursor.advance()
                    cursor.skipBlanks()
                    if !cursor.atEnd {
                        diagnostics.append(.error(cursor.location, "unexpected '\(cursor.rest)' after '}'"))
                    }
                    blocks.append(block)
                    open = nil
                    continue
                }
                if let entry = parseEntry(&cursor) { block.entries.append(entry) }
                open = block
                continue
            }
            switch parseHeader(&cursor) {
            case .block(let block): open = block; openLine = line.number
            case .broken(let hasBrace): skippingBrokenBlock = hasBrace
            }
        }
        if let block = open {
            diagnostics.append(.error(block.nameLocation,
                                      "block '\(block.name)' opened on line \(openLine) is never closed (missing '}')"))
        }
    }

    private enum Header { case block(RawBlock), broken(hasBrace: Bool) }

    private mutating func parseHeader(_ cursor: inout LineCursor) -> Header {
        let hasBrace = cursor.rest.contains("{")
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
                return .broken(hasBrace: hasBrace)
            }
            cursor.advance()
            cursor.skipBlanks()
            kind = word
        }
        let nameLocation = cursor.location
        let name: String
        if cursor.peek == .quote {
            guard let quoted = cursor.takeQuoted() else {
                diagnostics.append(.error(nameLocation, "unterminated quoted name"))
                return .broken(hasBrace: hasBrace)
            }
            name = quoted
        } else {
            name = cursor.take { $0 != .colon && !$0.isBlank && $0 != .openBrace }
        }
        cursor.skipBlanks()
        if name.isEmpty {
            diagnostics.append(.error(nameLocation, "expected a block '[kind] name: {', found '\(cursor.line.textTrimmed)'"))
            return .broken(hasBrace: hasBrace)
        }
        if !Self.isValidName(name) {
            diagnostics.append(.error(nameLocation, "bad name '\(name)': use letters, digits, '.', '_', '-', or quote it"))
            return .broken(hasBrace: hasBrace)
        }
        guard cursor.peek == .colon else {
            diagnostics.append(.error(cursor.location, "expected ':' after the name '\(name)', found '\(cursor.rest)'"))
            return .broken(hasBrace: hasBrace)
        }
        cursor.advance()
        cursor.skipBlanks()
        guard cursor.peek == .openBrace else {
            diagnostics.append(.error(cursor.location, "expected '{' to open block '\(name)'\(cursor.atEnd ? "" : ", found '\(cursor.rest)'")"))
            return .broken(hasBrace: hasBrace)
        }
        cursor.advance()
        cursor.skipBlanks()
        if !cursor.atEnd {
            diagnostics.append(.error(cursor.location, "unexpected '\(cursor.rest)' after '{': put each 'key: value' on its own line"))
        }
        return .block(RawBlock(kind: kind, kindLocation: kindLocation, name: name, nameLocation: nameLocation, entries: []))
    }

    private mutating func parseEntry(_ cursor: inout LineCursor) -> RawEntry? {
        let keyLocation = cursor.location
        let key = cursor.take { $0 != .colon && !$0.isBlank }
        cursor.skipBlanks()
        guard !key.isEmpty, cursor.peek == .colon else {
            diagnostics.append(.error(keyLocation, "expected 'key: value', found '\(cursor.line.textTrimmed)'"))
            return nil
        }
        cursor.advance()
        cursor.skipBlanks()
        let valueLocation = cursor.location
        var value = cursor.restTrimmingTrailingBlanks
        if value.hasPrefix("\"") {
            var quoted = cursor
            guard let unquoted = quoted.takeQuoted() else {
                diagnostics.append(.error(valueLocation, "unterminated quoted value"))
                return nil
            }
            quoted.skipBlanks()
            if !quoted.atEnd {
                diagnostics.append(.error(quoted.location, "unexpected '\(quoted.rest)' after the quoted value"))
                return nil
            }
            value = unquoted
        }
        if value.isEmpty {
            diagnostics.append(.error(valueLocation, "missing value for '\(key)'"))
            return nil
        }
        return RawEntry(key: key, keyLocation: keyLocation, value: value, valueLocation: valueLocation)
    }

    static func isValidName(_ name: String) -> Bool {
        name.unicodeScalars.allSatisfy { s in
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
    var rest: String { String(decoding: line.bytes[index...], as: UTF8.self).trimmingBlanks }
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

    /// A double-quoted string with `\"` and `\\` escapes, read from the original bytes so
    /// that comment markers inside it survive.
    mutating func takeQuoted() -> String? {
        guard peek == .quote else { return nil }
        var i = index + 1
        var out: [UInt8] = []
        while i < line.original.endIndex {
            let b = line.original[i]
            if b == .backslash, i + 1 < line.original.endIndex {
                out.append(line.original[i + 1]); i += 2; continue
            }
            if b == .quote {
                index = i + 1
                return String(decoding: out, as: UTF8.self)
            }
            out.append(b)
            i += 1
        }
        return nil
    }
}

extension SourceText.Line {
    var textTrimmed: String { String(decoding: bytes, as: UTF8.self).trimmingBlanks }
}

extension StringProtocol {
    /// Trims spaces, tabs and carriage returns (not Unicode whitespace in general).
    var trimmingBlanks: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" })!
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
