internal import CNFTables
import Glibc

// The only file of the Kernel target that touches libnftnl/libmnl pointers. Everything it
// hands out is Swift values: message bytes in, message bytes out.

enum LibNFTNL {
    /// Large enough for any single message the encoder builds (element messages are capped
    /// well below 64 KiB, the limit of a netlink attribute).
    static let scratchSize = 256 * 1024

    /// `generation`: the batch is refused (ERESTART) unless the ruleset is still at this
    /// nf_tables generation when the kernel takes it, so nobody's commit slips in between.
    static func batchBegin(sequence: UInt32, generation: UInt32? = nil) -> [UInt8] {
        withScratch { buffer in
            let header = nftnl_batch_begin(buffer, sequence)
            if let generation, let header { mnl_attr_put_u32(header, UInt16(NFNL_BATCH_GENID.rawValue), generation.bigEndian) }
        }
    }

    static func batchEnd(sequence: UInt32) -> [UInt8] {
        withScratch { buffer in
            _ = nftnl_batch_end(buffer, sequence)
        }
    }

    /// One nf_tables message with NLM_F_ACK, so the kernel answers every message of a batch.
    static func encode(_ message: NFTMessage, sequence: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        encode(message, sequence: sequence, appendingTo: &out, scratch: NetlinkBuffer())
        return out
    }

