// Reading `match-domain-list` files: one domain per line, `#` starts a comment.

/// A domain list that could not be read, or an entry in it that is not a domain name.
public struct DomainListError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    /// From 1; 0 when the file itself could not be read.
    public var line: Int
    /// From 1, counting characters; 0 when the file itself could not be read.
    public var column: Int
    public var message: String

    public init(path: String, line: Int, column: Int, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        line > 0 ? "\(path):\(line):\(column): error: \(message)" : "\(path): error: \(message)"
    }

    /// The same finding as a policy diagnostic.
    public var diagnostic: Diagnostic {
        .error(SourceLocation(file: path, line: line, column: column), message)
    }
}

extension DomainSet {
    /// Loads a domain list file, reading it in chunks so that only the set itself stays
    /// in memory. Blank lines and `#` comments (whole-line or after an entry) are skipped;
    /// CRLF line ends and a UTF-8 byte order mark are accepted. Entries are ASCII names
    /// (letters, digits, `-`, `_`, dots; internationalised names in `xn--` form); a
    /// leading `*.` means the same as the bare name. The first bad entry stops the load.
    public static func load(contentsOf path: String) throws(DomainListError) -> DomainSet {
        let limit = SourceLimits.listFileBytes
        func refusal(_ failure: SourceFileFailure) -> DomainListError {
            guard case .tooLarge(let size) = failure else {
                return DomainListError(path: path, line: 0, column: 0, message: "cannot read domain list \(path): \(failure.reason)")
            }
            return DomainListError(path: path, line: 0, column: 0, message: "domain list \(path) is \(SourceLimits.text(bytes: size)), "
                + "more than the limit of \(SourceLimits.text(bytes: limit)) for a list: split it into several lists (a rule may name several: 'match-domain-list: a.txt, b.txt')")
        }
        let file: SourceFile
        do { file = try SourceFile(path: path) } catch { throw refusal(error) }
        // Refused from its size before any of it is read; one that grows meanwhile stops at the limit.
        if file.size > limit { throw refusal(.tooLarge(size: file.size)) }
        var parser = DomainListParser(path: path)
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while true {
            let count: Int
            do { count = try file.readChunk(into: &chunk) } catch { throw refusal(.system(error)) }
            if count == 0 { break }
            total += count
            if total > limit { throw refusal(.tooLarge(size: total)) }
            try parser.feed(chunk.span, count)
        }
        return try parser.finish()
    }

    /// Parses a whole list held in memory (tests, lists embedded in a policy).
    static func parse(_ text: some StringProtocol, path: String) throws(DomainListError) -> DomainSet {
        var parser = DomainListParser(path: path)
        let string = String(text)
        try parser.feed(string.utf8.span, string.utf8.count)
        return try parser.finish()
    }
}

/// Splits a byte stream into lines and adds each entry to a `DomainSet`.
struct DomainListParser {
    let path: String
    private var builder = DomainSet.Builder()
    /// The start of a line whose end is in a later chunk.
    private var partial: [UInt8] = []
    private var line = 0

    init(path: String) { self.path = path }

    /// Takes the first `count` bytes of `chunk`.
    mutating func feed(_ chunk: Span<UInt8>, _ count: Int) throws(DomainListError) {
        var start = 0
        for i in 0 ..< count where chunk[i] == UInt8(ascii: "\n") {
            if partial.count + i - start > SourceLimits.lineBytes { throw longLine() }
            if partial.isEmpty {
                try parseLine(chunk, start, i)
            } else {
                for j in start ..< i { partial.append(chunk[j]) }
                // Moved out of self while parsing (exclusivity); the buffer is kept for reuse.
                var whole: [UInt8] = []
                swap(&whole, &partial)
                try parseLine(whole.span, 0, whole.count)
                whole.removeAll(keepingCapacity: true)
                partial = whole
            }
            start = i + 1
        }
        if partial.count + count - start > SourceLimits.lineBytes { throw longLine() }
        for j in start ..< count { partial.append(chunk[j]) }
    }

    /// The line being read is longer than a line may be.
    private func longLine() -> DomainListError {
        DomainListError(path: path, line: line + 1, column: 1, message: "line \(line + 1) is longer than \(SourceLimits.text(bytes: SourceLimits.lineBytes)), "
            + "the limit for a line: put one domain on each line")
    }

    mutating func finish() throws(DomainListError) -> DomainSet {
        if !partial.isEmpty {
            let last = partial
            partial = []
            try parseLine(last.span, 0, last.count)
        }
        var entries = DomainSet.Builder()
        swap(&entries, &builder)  // hand over the only reference, so indexing copies nothing
        return DomainSet(indexing: consume entries)
    }

    /// One line, `text[from ..< to]`, without its "\n".
    private mutating func parseLine(_ text: Span<UInt8>, _ from: Int, _ to: Int) throws(DomainListError) {
        line += 1
        var lineStart = from
        if line == 1, to - from >= 3, text[from] == 0xEF, text[from + 1] == 0xBB, text[from + 2] == 0xBF {
            lineStart += 3  // byte order mark
        }
        var low = lineStart, high = to
        for i in low ..< high where text[i] == UInt8(ascii: "#") {
            high = i
            break
        }
        while low < high, DomainSet.isSpace(text[low]) { low += 1 }
        while high > low, DomainSet.isSpace(text[high - 1]) { high -= 1 }
        if low == high { return }

        if let problem = Self.check(text, low, high) {
            let entry = String(decoding: (low ..< high).map { text[$0] }, as: UTF8.self)
            // Columns count characters, as in policy diagnostics.
            let column = String(decoding: (lineStart ..< problem.offset).map { text[$0] }, as: UTF8.self).count + 1
            throw DomainListError(path: path, line: line, column: column,
                                  message: "bad domain '\(entry)': \(problem.reason)")
        }
        if let (name, end) = DomainSet.trimDecorations(text, low, high) {
            builder.append(text, name, end)
        }
    }

    /// Why `text[from ..< to]` (trimmed, non-empty) is not a domain name, and the byte
    /// offset to point at; nil if it is one.
    static func check(_ text: Span<UInt8>, _ from: Int, _ to: Int) -> (offset: Int, reason: String)? {
        var start = from, end = to
        if end - start >= 2, text[start] == DomainSet.star, text[start + 1] == DomainSet.dot {
            start += 2
            if start == end { return (start, "nothing after '*.'") }
        }
        if end - start > 1, text[end - 1] == DomainSet.dot { end -= 1 }  // absolute form "example.com."

        var labelStart = start
        for i in start ... end {
            if i == end || text[i] == DomainSet.dot {
                if i == labelStart { return (i, "empty label") }
                if i - labelStart > 63 { return (labelStart, "label longer than 63 characters") }
                labelStart = i + 1
                continue
            }
            let byte = DomainSet.lowercased(text[i])
            switch byte {
            case UInt8(ascii: "a") ... UInt8(ascii: "z"), UInt8(ascii: "0") ... UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            case DomainSet.star:
                return (i, "'*' is only allowed as a leading '*.'")
            case 0x80...:
                return (i, "non-ASCII character; write internationalised names in their 'xn--' form")
            default:
                let shown = byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") ? "whitespace"
                    : byte < 0x20 || byte == 0x7f ? "control character"
                    : "character '\(Character(Unicode.Scalar(byte)))'"
                return (i, "\(shown) not allowed (only letters, digits, '-', '_' and '.')")
            }
        }
        if end - start > 253 { return (start, "name longer than 253 characters") }
        return nil
    }
}
