import Foundation

/// Where an answer stands in etcd's history. `revision` is the store's revision when the
/// request was served: a read at that revision later gives the same answer (until compacted),
/// and a watch from `revision + 1` misses nothing that came after.
public struct ResponseHeader: Sendable, Equatable {
    public var clusterID: UInt64
    public var memberID: UInt64
    public var revision: Int64
    public var raftTerm: UInt64

    public init(clusterID: UInt64 = 0, memberID: UInt64 = 0, revision: Int64 = 0, raftTerm: UInt64 = 0) {
        self.clusterID = clusterID
        self.memberID = memberID
        self.revision = revision
        self.raftTerm = raftTerm
    }
}

/// One key as etcd stores it. Keys and values are bytes; `keyString` and `valueString` read
/// them as UTF-8 for the common case of text.
public struct KeyValue: Sendable, Equatable {
    public var key: Data
    public var value: Data
    /// The revision that created the key (its current life: a deleted and re-created key has a new one).
    public var createRevision: Int64
    /// The revision of the last change to the key: what a compare-and-swap guards on.
    public var modRevision: Int64
    /// How many times the key was written since it was created (1 after the first put).
    public var version: Int64
    /// The lease the key is attached to, 0 for none.
    public var lease: Int64

    public init(key: Data, value: Data = Data(), createRevision: Int64 = 0, modRevision: Int64 = 0, version: Int64 = 0, lease: Int64 = 0) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    public var keyString: String { String(decoding: key, as: UTF8.self) }
    public var valueString: String { String(decoding: value, as: UTF8.self) }
}

/// The keys a request covers: one key, or every key from `key` up to (not including)
/// `rangeEnd`, etcd's way of saying "a prefix" or "a range".
public struct KeyRange: Sendable, Equatable {
    public var key: Data
    /// nil for the single key `key`.
    public var rangeEnd: Data?

    public init(key: Data, rangeEnd: Data? = nil) {
        self.key = key
        self.rangeEnd = rangeEnd
    }

    public static func key(_ key: Data) -> KeyRange { KeyRange(key: key) }
    public static func key(_ key: String) -> KeyRange { KeyRange(key: Data(key.utf8)) }

    /// Every key that starts with `prefix`.
    public static func prefix(_ prefix: Data) -> KeyRange { KeyRange(key: prefix, rangeEnd: prefixEnd(prefix)) }
    public static func prefix(_ prefix: String) -> KeyRange { .prefix(Data(prefix.utf8)) }

    /// The keys from `start` up to, not including, `end`.
    public static func range(from start: String, to end: String) -> KeyRange { KeyRange(key: Data(start.utf8), rangeEnd: Data(end.utf8)) }

    /// Every key from `start` on.
    public static func from(_ start: String) -> KeyRange { KeyRange(key: Data(start.utf8), rangeEnd: Data([0])) }

    /// Every key in the store.
    public static let all = KeyRange(key: Data([0]), rangeEnd: Data([0]))

    /// The first key after every key with this prefix: the prefix with its last byte that is not
    /// 0xff raised by one, the 0xff bytes after it dropped. A prefix of only 0xff bytes (or an
    /// empty one) has no such key; etcd reads "\0" as "to the end".
    static func prefixEnd(_ prefix: Data) -> Data {
        var end = [UInt8](prefix)
        while let last = end.last {
            if last < 0xff {
                end[end.count - 1] = last + 1
                return Data(end)
            }
            end.removeLast()
        }
        return Data([0])
    }
}

/// How to read a range.
public struct RangeOptions: Sendable, Equatable {
    public enum SortTarget: String, Sendable { case key = "KEY", version = "VERSION", createRevision = "CREATE", modRevision = "MOD", value = "VALUE" }
    public enum SortOrder: String, Sendable { case ascending = "ASCEND", descending = "DESCEND" }
    public struct Sort: Sendable, Equatable {
        public var target: SortTarget
        public var order: SortOrder
        public init(_ target: SortTarget, _ order: SortOrder) {
            self.target = target
            self.order = order
        }
    }

    /// At most this many keys; 0 for all.
    public var limit: Int64
    /// Read the store as it was at this revision (0: the current one). A past revision that
    /// has been compacted gives the error `compacted`.
    public var revision: Int64
    public var keysOnly: Bool
    /// Only the count, no keys.
    public var countOnly: Bool
    /// Sorted by this target in this order; nil leaves etcd's order (by key, ascending).
    public var sort: Sort?
    /// Answer from the member asked, without a consensus round (may be stale).
    public var serializable: Bool

    public init(limit: Int64 = 0, revision: Int64 = 0, keysOnly: Bool = false, countOnly: Bool = false,
                sort: Sort? = nil, serializable: Bool = false) {
        self.limit = limit
        self.revision = revision
        self.keysOnly = keysOnly
        self.countOnly = countOnly
        self.sort = sort
        self.serializable = serializable
    }
}

public struct RangeResponse: Sendable, Equatable {
    public var header: ResponseHeader
    public var kvs: [KeyValue]
    /// More keys were in the range than `limit` let through.
    public var more: Bool
    /// How many keys are in the range (all of them, whatever the limit).
    public var count: Int64

    public init(header: ResponseHeader, kvs: [KeyValue], more: Bool, count: Int64) {
        self.header = header
        self.kvs = kvs
        self.more = more
        self.count = count
    }
}

public struct PutResponse: Sendable, Equatable {
    public var header: ResponseHeader
    /// The key as it was before, when asked for (`prevKV`) and it existed.
    public var prevKV: KeyValue?

    public init(header: ResponseHeader, prevKV: KeyValue? = nil) {
        self.header = header
        self.prevKV = prevKV
    }
}

public struct DeleteResponse: Sendable, Equatable {
    public var header: ResponseHeader
    public var deleted: Int64
    /// The deleted keys as they were, when asked for (`prevKV`).
    public var prevKVs: [KeyValue]

    public init(header: ResponseHeader, deleted: Int64, prevKVs: [KeyValue] = []) {
        self.header = header
        self.deleted = deleted
        self.prevKVs = prevKVs
    }
}
