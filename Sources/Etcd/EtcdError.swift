import Foundation

/// Why a call to etcd failed, in words an operator can act on, keeping what etcd itself said
/// (its gRPC status code and message) and which endpoint said it.
///
/// The `kind` is what a caller branches on: `permissionDenied` is a configuration problem
/// (the role lacks a grant), `compacted` asks for a fresh snapshot, `connection` may pass if
/// retried later. The other fields are for the log.
public struct EtcdError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// The user's roles do not allow this operation on this key (gRPC 7).
        case permissionDenied
        /// The token was refused: expired, revoked, or issued by another etcd (gRPC 16).
        /// The client authenticates again once by itself before reporting this.
        case invalidAuthToken
        /// Wrong user name or password.
        case authenticationFailed
        /// Authentication is enabled on etcd, and the request carried no token.
        case authenticationRequired
        /// The request is larger than etcd accepts (`--max-request-bytes`, 1.5 MiB by default).
        case requestTooLarge
        /// The revision asked for has been compacted away; `compactRevision` is the oldest
        /// one kept, when etcd says (a watch does, a range does not).
        case compacted
        /// The revision asked for is newer than etcd's current one.
        case futureRevision
        /// The lease does not exist: it expired or was revoked.
        case leaseNotFound
        /// etcd ended a watch for a reason other than compaction.
        case watchCanceled
        /// No endpoint could be reached, or the connection broke during the call.
        case connection
        /// The TLS handshake failed: the server's certificate is not trusted, or the server
        /// refused ours.
        case tls
        /// etcd did not answer in time.
        case timeout
        /// The calling task was cancelled.
        case cancelled
        /// An HTTP answer that is not etcd's (a wrong path, a proxy in between).
        case http
        /// Any other error etcd reported, with its gRPC code.
        case server
        /// etcd's answer could not be read.
        case malformedResponse
        /// The client's own settings are unusable (a bad URL, an unreadable certificate file).
        case configuration
    }

    public var kind: Kind
    /// What happened, in plain words; for errors from etcd, etcd's own message.
    public var message: String
    /// The gRPC status code etcd returned, if it returned one.
    public var grpcCode: GRPCStatusCode?
    /// The HTTP status of the answer, if there was an answer.
    public var httpStatus: Int?
    /// The endpoint (or, when all failed, the endpoints) the error came from.
    public var endpoint: String?
    /// For `compacted` from a watch: the oldest revision etcd still has.
    public var compactRevision: Int64?

    public init(_ kind: Kind, _ message: String, grpcCode: GRPCStatusCode? = nil, httpStatus: Int? = nil,
                endpoint: String? = nil, compactRevision: Int64? = nil) {
        self.kind = kind
        self.message = message
        self.grpcCode = grpcCode
        self.httpStatus = httpStatus
        self.endpoint = endpoint
        self.compactRevision = compactRevision
    }

    public var description: String {
        var text = endpoint.map { "etcd \($0): " } ?? "etcd: "
        text += summary
        var details: [String] = []
        if !message.isEmpty, message != summary { details.append("\"\(message)\"") }
        if let grpcCode { details.append("gRPC \(grpcCode.rawValue) \(grpcCode)") }
        if let httpStatus { details.append("HTTP \(httpStatus)") }
        if !details.isEmpty { text += " (" + details.joined(separator: ", ") + ")" }
        return text
    }

    /// The kind in one sentence, for the description.
    private var summary: String {
        switch kind {
        case .permissionDenied: "permission denied: the user's roles do not allow this on this key"
        case .invalidAuthToken: "the auth token was refused (expired or invalid)"
        case .authenticationFailed: "authentication failed: wrong user name or password"
        case .authenticationRequired: "authentication is enabled and no user was given"
        case .requestTooLarge: "the request is larger than etcd accepts (--max-request-bytes, 1.5 MiB by default)"
        case .compacted:
            compactRevision.map { "the revision has been compacted; the oldest kept is \($0): read again from there" }
                ?? "the revision has been compacted: read again from a newer one"
        case .futureRevision: "the revision is newer than etcd's current revision"
        case .leaseNotFound: "the lease does not exist (expired or revoked)"
        case .watchCanceled: "etcd canceled the watch"
        case .connection: "cannot reach etcd"
        case .tls: "the TLS handshake failed"
        case .timeout: "etcd did not answer in time"
        case .cancelled: "the call was cancelled"
        case .http: "an HTTP error that is not etcd's"
        case .server: "etcd reported an error"
        case .malformedResponse: "etcd's answer could not be read"
        case .configuration: "invalid client configuration"
        }
    }
}

