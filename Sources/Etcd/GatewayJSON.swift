import Foundation

// etcd's messages as its HTTP/JSON gateway spells them: protobuf's JSON mapping with the
// .proto field names (so `range_end`, but `ID`, `TTL`, `permType`, `dbSize`). Properties are
// named exactly as on the wire, so the coder needs no key tables. The mapping's rules:
// bytes are base64; 64-bit integers are JSON strings (numbers are accepted too); enums are
// their names; a field at its zero value (0, false, "", the first enum name) is left out.

/// A 64-bit integer, which protobuf's JSON writes as a string so JavaScript keeps every digit.
struct WireInt: Codable, Sendable, Equatable {
    var value: Int64

    init(_ value: Int64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            guard let value = Int64(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a 64-bit integer: \(text)")
            }
            self.value = value
        } else {
            value = try container.decode(Int64.self)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(value))
    }
}

/// An unsigned 64-bit integer (member and cluster IDs, raft positions), also a string.
struct WireUInt: Decodable, Sendable, Equatable {
    var value: UInt64

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            guard let value = UInt64(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an unsigned 64-bit integer: \(text)")
            }
            self.value = value
        } else {
            value = try container.decode(UInt64.self)
        }
    }
}

/// The optional wire field for a value: absent at zero, as etcd itself writes it.
private func wire(_ value: Int64) -> WireInt? { value == 0 ? nil : WireInt(value) }
private func wire(_ flag: Bool) -> Bool? { flag ? true : nil }

extension Optional where Wrapped == WireInt {
    var int: Int64 { self?.value ?? 0 }
}

extension Optional where Wrapped == WireUInt {
    var uint: UInt64 { self?.value ?? 0 }
}

// MARK: Errors

/// A failed call: `{"error": "etcdserver: permission denied", "message": ..., "code": 7}`,
/// with an HTTP status that follows the code (403 here).
struct WireError: Decodable {
    var error: String?
    var message: String?
    var code: Int?
}

/// A failed stream (watch, keep-alive) after its first message: one line
/// `{"error": {"grpc_code": 14, "http_code": 503, "message": ..., "http_status": ...}}`.
struct WireStreamError: Decodable {
    var grpc_code: Int?
    var http_code: Int?
    var message: String?
}

// MARK: Common

struct WireHeader: Decodable {
    var cluster_id: WireUInt?
    var member_id: WireUInt?
    var revision: WireInt?
    var raft_term: WireUInt?

    var header: ResponseHeader {
        ResponseHeader(clusterID: cluster_id.uint, memberID: member_id.uint, revision: revision.int, raftTerm: raft_term.uint)
    }
}

extension Optional where Wrapped == WireHeader {
    var header: ResponseHeader { self?.header ?? ResponseHeader() }
}

struct WireKeyValue: Decodable {
    var key: Data?
    var create_revision: WireInt?
    var mod_revision: WireInt?
    var version: WireInt?
    var value: Data?
    var lease: WireInt?

    var keyValue: KeyValue {
        KeyValue(key: key ?? Data(), value: value ?? Data(), createRevision: create_revision.int, modRevision: mod_revision.int,
                 version: version.int, lease: lease.int)
    }
}

/// Any answer whose only field of interest is its header (compaction, auth administration).
struct WireHeaderOnly: Decodable {
    var header: WireHeader?
}

/// An empty request body, `{}`.
struct WireEmpty: Encodable {}

// MARK: Keys

struct WireRangeRequest: Encodable {
    var key: Data
    var range_end: Data?
    var limit: WireInt?
    var revision: WireInt?
    var sort_order: String?
    var sort_target: String?
    var serializable: Bool?
    var keys_only: Bool?
    var count_only: Bool?

    init(_ keys: KeyRange, _ options: RangeOptions) {
        key = keys.key
        range_end = keys.rangeEnd
        limit = wire(options.limit)
        revision = wire(options.revision)
        sort_order = options.sort?.order.rawValue
        sort_target = options.sort?.target.rawValue
        serializable = wire(options.serializable)
        keys_only = wire(options.keysOnly)
        count_only = wire(options.countOnly)
    }
}

