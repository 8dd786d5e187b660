/// Rewrites the `tags:` of one `[system]` block in a policy file's text, leaving every other
/// byte of the file as it was: `fleet tag` on a system of the pushed policy makes a new push
/// of the files as an administrator wrote them, changed only where the tags are.
///
/// The block and its entries are found by the same parser that loads the file, so a quoted
/// name, a comment or a `}` inside quotes means here what it means to the loader. Items that
/// stay keep their spelling (quoted or not); new ones are added to the block's last `tags:`
/// line, or on a line of their own after its last entry, indented as that entry is.
public enum SystemTagsEdit {
    public struct Result: Sendable, Equatable {
        public var bytes: [UInt8]
        /// The system's tags before and after, in the loader's order.
        public var before: [String]
        public var after: [String]
    }

    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The text of `bytes` (the file `file`) with the tags of the system `name` changed, nil
    /// when no `[system]` block of the file has that name.
    public static func retag(system name: String, in bytes: [UInt8], file: String, add: [String], remove: [String]) throws(Failure) -> Result? {
        for tag in add where !PolicyLoader.isValidTag(tag) {
            throw Failure(description: "bad tag '\(tag)': use letters, digits, '.', '_', '-', ':'")
        }
        guard let (block, lines) = try Self.block(system: name, in: bytes, file: file, what: "its tags") else { return nil }
        let headerLine = block.nameLocation.line
        let lastEntry = block.entries.last!

        // Each `tags:` entry: where its value stands in the file, and its items as written.
        struct Entry { var value: Range<Int>; var line: SourceText.Line; var items: [(text: String, written: String)] }
        var entries: [Entry] = []
        for entry in block.entries where entry.key == "tags" {
            guard let line = lines[entry.keyLocation.line], let value = valueRange(of: line), entry.keyLocation.line != headerLine else {
                throw Failure(description: "\(entry.keyLocation): this 'tags:' is not on a line of its own: change the tags by hand")
            }
            entries.append(Entry(value: value, line: line, items: try items(of: entry)))
        }
        var before: [String] = []
        for entry in entries { for item in entry.items where !before.contains(item.text) { before.append(item.text) } }
        let added = add.reduce(into: [String]()) { list, tag in if !before.contains(tag) && !list.contains(tag) { list.append(tag) } }
        let after = before.filter { !remove.contains($0) } + added

        // Edits from the end of the file back, so earlier offsets stay true.
        var edits: [(range: Range<Int>, text: [UInt8])] = []
        var kept = entries.map { $0.items.filter { !remove.contains($0.text) } }
        // Additions join the last line that keeps a tag, else the last `tags:` line.
        let target = kept.lastIndex { !$0.isEmpty } ?? (added.isEmpty ? nil : entries.indices.last)
        if let target { kept[target] += added.map { (text: $0, written: $0) } }
        for (entry, items) in zip(entries, kept) where items.map({ $0.written }) != entry.items.map({ $0.written }) {
            if items.isEmpty {
                // Nothing left on the line: the line goes, its newline too.
                let end = entry.line.original.endIndex
                edits.append((entry.line.original.startIndex..<(end < bytes.count ? end + 1 : end), []))
            } else {
                edits.append((entry.value, Array(items.map { $0.written }.joined(separator: ", ").utf8)))
            }
        }
        if target == nil && !added.isEmpty {
            guard let line = lines[lastEntry.keyLocation.line] else { throw Failure(description: "\(lastEntry.keyLocation): cannot find this line") }
            let indent = line.original.prefix { $0.isBlank }
            let end = line.original.endIndex
            let newline: [UInt8] = end < bytes.count ? [] : [.newline]
            let at = end < bytes.count ? end + 1 : end
            edits.append((at..<at, newline + Array(indent) + Array("tags: \(added.joined(separator: ", "))\n".utf8)))
        }
        var out = bytes
        for edit in edits.sorted(by: { $0.range.lowerBound > $1.range.lowerBound }) { out.replaceSubrange(edit.range, with: edit.text) }
        return Result(bytes: out, before: before, after: after)
    }

    /// The `[system]` block named `name` in `bytes`, with the lines of its entries by number;
    /// nil when the file has none. One written twice, or on one line, is refused (`what`
    /// names the change, for the message).
    static func block(system name: String, in bytes: [UInt8], file: String, what: String) throws(Failure) -> (RawBlock, [Int: SourceText.Line])? {
        let parser = BlockParser(file: file, bytes: bytes)
        let found = parser.blocks.indices.filter { parser.blocks[$0].kind == "system" && parser.blocks[$0].name == name }
        guard let index = found.first else { return nil }
        guard found.count == 1 else { throw Failure(description: "\(file): system '\(name)' is written \(found.count) times: fix the file first") }
        let block = parser.blocks[index]
        let headerLine = parser.spans[index].lines.lowerBound
        guard let lastEntry = block.entries.last, lastEntry.keyLocation.line != headerLine else {
            throw Failure(description: "\(block.nameLocation): system '\(name)' is written on one line: change \(what) by hand")
        }
        var lines: [Int: SourceText.Line] = [:]
        let wanted = Set(block.entries.map(\.keyLocation.line))
        for line in SourceText(file: file, bytes: bytes).lines where wanted.contains(line.number) { lines[line.number] = line }
        return (block, lines)
    }

    /// From after `key:` and its blanks to the last byte before a trailing comment or blanks.
    static func valueRange(of line: SourceText.Line) -> Range<Int>? {
        let cleaned = line.bytes
        guard var at = cleaned.firstIndex(where: { !$0.isBlank }), let colon = cleaned[at...].firstIndex(of: .colon) else { return nil }
        at = colon + 1
        while at < cleaned.endIndex && cleaned[at].isBlank { at += 1 }
        guard let last = cleaned[at...].lastIndex(where: { !$0.isBlank }) else { return nil }
        return at..<(last + 1)
    }

    /// The items of a `tags:` value as the loader reads them, each with its spelling.
    private static func items(of entry: RawEntry) throws(Failure) -> [(text: String, written: String)] {
        if entry.isQuoted { return [(text: entry.value, written: "\"\(entry.value)\"")] }
        let (items, errors) = QuotedText.items(entry.value)
        if let error = errors.first { throw Failure(description: "\(entry.valueLocation): \(error.message): fix the file first") }
        return items.map { (text: $0.text, written: $0.quoted ? "\"\($0.text)\"" : $0.text) }
    }
}
