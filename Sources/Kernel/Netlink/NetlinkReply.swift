/// Netlink messages the kernel sends back, parsed from bytes (host byte order).
enum NetlinkReply {
    case acknowledgement(error: Int32, sequence: UInt32, message: String?)
    case table(sequence: UInt32, name: String, handle: UInt64, userData: [UInt8])
    /// Part of a set element dump: the keys of the elements in this message.
    case elements(sequence: UInt32, keys: [[UInt8]])
    /// One counter object of a dump (NEWOBJ): its table, name and counts.
    case counter(sequence: UInt32, table: String, name: String, value: CounterValue)
    /// The end of a dump.
    case done(sequence: UInt32)
    /// The ruleset's generation id (NEWGEN).
    case generation(sequence: UInt32, id: UInt32)
    case other(type: UInt16)

    static let errorType: UInt16 = 2
    static let newTableType: UInt16 = 10 << 8  // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE
    static let newElementsType: UInt16 = 10 << 8 | 12  // NFT_MSG_NEWSETELEM
    static let doneType: UInt16 = 3  // NLMSG_DONE
    static let newObjectType: UInt16 = 10 << 8 | 18  // NFT_MSG_NEWOBJ
    static let newGenerationType: UInt16 = 10 << 8 | 15  // NFT_MSG_NEWGEN
    static let acknowledgementTLVs: UInt16 = 0x200

    static func parse(_ bytes: [UInt8]) -> [NetlinkReply] {
        var out: [NetlinkReply] = []
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(u32(bytes, offset))
            guard length >= 16, offset + length <= bytes.count else { break }
            let type = u16(bytes, offset + 4), flags = u16(bytes, offset + 6), sequence = u32(bytes, offset + 8)
            let body = offset + 16
            switch type {
            case errorType where length >= 36:
                let error = Int32(bitPattern: u32(bytes, body))
                let original = body + 4
                let originalSequence = u32(bytes, original + 8)
                var message: String?
                if flags & acknowledgementTLVs != 0 {
                    // With NETLINK_CAP_ACK only the original header is echoed; TLVs follow it.
                    for (attribute, value) in attributes(bytes, from: original + 16, to: offset + length) where attribute == 1 {
                        message = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
                    }
                }
                out.append(.acknowledgement(error: error, sequence: originalSequence, message: message))
            case newTableType:
                var name = "", userData: [UInt8] = [], handle: UInt64 = 0
                for (attribute, value) in attributes(bytes, from: body + 4, to: offset + length) {
                    if attribute == 1 { name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self) }
                    if attribute == 4, value.count == 8 { handle = value.reduce(0) { $0 << 8 | UInt64($1) } }
                    if attribute == 6 { userData = value }
                }
                out.append(.table(sequence: sequence, name: name, handle: handle, userData: userData))
            case newElementsType:
                // NFTA_SET_ELEM_LIST_ELEMENTS (3) → NFTA_LIST_ELEM (1) each → NFTA_SET_ELEM_KEY (1) → NFTA_DATA_VALUE (1)
                var keys: [[UInt8]] = []
                for (attribute, list) in attributes(bytes, from: body + 4, to: offset + length) where attribute == 3 {
                    for (kind, element) in attributes(list, from: 0, to: list.count) where kind == 1 {
                        for (field, key) in attributes(element, from: 0, to: element.count) where field == 1 {
                            for (data, value) in attributes(key, from: 0, to: key.count) where data == 1 { keys.append(value) }
                        }
                    }
                }
                out.append(.elements(sequence: sequence, keys: keys))
            case newObjectType:
                // NFTA_OBJ_TABLE (1), NFTA_OBJ_NAME (2), NFTA_OBJ_TYPE (3, big-endian u32),
                // NFTA_OBJ_DATA (4) → NFTA_COUNTER_BYTES (1), NFTA_COUNTER_PACKETS (2), big-endian u64.
                var table = "", name = "", type: UInt32 = 0, value = CounterValue(packets: 0, bytes: 0)
                for (attribute, data) in attributes(bytes, from: body + 4, to: offset + length) {
                    switch attribute {
                    case 1: table = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                    case 2: name = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                    case 3 where data.count == 4: type = data.reduce(0) { $0 << 8 | UInt32($1) }
                    case 4:
                        for (field, number) in attributes(data, from: 0, to: data.count) where number.count == 8 {
                            let count = number.reduce(0) { $0 << 8 | UInt64($1) }
                            if field == 1 { value.bytes = count }
                            if field == 2 { value.packets = count }
                        }
                    default: break
                    }
                }
                // NFT_OBJECT_COUNTER (1); other kinds of object are not enforcer's.
                out.append(type == 1 ? .counter(sequence: sequence, table: table, name: name, value: value) : .other(type: newObjectType))
            case doneType:
                out.append(.done(sequence: sequence))
            case newGenerationType:
                // NFTA_GEN_ID (1), a big-endian u32.
                for (attribute, value) in attributes(bytes, from: body + 4, to: offset + length) where attribute == 1 && value.count == 4 {
                    out.append(.generation(sequence: sequence, id: value.reduce(0) { $0 << 8 | UInt32($1) }))
                }
            default:
                out.append(.other(type: type))
            }
            offset += (length + 3) & ~3
        }
        return out
    }

    static func attributes(_ bytes: [UInt8], from start: Int, to end: Int) -> [(UInt16, [UInt8])] {
        var out: [(UInt16, [UInt8])] = []
        var offset = start
        while offset + 4 <= end {
            let length = Int(u16(bytes, offset))
            guard length >= 4, offset + length <= end else { break }
            out.append((u16(bytes, offset + 2) & 0x3fff, Array(bytes[(offset + 4)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return out
    }

    static func u16(_ bytes: [UInt8], _ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}
