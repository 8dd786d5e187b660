/// Sets, changes or removes the `expires:` of one `[system]` block in a policy file's text,
/// leaving every other byte of the file as it was: `fleet expire` on a system of the pushed
/// policy makes a new push of the files as an administrator wrote them, changed only there.
///
/// The block is found by the same parser that loads the file (see `SystemTagsEdit`). A new
/// `expires:` goes on a line of its own after the block's last entry, indented as that entry is.
public enum SystemExpiryEdit {
    public struct Result: Sendable, Equatable {
        public var bytes: [UInt8]
        /// The value written before and after (nil: none).
        public var before: String?
        public var after: String?
    }

    /// The text of `bytes` (the file `file`) with the expiry of the system `name` set to
    /// `value` (an instant as the loader reads it; nil removes it); nil when no `[system]`
    /// block of the file has that name.
    public static func setExpiry(system name: String, in bytes: [UInt8], file: String, to value: String?) throws(SystemTagsEdit.Failure) -> Result? {
        guard let (block, lines) = try SystemTagsEdit.block(system: name, in: bytes, file: file, what: "its expiry") else { return nil }
        let entries = block.entries.filter { $0.key == "expires" }
        guard entries.count <= 1 else { throw SystemTagsEdit.Failure(description: "\(entries[1].keyLocation): system '\(name)' has 'expires:' twice: fix the file first") }
        let before = entries.first.map(\.value)
        var out = bytes
        if let entry = entries.first {
            guard let line = lines[entry.keyLocation.line], let range = SystemTagsEdit.valueRange(of: line) else {
                throw SystemTagsEdit.Failure(description: "\(entry.keyLocation): this 'expires:' is not on a line of its own: change it by hand")
            }
            if let value {
                out.replaceSubrange(range, with: Array(value.utf8))
            } else {
                // The line goes, its newline too.
                let end = line.original.endIndex
                out.removeSubrange(line.original.startIndex..<(end < bytes.count ? end + 1 : end))
            }
        } else if let value {
            let last = block.entries.last!
            guard let line = lines[last.keyLocation.line] else { throw SystemTagsEdit.Failure(description: "\(last.keyLocation): cannot find this line") }
            let indent = line.original.prefix { $0.isBlank }
            let end = line.original.endIndex
            let newline: [UInt8] = end < bytes.count ? [] : [.newline]
            let at = end < bytes.count ? end + 1 : end
            out.insert(contentsOf: newline + Array(indent) + Array("expires: \(value)\n".utf8), at: at)
        }
        return Result(bytes: out, before: before, after: value)
    }
}