struct WireRangeResponse: Decodable {
    var header: WireHeader?
    var kvs: [WireKeyValue]?
    var more: Bool?
    var count: WireInt?

    var response: RangeResponse {
        RangeResponse(header: header.header, kvs: (kvs ?? []).map(\.keyValue), more: more ?? false, count: count.int)
    }
}

struct WirePutRequest: Encodable {
    var key: Data
    var value: Data
    var lease: WireInt?
    var prev_kv: Bool?

    init(key: Data, value: Data, lease: Int64, prevKV: Bool) {
        self.key = key
        self.value = value
        self.lease = wire(lease)
        prev_kv = wire(prevKV)
    }
}

struct WirePutResponse: Decodable {
    var header: WireHeader?
    var prev_kv: WireKeyValue?

    var response: PutResponse { PutResponse(header: header.header, prevKV: prev_kv?.keyValue) }
}

struct WireDeleteRangeRequest: Encodable {
    var key: Data
    var range_end: Data?
    var prev_kv: Bool?

    init(_ keys: KeyRange, prevKV: Bool) {
        key = keys.key
        range_end = keys.rangeEnd
        prev_kv = wire(prevKV)
    }
}

struct WireDeleteRangeResponse: Decodable {
    var header: WireHeader?
    var deleted: WireInt?
    var prev_kvs: [WireKeyValue]?

    var response: DeleteResponse {
        DeleteResponse(header: header.header, deleted: deleted.int, prevKVs: (prev_kvs ?? []).map(\.keyValue))
    }
}

struct WireCompactionRequest: Encodable {
    var revision: WireInt
    var physical: Bool?
}

// MARK: Transactions

struct WireCompare: Encodable {
    var result: String
    var target: String
    var key: Data
    var range_end: Data?
    var version: WireInt?
    var create_revision: WireInt?
    var mod_revision: WireInt?
    var value: Data?
    var lease: WireInt?

    /// The compared field is always written, even at zero: "mod_revision = 0" (the key does
    /// not exist) is a real condition.
    init(_ compare: Compare) {
        result = compare.result.rawValue
        key = compare.keys.key
        range_end = compare.keys.rangeEnd
        switch compare.target {
        case .value(let data): target = "VALUE"; value = data
        case .version(let number): target = "VERSION"; version = WireInt(number)
        case .createRevision(let number): target = "CREATE"; create_revision = WireInt(number)
        case .modRevision(let number): target = "MOD"; mod_revision = WireInt(number)
        case .lease(let number): target = "LEASE"; lease = WireInt(number)
        }
    }
}

struct WireRequestOp: Encodable {
    var request_range: WireRangeRequest?
    var request_put: WirePutRequest?
    var request_delete_range: WireDeleteRangeRequest?

    init(_ operation: TxnOperation) {
        switch operation {
        case .range(let keys, let options): request_range = WireRangeRequest(keys, options)
        case .put(let key, let value, let lease, let prevKV): request_put = WirePutRequest(key: key, value: value, lease: lease, prevKV: prevKV)
        case .delete(let keys, let prevKV): request_delete_range = WireDeleteRangeRequest(keys, prevKV: prevKV)
        }
    }
}

struct WireTxnRequest: Encodable {
    var compare: [WireCompare]
    var success: [WireRequestOp]
    var failure: [WireRequestOp]
}

struct WireResponseOp: Decodable {
    var response_range: WireRangeResponse?
    var response_put: WirePutResponse?
    var response_delete_range: WireDeleteRangeResponse?

    /// An operation's answer; one whose fields were all at zero comes as `{}`, and then only
    /// the operation asked for tells which it was.
    func response(for operation: TxnOperation) -> TxnOperationResponse {
        if let response_range { return .range(response_range.response) }
        if let response_put { return .put(response_put.response) }
        if let response_delete_range { return .delete(response_delete_range.response) }
        switch operation {
        case .range: return .range(RangeResponse(header: ResponseHeader(), kvs: [], more: false, count: 0))
        case .put: return .put(PutResponse(header: ResponseHeader()))
        case .delete: return .delete(DeleteResponse(header: ResponseHeader(), deleted: 0))
        }
    }
}