    /// Encodes `message` in `scratch` and appends its bytes to `batch`.
    static func encode(_ message: NFTMessage, sequence: UInt32, appendingTo batch: inout [UInt8], scratch: NetlinkBuffer) {
        let ack = UInt16(NLM_F_ACK)
        let create = UInt16(NLM_F_CREATE)
        scratch.build(appendingTo: &batch) { buffer in
            switch message {
            case .newTable(let spec):
                let table = nftnl_table_alloc()!
                defer { nftnl_table_free(table) }
                nftnl_table_set_str(table, attr(NFTNL_TABLE_NAME), spec.name)
                nftnl_table_set_u32(table, attr(NFTNL_TABLE_FAMILY), UInt32(spec.family))
                if !spec.userData.isEmpty {
                    spec.userData.withUnsafeBytes { raw in
                        _ = nftnl_table_set_data(table, attr(NFTNL_TABLE_USERDATA), raw.baseAddress, UInt32(raw.count))
                    }
                }
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_NEWTABLE.rawValue), UInt16(spec.family), create | ack, sequence)
                nftnl_table_nlmsg_build_payload(header, table)
            case let .deleteTable(family, name):
                let table = nftnl_table_alloc()!
                defer { nftnl_table_free(table) }
                nftnl_table_set_str(table, attr(NFTNL_TABLE_NAME), name)
                nftnl_table_set_u32(table, attr(NFTNL_TABLE_FAMILY), UInt32(family))
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_DELTABLE.rawValue), UInt16(family), ack, sequence)
                nftnl_table_nlmsg_build_payload(header, table)
            case .newChain(let spec):
                let chain = chainObject(family: spec.family, table: spec.table, name: spec.name)
                defer { nftnl_chain_free(chain) }
                if let hook = spec.hook {
                    nftnl_chain_set_u32(chain, attr(NFTNL_CHAIN_HOOKNUM), hook.number)
                    nftnl_chain_set_s32(chain, attr(NFTNL_CHAIN_PRIO), hook.priority)
                    nftnl_chain_set_u32(chain, attr(NFTNL_CHAIN_POLICY), hook.policy)
                    nftnl_chain_set_str(chain, attr(NFTNL_CHAIN_TYPE), "filter")
                }
                if !spec.userData.isEmpty {
                    spec.userData.withUnsafeBytes { raw in
                        _ = nftnl_chain_set_data(chain, attr(NFTNL_CHAIN_USERDATA), raw.baseAddress, UInt32(raw.count))
                    }
                }
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_NEWCHAIN.rawValue), UInt16(spec.family), create | ack, sequence)
                nftnl_chain_nlmsg_build_payload(header, chain)
            case let .deleteChain(family, table, name):
                let chain = chainObject(family: family, table: table, name: name)
                defer { nftnl_chain_free(chain) }
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_DELCHAIN.rawValue), UInt16(family), ack, sequence)
                nftnl_chain_nlmsg_build_payload(header, chain)
            case let .flushChain(family, table, name):
                let rule = nftnl_rule_alloc()!
                defer { nftnl_rule_free(rule) }
                nftnl_rule_set_str(rule, attr(NFTNL_RULE_TABLE), table)
                nftnl_rule_set_str(rule, attr(NFTNL_RULE_CHAIN), name)
                nftnl_rule_set_u32(rule, attr(NFTNL_RULE_FAMILY), UInt32(family))
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_DELRULE.rawValue), UInt16(family), ack, sequence)
                nftnl_rule_nlmsg_build_payload(header, rule)
            case .newRule(let spec):
                let rule = nftnl_rule_alloc()!
                defer { nftnl_rule_free(rule) }
                nftnl_rule_set_str(rule, attr(NFTNL_RULE_TABLE), spec.table)
                nftnl_rule_set_str(rule, attr(NFTNL_RULE_CHAIN), spec.chain)
                nftnl_rule_set_u32(rule, attr(NFTNL_RULE_FAMILY), UInt32(spec.family))
                if !spec.userData.isEmpty {
                    spec.userData.withUnsafeBytes { raw in
                        _ = nftnl_rule_set_data(rule, attr(NFTNL_RULE_USERDATA), raw.baseAddress, UInt32(raw.count))
                    }
                }
                for expression in spec.expressions { nftnl_rule_add_expr(rule, expressionObject(expression)) }
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_NEWRULE.rawValue), UInt16(spec.family),
                                                   create | UInt16(NLM_F_APPEND) | ack, sequence)
                nftnl_rule_nlmsg_build_payload(header, rule)
            case .newSet(let spec):
                let set = setObject(family: spec.family, table: spec.table, name: spec.name, id: spec.id)
                defer { nftnl_set_free(set) }
                nftnl_set_set_u32(set, attr(NFTNL_SET_FLAGS), spec.flags)
                nftnl_set_set_u32(set, attr(NFTNL_SET_KEY_TYPE), spec.keyType)
                nftnl_set_set_u32(set, attr(NFTNL_SET_KEY_LEN), spec.keyLength)
                if let dataType = spec.dataType { nftnl_set_set_u32(set, attr(NFTNL_SET_DATA_TYPE), dataType) }
                if let dataLength = spec.dataLength { nftnl_set_set_u32(set, attr(NFTNL_SET_DATA_LEN), dataLength) }
                if let size = spec.size { nftnl_set_set_u32(set, attr(NFTNL_SET_DESC_SIZE), size) }
                if let timeout = spec.timeoutMilliseconds { nftnl_set_set_u64(set, attr(NFTNL_SET_TIMEOUT), timeout) }
                if !spec.concatLengths.isEmpty {
                    spec.concatLengths.withUnsafeBytes { raw in
                        _ = nftnl_set_set_data(set, attr(NFTNL_SET_DESC_CONCAT), raw.baseAddress, UInt32(raw.count))
                    }
                }
                if !spec.userData.isEmpty {
                    spec.userData.withUnsafeBytes { raw in
                        _ = nftnl_set_set_data(set, attr(NFTNL_SET_USERDATA), raw.baseAddress, UInt32(raw.count))
                    }
                }
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_NEWSET.rawValue), UInt16(spec.family), create | ack, sequence)
                nftnl_set_nlmsg_build_payload(header, set)
            case let .deleteSet(family, table, name):
                let set = setObject(family: family, table: table, name: name, id: nil)
                defer { nftnl_set_free(set) }
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_DELSET.rawValue), UInt16(family), ack, sequence)
                nftnl_set_nlmsg_build_payload(header, set)
            case .newCounter(let spec):
                let object = counterObject(family: spec.family, table: spec.table, name: spec.name)
                defer { nftnl_obj_free(object) }
                nftnl_obj_set_u64(object, attr(NFTNL_OBJ_CTR_PKTS), spec.packets)
                nftnl_obj_set_u64(object, attr(NFTNL_OBJ_CTR_BYTES), spec.bytes)
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_NEWOBJ.rawValue), UInt16(spec.family), create | ack, sequence)
                nftnl_obj_nlmsg_build_payload(header, object)
            case let .deleteCounter(family, table, name):
                let object = counterObject(family: family, table: table, name: name)
                defer { nftnl_obj_free(object) }
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_DELOBJ.rawValue), UInt16(family), ack, sequence)
                nftnl_obj_nlmsg_build_payload(header, object)
            case .newElements(let spec), .deleteElements(let spec):
                let isNew: Bool = if case .newElements = message { true } else { false }
                let set = setObject(family: spec.family, table: spec.table, name: spec.set, id: spec.setID)
                defer { nftnl_set_free(set) }
                let elements = spec.elements
                let type = isNew ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(type.rawValue), UInt16(spec.family),
                                                   (isNew ? create : 0) | ack, sequence)
                if let verdicts = elements.base.packedVerdicts {
                    // A million-sender map: one libnftnl element per verdict, its key set
                    // anew for each element and built where it stands, numbered from 1 as
                    // libnftnl numbers a list's elements (the same bytes as that list).
                    nftnl_set_elems_nlmsg_build_payload(header, set)  // table, set and id: the set holds no element
                    var objects = [OpaquePointer?](repeating: nil, count: verdicts.count)
                    defer { for case let object? in objects { nftnl_set_elem_free(object) } }
                    let list = mnl_attr_nest_start(header, UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue))
                    let range = elements.indices
                    _ = elements.base.withPackedColumns { width, keys, verdictNumbers in
                        keys.withUnsafeBytes { keys in
                            for (number, index) in range.enumerated() {
                                let verdict = Int(verdictNumbers[index])
                                let object = objects[verdict] ?? elementObject(key: nil, verdict: verdicts[verdict])
                                objects[verdict] = object
                                _ = nftnl_set_elem_set(object, attr(NFTNL_SET_ELEM_KEY), keys.baseAddress! + index * width, UInt32(width))
                                _ = nftnl_set_elem_nlmsg_build(header, object, Int32(number + 1))
                            }
                        }
                    }
                    mnl_attr_nest_end(header, list)
                } else {
                    for element in elements { nftnl_set_elem_add(set, elementObject(element)) }
                    nftnl_set_elems_nlmsg_build_payload(header, set)
                }
            }
        }
    }

    /// A GETTABLE request for one table (answered with NEWTABLE or an error).
    static func getTable(family: UInt8, name: String, sequence: UInt32) -> [UInt8] {
        withScratch { buffer in
            let table = nftnl_table_alloc()!
            defer { nftnl_table_free(table) }
            nftnl_table_set_str(table, attr(NFTNL_TABLE_NAME), name)
            let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_GETTABLE.rawValue), UInt16(family), UInt16(NLM_F_ACK), sequence)
            nftnl_table_nlmsg_build_payload(header, table)
        }
    }

    /// A GETGEN request: the ruleset's generation id, which every commit by anyone advances
    /// (answered with NEWGEN).
    static func getGeneration(sequence: UInt32) -> [UInt8] {
        withScratch { buffer in
            _ = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_GETGEN.rawValue), UInt16(AF_UNSPEC), UInt16(NLM_F_ACK), sequence)
        }
    }

    /// A GETSETELEM dump of one set's elements (answered with NEWSETELEM messages, then
    /// NLMSG_DONE, or an error).
    static func getSetElements(family: UInt8, table: String, set name: String, sequence: UInt32) -> [UInt8] {
        withScratch { buffer in
            let set = setObject(family: family, table: table, name: name, id: nil)
            defer { nftnl_set_free(set) }
            let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_GETSETELEM.rawValue), UInt16(family), UInt16(NLM_F_DUMP | NLM_F_ACK), sequence)
            nftnl_set_elems_nlmsg_build_payload(header, set)
        }
    }

    /// A GETOBJ dump of one table's counter objects (answered with NEWOBJ messages, then
    /// NLMSG_DONE, or an error).
    static func getCounters(family: UInt8, table: String, sequence: UInt32) -> [UInt8] {
        withScratch { buffer in
            let object = nftnl_obj_alloc()!
            defer { nftnl_obj_free(object) }
            nftnl_obj_set_str(object, attr(NFTNL_OBJ_TABLE), table)
            nftnl_obj_set_u32(object, attr(NFTNL_OBJ_TYPE), UInt32(NFT_OBJECT_COUNTER))
            let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_GETOBJ.rawValue), UInt16(family), UInt16(NLM_F_DUMP | NLM_F_ACK), sequence)
            nftnl_obj_nlmsg_build_payload(header, object)
        }
    }

    // MARK: libnftnl objects

    private static func counterObject(family: UInt8, table: String, name: String) -> OpaquePointer {
        let object = nftnl_obj_alloc()!
        nftnl_obj_set_str(object, attr(NFTNL_OBJ_TABLE), table)
        nftnl_obj_set_str(object, attr(NFTNL_OBJ_NAME), name)
        nftnl_obj_set_u32(object, attr(NFTNL_OBJ_TYPE), UInt32(NFT_OBJECT_COUNTER))
        nftnl_obj_set_u32(object, attr(NFTNL_OBJ_FAMILY), UInt32(family))
        return object
    }

    private static func chainObject(family: UInt8, table: String, name: String) -> OpaquePointer {
        let chain = nftnl_chain_alloc()!
        nftnl_chain_set_str(chain, attr(NFTNL_CHAIN_TABLE), table)
        nftnl_chain_set_str(chain, attr(NFTNL_CHAIN_NAME), name)
        nftnl_chain_set_u32(chain, attr(NFTNL_CHAIN_FAMILY), UInt32(family))
        return chain
    }

    private static func setObject(family: UInt8, table: String, name: String, id: UInt32?) -> OpaquePointer {
        let set = nftnl_set_alloc()!
        nftnl_set_set_str(set, attr(NFTNL_SET_TABLE), table)
        nftnl_set_set_str(set, attr(NFTNL_SET_NAME), name)
        nftnl_set_set_u32(set, attr(NFTNL_SET_FAMILY), UInt32(family))
        if let id { nftnl_set_set_u32(set, attr(NFTNL_SET_ID), id) }
        return set
    }

    /// An element's key and verdict: all of a packed hosts map's element, the start of any
    /// other (without a key: a packed map's object for one verdict, its key set per element).
    private static func elementObject(key: ArraySlice<UInt8>?, verdict: NFTVerdict?) -> OpaquePointer {
        let object = nftnl_set_elem_alloc()!
        key?.withUnsafeBytes { raw in
            _ = nftnl_set_elem_set(object, attr(NFTNL_SET_ELEM_KEY), raw.baseAddress, UInt32(raw.count))
        }
        if let verdict {
            nftnl_set_elem_set_u32(object, attr(NFTNL_SET_ELEM_VERDICT), UInt32(bitPattern: verdict.code))
            if let chain = verdict.chain { nftnl_set_elem_set_str(object, attr(NFTNL_SET_ELEM_CHAIN), chain) }
        }
        return object
    }

    private static func elementObject(_ element: NFTElement) -> OpaquePointer {
        let object = elementObject(key: element.key[...], verdict: element.verdict)
        if let end = element.keyEnd {
            end.withUnsafeBytes { raw in
                _ = nftnl_set_elem_set(object, attr(NFTNL_SET_ELEM_KEY_END), raw.baseAddress, UInt32(raw.count))
            }
        }
        if element.flags != 0 { nftnl_set_elem_set_u32(object, attr(NFTNL_SET_ELEM_FLAGS), element.flags) }
        if let timeout = element.timeoutMilliseconds {
            nftnl_set_elem_set_u64(object, attr(NFTNL_SET_ELEM_TIMEOUT), timeout)
        }
        if !element.userData.isEmpty {
            element.userData.withUnsafeBytes { raw in
                _ = nftnl_set_elem_set(object, attr(NFTNL_SET_ELEM_USERDATA), raw.baseAddress, UInt32(raw.count))
            }
        }
        return object
    }

    private static func expressionObject(_ expression: NFTExpression) -> OpaquePointer {
        let e = nftnl_expr_alloc(expression.name)!
        func u32(_ attribute: UInt16, _ value: UInt32) { nftnl_expr_set_u32(e, attribute, value) }
        func data(_ attribute: UInt16, _ bytes: [UInt8]) {
            bytes.withUnsafeBytes { raw in _ = nftnl_expr_set(e, attribute, raw.baseAddress, UInt32(raw.count)) }
        }
        switch expression {
        case let .meta(key, destination):
            u32(attr(NFTNL_EXPR_META_KEY), key)
            u32(attr(NFTNL_EXPR_META_DREG), destination)
        case let .metaSet(key, source):
            u32(attr(NFTNL_EXPR_META_KEY), key)
            u32(attr(NFTNL_EXPR_META_SREG), source)
        case let .ct(key, destination, direction):
            u32(attr(NFTNL_EXPR_CT_KEY), key)
            u32(attr(NFTNL_EXPR_CT_DREG), destination)
            if let direction { nftnl_expr_set_u8(e, attr(NFTNL_EXPR_CT_DIR), direction) }
        case let .ctSet(key, source):
            u32(attr(NFTNL_EXPR_CT_KEY), key)
            u32(attr(NFTNL_EXPR_CT_SREG), source)
        case let .payload(base, offset, length, destination):
            u32(attr(NFTNL_EXPR_PAYLOAD_BASE), base)
            u32(attr(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
            u32(attr(NFTNL_EXPR_PAYLOAD_LEN), length)
            u32(attr(NFTNL_EXPR_PAYLOAD_DREG), destination)
        case let .cmp(op, source, bytes):
            u32(attr(NFTNL_EXPR_CMP_SREG), source)
            u32(attr(NFTNL_EXPR_CMP_OP), op)
            data(attr(NFTNL_EXPR_CMP_DATA), bytes)
        case let .range(op, source, from, to):
            u32(attr(NFTNL_EXPR_RANGE_SREG), source)
            u32(attr(NFTNL_EXPR_RANGE_OP), op)
            data(attr(NFTNL_EXPR_RANGE_FROM_DATA), from)
            data(attr(NFTNL_EXPR_RANGE_TO_DATA), to)
        case let .bitwise(source, destination, mask, xor):
            u32(attr(NFTNL_EXPR_BITWISE_SREG), source)
            u32(attr(NFTNL_EXPR_BITWISE_DREG), destination)
            u32(attr(NFTNL_EXPR_BITWISE_LEN), UInt32(mask.count))
            data(attr(NFTNL_EXPR_BITWISE_MASK), mask)
            data(attr(NFTNL_EXPR_BITWISE_XOR), xor)
        case let .lookup(source, set, setID, destination):
            u32(attr(NFTNL_EXPR_LOOKUP_SREG), source)
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_LOOKUP_SET), set)
            if let setID { u32(attr(NFTNL_EXPR_LOOKUP_SET_ID), setID) }
            if let destination { u32(attr(NFTNL_EXPR_LOOKUP_DREG), destination) }
        case .immediate(let verdict):
            u32(attr(NFTNL_EXPR_IMM_DREG), UInt32(NFT_REG_VERDICT.rawValue))
            u32(attr(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: verdict.code))
            if let chain = verdict.chain { nftnl_expr_set_str(e, attr(NFTNL_EXPR_IMM_CHAIN), chain) }
        case .counter:
            break
        case .counterReference(let name):
            u32(attr(NFTNL_EXPR_OBJREF_IMM_TYPE), UInt32(NFT_OBJECT_COUNTER))
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_OBJREF_IMM_NAME), name)
        case let .reject(type, code):
            u32(attr(NFTNL_EXPR_REJECT_TYPE), type)
            nftnl_expr_set_u8(e, attr(NFTNL_EXPR_REJECT_CODE), code)
        case let .queue(number, total, flags):
            nftnl_expr_set_u16(e, attr(NFTNL_EXPR_QUEUE_NUM), number)
            nftnl_expr_set_u16(e, attr(NFTNL_EXPR_QUEUE_TOTAL), total)
            nftnl_expr_set_u16(e, attr(NFTNL_EXPR_QUEUE_FLAGS), flags)
        case let .dynsetLimit(key, set, perSecond, burst, over):
            u32(attr(NFTNL_EXPR_DYNSET_OP), UInt32(NFT_DYNSET_OP_UPDATE.rawValue))
            u32(attr(NFTNL_EXPR_DYNSET_SREG_KEY), key)
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_DYNSET_SET_NAME), set)
            let limit = nftnl_expr_alloc("limit")!
            nftnl_expr_set_u64(limit, attr(NFTNL_EXPR_LIMIT_RATE), perSecond)
            nftnl_expr_set_u64(limit, attr(NFTNL_EXPR_LIMIT_UNIT), 1)
            nftnl_expr_set_u32(limit, attr(NFTNL_EXPR_LIMIT_BURST), burst)
            nftnl_expr_set_u32(limit, attr(NFTNL_EXPR_LIMIT_TYPE), UInt32(NFT_LIMIT_PKTS.rawValue))
            nftnl_expr_set_u32(limit, attr(NFTNL_EXPR_LIMIT_FLAGS), over ? UInt32(NFT_LIMIT_F_INV.rawValue) : 0)
            // The dynset expression takes the limit expression itself (and frees it with its own).
            _ = nftnl_expr_set(e, attr(NFTNL_EXPR_DYNSET_EXPR), UnsafeRawPointer(limit), 0)
        case let .target(name, revision, info):
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_TG_NAME), name)
            u32(attr(NFTNL_EXPR_TG_REV), revision)
            // libnftnl keeps (and later frees) the info pointer it is given: hand it a malloc'd copy.
            let copy = malloc(max(info.count, 1))!
            info.withUnsafeBytes { raw in if let base = raw.baseAddress { memcpy(copy, base, raw.count) } }
            _ = nftnl_expr_set(e, attr(NFTNL_EXPR_TG_INFO), copy, UInt32(info.count))
        }
        return e
    }

    /// Runs `build` on a fresh scratch buffer and returns the netlink message it wrote.
    private static func withScratch(_ build: (UnsafeMutablePointer<CChar>) -> Void) -> [UInt8] {
        var out: [UInt8] = []
        NetlinkBuffer().build(appendingTo: &out, build)
        return out
    }
}

