/// The rules of quoted text in policy files: a quoted name (`[system] "Bob's laptop":`) and
/// the quoted items of a comma-separated list (`match-source: "db (primary), east", ops`).
///
/// A quoted string runs from its '"' to the next '"' on the line. Nothing inside is an escape:
/// a backslash is a backslash, so a name reads the same in every place it is written, and
/// `SourceText`'s comment scan, which pairs quotes the same way, keeps `#` and `//` inside it.
/// Operators name things "X for Y (24/7), on-call", so a quoted name holds any printable
/// character; what it may not hold is what would not show as written (see `problem(in:)`).
enum QuotedText {
    /// Why `bytes`, the text between the quotes of a name, cannot be one, and the offset of the
    /// first byte at fault; nil when it can.
    static func problem(in bytes: ArraySlice<UInt8>) -> (offset: Int, message: String)? {
        // Plain ASCII names are most of them: bytes, not Unicode properties.
        if let bad = bytes.firstIndex(where: { $0 < 0x20 || $0 == 0x7F }) {
            return (bad - bytes.startIndex, "a quoted name cannot hold the control character \(Self.codePoint(Unicode.Scalar(bytes[bad])))")
        }
        if !bytes.contains(where: { $0 >= 0x80 }) { return nil }
        // Policy files are checked to be UTF-8 text before they are parsed (`PolicyLoader`).
        let text = String(decoding: bytes, as: UTF8.self)
        var offset = 0
        for scalar in text.unicodeScalars {
            if let what = unprintable(scalar) {
                return (offset, "a quoted name cannot hold the \(what) \(codePoint(scalar))")
            }
            offset += UTF8.width(scalar)
        }
        return nil
    }

    /// What kind of character `scalar` is when it does not show as itself: a control
    /// character (C0, DEL, C1), a line or paragraph separator (a newline to some readers), or
    /// a bidirectional-text control, which makes a name display in another order than it is.
    static func unprintable(_ scalar: Unicode.Scalar) -> String? {
        switch scalar.properties.generalCategory {
        case .control: return "control character"
        case .lineSeparator, .paragraphSeparator: return "line separator"
        default: break
        }
        switch scalar.value {
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return "bidirectional-text control"
        default: return nil
        }
    }

    static func codePoint(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// One item of a comma-separated value that holds quotes: its text (without the quotes
    /// when it was quoted) and the UTF-8 offset in the value where it starts.
    struct Item: Equatable {
        var text: String
        var offset: Int
        var quoted: Bool
    }

    /// A mistake in the quoting of a list: its message and the UTF-8 offset it points at.
    struct ListError: Error, Equatable {
        var message: String
        var offset: Int
    }

    /// Splits a value into items at the commas outside quotes. A quoted item is one item,
    /// commas and all, and only blanks may stand between its closing quote and the next comma.
    /// Unquoted items are trimmed of blanks, and empty ones skipped, as in a value without
    /// quotes (`PolicyLoader.itemRanges`). The text of each quoted item is checked as a name.
    static func items(_ value: String) -> (items: [Item], errors: [ListError]) {
        let bytes = Array(value.utf8)
        var items: [Item] = [], errors: [ListError] = []
        var at = 0
        func skipBlanks() { while at < bytes.count && bytes[at].isBlank { at += 1 } }
        while at <= bytes.count {
            skipBlanks()
            if at < bytes.count && bytes[at] == .quote {
                let open = at
                guard let close = bytes[(open + 1)...].firstIndex(of: .quote) else {
                    errors.append(ListError(message: "unterminated quoted name", offset: open))
                    break
                }
                at = close + 1
                skipBlanks()
                let inside = bytes[(open + 1)..<close]
                if let problem = problem(in: inside) {
                    errors.append(ListError(message: problem.message, offset: open + 1 + problem.offset))
                } else if inside.isEmpty {
                    errors.append(ListError(message: "empty quoted name", offset: open))
                } else if at < bytes.count && bytes[at] != .comma {
                    let rest = bytes[at...].firstIndex(of: .comma) ?? bytes.count
                    errors.append(ListError(message: "unexpected '\(String(decoding: bytes[at..<rest].trimmingBlanks, as: UTF8.self))' after the quoted name (separate items with ',')", offset: at))
                } else {
                    items.append(Item(text: String(decoding: inside, as: UTF8.self), offset: open, quoted: true))
                }
                at = (bytes[at...].firstIndex(of: .comma) ?? bytes.count) + 1
                continue
            }
            let start = at
            var end = start
            while end < bytes.count && bytes[end] != .comma { end += 1 }
            var last = end
            while last > start && bytes[last - 1].isBlank { last -= 1 }
            if start < last { items.append(Item(text: String(decoding: bytes[start..<last], as: UTF8.self), offset: start, quoted: false)) }
            at = end + 1
        }
        return (items, errors)
    }
}