struct WireTxnResponse: Decodable {
    var header: WireHeader?
    var succeeded: Bool?
    var responses: [WireResponseOp]?
}

// MARK: Watches

struct WireWatchRequest: Encodable {
    struct Create: Encodable {
        var key: Data
        var range_end: Data?
        var start_revision: WireInt?
        var progress_notify: Bool?
        var prev_kv: Bool?
    }

    var create_request: Create

    init(_ keys: KeyRange, _ options: WatchOptions) {
        create_request = Create(key: keys.key, range_end: keys.rangeEnd, start_revision: wire(options.startRevision),
                                progress_notify: wire(options.progressNotify), prev_kv: wire(options.prevKV))
    }
}

/// One line of a watch's answer: `{"result": {...}}`, or `{"error": {...}}` if the stream failed.
struct WireWatchLine: Decodable {
    struct Result: Decodable {
        var header: WireHeader?
        var watch_id: WireInt?
        var created: Bool?
        var canceled: Bool?
        var compact_revision: WireInt?
        var cancel_reason: String?
        var events: [WireEvent]?
    }

    var result: Result?
    var error: WireStreamError?
}

struct WireEvent: Decodable {
    /// "PUT" is the enum's zero, so a put comes without a type.
    var type: String?
    var kv: WireKeyValue?
    var prev_kv: WireKeyValue?

    var event: WatchEvent {
        WatchEvent(kind: type == "DELETE" ? .delete : .put, kv: kv?.keyValue ?? KeyValue(key: Data()), prevKV: prev_kv?.keyValue)
    }
}

// MARK: Leases

struct WireLeaseGrantRequest: Encodable {
    var TTL: WireInt
    var ID: WireInt?
}

struct WireLeaseGrantResponse: Decodable {
    var header: WireHeader?
    var ID: WireInt?
    var TTL: WireInt?
    /// etcd's own field (not the gateway's error): a grant it could not make.
    var error: String?
}

struct WireLeaseID: Encodable {
    var ID: WireInt
}

/// One line of a keep-alive's answer.
struct WireKeepAliveLine: Decodable {
    struct Result: Decodable {
        var header: WireHeader?
        var ID: WireInt?
        var TTL: WireInt?
    }

    var result: Result?
    var error: WireStreamError?
}

struct WireTimeToLiveRequest: Encodable {
    var ID: WireInt
    var keys: Bool?
}

struct WireTimeToLiveResponse: Decodable {
    var header: WireHeader?
    var ID: WireInt?
    var TTL: WireInt?
    var grantedTTL: WireInt?
    var keys: [Data]?
}

// MARK: Authentication

struct WireAuthenticateRequest: Encodable {
    var name: String
    var password: String
}

struct WireAuthenticateResponse: Decodable {
    var header: WireHeader?
    var token: String?
}

struct WireUserAddRequest: Encodable {
    var name: String
    var password: String
}

struct WireRoleAddRequest: Encodable {
    var name: String
}

struct WireUserDeleteRequest: Encodable {
    var name: String
}

/// etcd names the field `role` here, where adding a role names it `name`.
struct WireRoleDeleteRequest: Encodable {
    var role: String
}

struct WireRoleGrantRequest: Encodable {
    struct Perm: Encodable {
        var permType: String
        var key: Data
        var range_end: Data?
    }

    var name: String
    var perm: Perm
}

struct WireUserGrantRoleRequest: Encodable {
    var user: String
    var role: String
}

// MARK: Maintenance

struct WireStatusResponse: Decodable {
    var header: WireHeader?
    var version: String?
    var dbSize: WireInt?
    var leader: WireUInt?
    var raftIndex: WireUInt?
    var raftTerm: WireUInt?

    var status: EtcdStatus {
        EtcdStatus(header: header.header, version: version ?? "", dbSize: dbSize.int, leader: leader.uint,
                   raftIndex: raftIndex.uint, raftTerm: raftTerm.uint)
    }
}