/// A buffer kept for many netlink messages: libnftnl builds each message of a batch in one
/// (a fresh 256 KiB allocation per message is an mmap, page faults and an munmap each
/// time), and the socket reads every datagram of its ACKs into another.
final class NetlinkBuffer {
    fileprivate let buffer: UnsafeMutableRawPointer
    fileprivate let size: Int

    init(size: Int = LibNFTNL.scratchSize) {
        self.size = size
        buffer = .allocate(byteCount: size, alignment: 8)
        memset(buffer, 0, size)
    }

    deinit { buffer.deallocate() }

    /// Runs `build` on the buffer (all zero) and appends the message it wrote to `out`. The
    /// bytes it wrote are zeroed again after, so attribute padding that libmnl leaves
    /// unwritten is zero in every message: the same model always encodes to the same bytes.
    func build(appendingTo out: inout [UInt8], _ build: (UnsafeMutablePointer<CChar>) -> Void) {
        build(buffer.assumingMemoryBound(to: CChar.self))
        let length = Int(buffer.load(as: UInt32.self))
        precondition(length <= size, "netlink message of \(length) bytes overran the scratch buffer")
        out.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: length))
        memset(buffer, 0, Swift.max(64, length))
    }
}

/// A NETLINK_NETFILTER socket with extended ACKs and capped ACKs (errors carry only the
/// header of the message they answer, plus the kernel's error text and attribute offset).
final class NetlinkSocket {
    private let socket: OpaquePointer
    let portID: UInt32
    private let receiveBuffer = NetlinkBuffer(size: 1 << 20)

