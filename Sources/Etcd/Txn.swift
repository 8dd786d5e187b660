import Foundation

/// One condition of a transaction: a key's value, version or revision compared with a given
/// one. A key that does not exist has version, create and mod revision 0, so
/// `.modRevision("k", .equal, 0)` means "k does not exist yet".
public struct Compare: Sendable, Equatable {
    public enum Target: Sendable, Equatable {
        case value(Data)
        case version(Int64)
        case createRevision(Int64)
        case modRevision(Int64)
        case lease(Int64)
    }

    public enum Result: String, Sendable {
        case equal = "EQUAL", notEqual = "NOT_EQUAL", less = "LESS", greater = "GREATER"
    }

    /// The key compared; with a range, every key in it must satisfy the condition.
    public var keys: KeyRange
    public var result: Result
    public var target: Target

    public init(_ keys: KeyRange, _ result: Result, _ target: Target) {
        self.keys = keys
        self.result = result
        self.target = target
    }

    public static func value(_ key: String, _ result: Result, _ value: String) -> Compare {
        Compare(.key(key), result, .value(Data(value.utf8)))
    }

    public static func version(_ key: String, _ result: Result, _ version: Int64) -> Compare {
        Compare(.key(key), result, .version(version))
    }

    public static func createRevision(_ key: String, _ result: Result, _ revision: Int64) -> Compare {
        Compare(.key(key), result, .createRevision(revision))
    }

    /// The guard of a compare-and-swap: the key was last changed at `revision`.
    public static func modRevision(_ key: String, _ result: Result, _ revision: Int64) -> Compare {
        Compare(.key(key), result, .modRevision(revision))
    }
}

/// What a transaction does when its conditions hold (or do not).
public enum TxnOperation: Sendable, Equatable {
    case range(KeyRange, RangeOptions)
    case put(key: Data, value: Data, lease: Int64, prevKV: Bool)
    case delete(KeyRange, prevKV: Bool)

    public static func range(_ keys: KeyRange) -> TxnOperation { .range(keys, RangeOptions()) }

    public static func put(_ key: String, _ value: String, lease: Int64 = 0, prevKV: Bool = false) -> TxnOperation {
        .put(key: Data(key.utf8), value: Data(value.utf8), lease: lease, prevKV: prevKV)
    }

    public static func delete(_ keys: KeyRange) -> TxnOperation { .delete(keys, prevKV: false) }
}

/// The answer of one operation of a transaction, in the order the operations were given.
public enum TxnOperationResponse: Sendable, Equatable {
    case range(RangeResponse)
    case put(PutResponse)
    case delete(DeleteResponse)
}

public struct TxnResponse: Sendable, Equatable {
    public var header: ResponseHeader
    /// All conditions held, so the success operations ran (else the failure ones did).
    public var succeeded: Bool
    public var responses: [TxnOperationResponse]

    public init(header: ResponseHeader, succeeded: Bool, responses: [TxnOperationResponse]) {
        self.header = header
        self.succeeded = succeeded
        self.responses = responses
    }
}
