import Compiler

/// nftables userdata: type-length-value records (libnftnl's udata format). Comments are
/// record type 0 with a NUL-terminated string, as nft writes them, so `nft list` shows them.
enum UserData {
    /// A comment record; the text fitted as `nft` can read it back (`NFTComment`), so a
    /// ruleset listed by `nft list ruleset` loads again with `nft -f`.
    static func comment(_ text: String?) -> [UInt8] {
        guard let text, !text.isEmpty else { return [] }
        var bytes = Array(NFTComment.fitted(text).utf8)
        bytes.append(0)
        return [0, UInt8(bytes.count)] + bytes
    }

    static func record(type: UInt8, _ value: [UInt8]) -> [UInt8] {
        [type, UInt8(value.count)] + value
    }

    /// Record type 0 of table/chain/rule userdata: the comment.
    static func comment(in bytes: [UInt8]) -> String? {
        var offset = 0
        while offset + 2 <= bytes.count {
            let type = bytes[offset], length = Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { return nil }
            if type == 0 {
                return String(decoding: bytes[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }, as: UTF8.self)
            }
            offset += 2 + length
        }
        return nil
    }
}