    /// `groups`: the multicast groups to listen to (a bit each), none for requests and ACKs.
    init(groups: UInt32 = 0) throws(NetlinkError) {
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else { throw NetlinkError(operation: "netlink socket", errno: errno) }
        self.socket = socket
        guard mnl_socket_bind(socket, groups, pid_t(MNL_SOCKET_AUTOPID)) >= 0 else {
            let error = errno
            mnl_socket_close(socket)
            throw NetlinkError(operation: "netlink bind", errno: error)
        }
        portID = mnl_socket_get_portid(socket)
        var one: Int32 = 1
        _ = mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { mnl_socket_close(socket) }

    /// Joins or leaves multicast group `group` (numbered as NFNLGRP_* are, from 1).
    func membership(of group: Int32, joined: Bool) throws(NetlinkError) {
        var number = group
        guard mnl_socket_setsockopt(socket, joined ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP, &number, socklen_t(MemoryLayout<Int32>.size)) >= 0 else {
            throw NetlinkError(operation: joined ? "netlink group join" : "netlink group leave", errno: errno)
        }
    }

    /// The inode of the network namespace the socket belongs to (where it was made, whatever
    /// namespace the calling thread is in now), or nil.
    lazy var namespace: UInt64? = {
        // SIOCGSKNS: a descriptor of the socket's network namespace.
        let nsfd = ioctl(mnl_socket_get_fd(socket), 0x894C)
        guard nsfd >= 0 else { return nil }
        defer { close(nsfd) }
        var info = stat()
        return fstat(nsfd, &info) == 0 ? UInt64(info.st_ino) : nil
    }()

    /// Socket buffers sized for one batch and its ACKs (root may exceed the sysctl limits).
    func setBuffers(send: Int, receive: Int) {
        let fd = mnl_socket_get_fd(socket)
        var sendSize = Int32(clamping: send)
        var receiveSize = Int32(clamping: receive)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sendSize, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receiveSize, socklen_t(MemoryLayout<Int32>.size))
    }