/// gRPC's status codes, which etcd's errors carry through the gateway (`"code": 7`).
public enum GRPCStatusCode: Int, Sendable, Equatable, CustomStringConvertible {
    case ok = 0, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists,
         permissionDenied, resourceExhausted, failedPrecondition, aborted, outOfRange, unimplemented,
         internalError, unavailable, dataLoss, unauthenticated

    /// gRPC's own spelling, as in `rpc error: code = PermissionDenied`.
    public var description: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "Canceled"
        case .unknown: "Unknown"
        case .invalidArgument: "InvalidArgument"
        case .deadlineExceeded: "DeadlineExceeded"
        case .notFound: "NotFound"
        case .alreadyExists: "AlreadyExists"
        case .permissionDenied: "PermissionDenied"
        case .resourceExhausted: "ResourceExhausted"
        case .failedPrecondition: "FailedPrecondition"
        case .aborted: "Aborted"
        case .outOfRange: "OutOfRange"
        case .unimplemented: "Unimplemented"
        case .internalError: "Internal"
        case .unavailable: "Unavailable"
        case .dataLoss: "DataLoss"
        case .unauthenticated: "Unauthenticated"
        }
    }

    init?(name: String) {
        guard let code = (0...16).lazy.compactMap({ GRPCStatusCode(rawValue: $0) }).first(where: { $0.description == name }) else { return nil }
        self = code
    }
}

extension EtcdError {
    /// The error etcd reported as gRPC `code` and `message`, sorted into a kind by the code and
    /// etcd's fixed message texts (the gateway gives nothing more specific).
    static func fromServer(code: Int, message: String, httpStatus: Int?, endpoint: String?) -> EtcdError {
        let grpc = GRPCStatusCode(rawValue: code)
        let kind: Kind
        switch grpc {
        case .permissionDenied: kind = .permissionDenied
        // "invalid auth token"; also "invalid auth management" (a token from before auth was
        // re-enabled), which a fresh token cures too.
        case .unauthenticated: kind = .invalidAuthToken
        case .invalidArgument where message.contains("authentication failed"): kind = .authenticationFailed
        case .invalidArgument where message.contains("user name is empty"): kind = .authenticationRequired
        // A token older than the last change of users or roles: a fresh one cures it.
        case .invalidArgument where message.contains("revision of auth store is old"): kind = .invalidAuthToken
        case .invalidArgument where message.contains("request is too large"): kind = .requestTooLarge
        // Past etcd's own limit by more than its gRPC margin, gRPC itself refuses the message.
        case .resourceExhausted where message.contains("larger than max"): kind = .requestTooLarge
        case .outOfRange where message.contains("compacted"): kind = .compacted
        case .outOfRange where message.contains("future revision"): kind = .futureRevision
        case .notFound where message.contains("lease not found"): kind = .leaseNotFound
        default: kind = .server
        }
        return EtcdError(kind, message, grpcCode: grpc, httpStatus: httpStatus, endpoint: endpoint)
    }

    /// A watch's `cancel_reason`, which spells the gRPC status as text:
    /// `rpc error: code = PermissionDenied desc = etcdserver: permission denied`.
    static func fromCancelReason(_ reason: String, endpoint: String?) -> EtcdError {
        let pattern = /rpc error: code = (\w+) desc = (.*)/
        if let match = reason.firstMatch(of: pattern), let code = GRPCStatusCode(name: String(match.1)) {
            let error = fromServer(code: code.rawValue, message: String(match.2), httpStatus: nil, endpoint: endpoint)
            if error.kind != .server { return error }
        }
        return EtcdError(.watchCanceled, reason, endpoint: endpoint)
    }
}
