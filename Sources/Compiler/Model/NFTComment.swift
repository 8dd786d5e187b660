/// The comments the ruleset carries into the kernel: the names of policies on their grant
/// chains and marks ("policy Database Servers for SRE (24/7), on-call"), and fixed texts.
/// Names are the operator's printable text, but nft reads a comment back only within limits,
/// and `nft list ruleset` output must load again with `nft -f`. Kernel objects themselves are
/// never named after a name (chains and sets are numbered or hashed: `grant_3`, `in_2d401a55`),
/// so a comment is only a label: two names may share a cut comment, never a chain.
public enum NFTComment {
    /// nft refuses a longer comment when it reads a ruleset ("comment too long, 128 characters
    /// maximum allowed"; it counts bytes), so a ruleset listed with one would not load again.
    public static let maxBytes = 128

    /// `text` as a comment nft lists and reads back unchanged: at most `maxBytes` bytes of
    /// UTF-8, cut between characters with "…" at the end when longer; '"' as "'" (nft's
    /// quoted strings have no escapes); control characters and line separators as spaces.
    public static func fitted(_ text: String) -> String {
        // Fixed comments and most names: printable ASCII without '"', short enough.
        if text.utf8.count <= maxBytes && text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") }) { return text }
        var clean = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .lineSeparator, .paragraphSeparator: clean.append(" ")
            default: clean.append(scalar == "\"" ? "'" : scalar)
            }
        }
        let cleaned = String(clean)
        if cleaned.utf8.count <= maxBytes { return cleaned }
        let ellipsis = "…"
        var out = ""
        var bytes = 0
        for character in cleaned {
            let width = character.utf8.count
            if bytes + width + ellipsis.utf8.count > maxBytes { break }
            out.append(character)
            bytes += width
        }
        return out + ellipsis
    }
}