    var fileDescriptor: Int32 { mnl_socket_get_fd(socket) }

    /// One datagram if one is waiting, else nil (never blocks).
    func receiveNow() throws(NetlinkError) -> [UInt8]? {
        let count = recv(mnl_socket_get_fd(socket), receiveBuffer.buffer, receiveBuffer.size, Int32(MSG_DONTWAIT))
        if count < 0 {
            if errno == EAGAIN || errno == EINTR { return nil }
            throw NetlinkError(operation: "netlink receive", errno: errno)
        }
        return Array(UnsafeRawBufferPointer(start: receiveBuffer.buffer, count: count))
    }

    func setReceiveTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) throws(NetlinkError) {
        let sent = bytes.withUnsafeBytes { raw in mnl_socket_sendto(socket, raw.baseAddress, raw.count) }
        guard sent == bytes.count else { throw NetlinkError(operation: "netlink send of \(bytes.count) bytes", errno: errno) }
    }

    /// `parts` back to back as one datagram (one sendmsg, so the kernel sees one batch).
    func send(parts: [[UInt8]]) throws(NetlinkError) {
        let total = parts.reduce(0) { $0 + $1.count }
        var vectors: [iovec] = []
        vectors.reserveCapacity(parts.count)
        // Each part stays pinned while the parts after it are, and the send runs innermost.
        func pinned(from index: Int) -> Int {
            guard index < parts.count else {
                var kernel = sockaddr_nl()
                kernel.nl_family = sa_family_t(AF_NETLINK)
                return withUnsafeMutablePointer(to: &kernel) { address in
                    vectors.withUnsafeMutableBufferPointer { vectors in
                        var header = msghdr()
                        header.msg_name = UnsafeMutableRawPointer(address)
                        header.msg_namelen = socklen_t(MemoryLayout<sockaddr_nl>.size)
                        header.msg_iov = vectors.baseAddress
                        header.msg_iovlen = vectors.count
                        return sendmsg(mnl_socket_get_fd(socket), &header, 0)
                    }
                }
            }
            return parts[index].withUnsafeBytes { raw in
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count))
                return pinned(from: index + 1)
            }
        }
        let sent = pinned(from: 0)
        guard sent == total else { throw NetlinkError(operation: "netlink send of \(total) bytes", errno: errno) }
    }

    /// One datagram (possibly several netlink messages), read into a buffer kept for the
    /// socket's life: a batch of thousands of messages is answered by as many datagrams.
    func receive() throws(NetlinkError) -> [UInt8] {
        let count = mnl_socket_recvfrom(socket, receiveBuffer.buffer, receiveBuffer.size)
        guard count >= 0 else { throw NetlinkError(operation: "netlink receive", errno: errno) }
        return Array(UnsafeRawBufferPointer(start: receiveBuffer.buffer, count: count))
    }
}

/// The index of a network interface in the current namespace, or nil.
func interfaceIndex(_ name: String) -> UInt32? {
    let index = if_nametoindex(name)
    return index == 0 ? nil : index
}

/// libnftnl attribute numbers come as named enums or (for expressions) as plain integers.
private func attr<T: RawRepresentable>(_ value: T) -> UInt16 where T.RawValue: BinaryInteger { UInt16(value.rawValue) }
private func attr(_ value: Int) -> UInt16 { UInt16(value) }
