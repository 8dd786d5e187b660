import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// An `EtcdClient` over etcd's HTTP/JSON gateway (`POST /v3/...`), which every etcd 3.4
/// member serves on its client port: no generated code and no gRPC stack, one HTTP client.
///
/// - Endpoints: the members' client URLs. A request goes to the last one that answered; when
///   it cannot be reached, to the next. A request that may have reached etcd before its
///   connection broke is retried elsewhere only if repeating it is harmless (reads, watches,
///   keep-alives): a put or a transaction is not sent twice.
/// - Authentication: after `authenticate` (or with `credentials` given here), each request
///   carries the token, and a refused token is replaced once by logging in again.
/// - Watches and keep-alives are streamed answers: one HTTP request each, held open.
///
/// Call `shutdown()` when done: the HTTP client beneath insists on it (a debug build stops
/// with a precondition failure otherwise).
public final class EtcdGatewayClient: EtcdClient {
    /// The endpoints' base URLs, e.g. `https://10.0.0.5:2379`.
    public let endpoints: [String]
    /// How long a request may wait for etcd's answer to begin (streams then last as long as they last).
    public let requestTimeout: Duration

    private let http: HTTPClient
    private let state: Mutex<State>
    private let received = ReceivedBytes()

    /// The bytes of etcd's answers this client has read so far (bodies: the JSON of unary
    /// answers and of streamed lines, without HTTP headers and chunk framing). What an agent
    /// costs the network per change is this, counted before and after.
    public var bytesReceived: Int { received.total }

    private struct State {
        var credentials: EtcdCredentials?
        var token: String?
        /// The endpoint to try first: the last one that answered.
        var preferred = 0
    }

    /// An answer larger than this is refused rather than held in memory.
    static let maximumAnswer = 512 << 20

    /// - Parameters:
    ///   - endpoints: client URLs, `http://` or `https://`; at least one.
    ///   - tls: for `https://` endpoints: the CA to trust and this client's certificate, if etcd
    ///     asks for one. nil trusts the system's CAs.
    ///   - credentials: a user to log in as when etcd asks (on the first request that needs it).
    ///   - connectTimeout: how long to try one endpoint before the next.
    public init(endpoints: [String], tls: EtcdTLS? = nil, credentials: EtcdCredentials? = nil,
                connectTimeout: Duration = .seconds(3), requestTimeout: Duration = .seconds(10)) throws(EtcdError) {
        guard !endpoints.isEmpty else { throw EtcdError(.configuration, "no etcd endpoint given") }
        var normalized: [String] = []
        for endpoint in endpoints {
            var text = endpoint
            while text.hasSuffix("/") { text.removeLast() }
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
                  let host = url.host, !host.isEmpty, url.path.isEmpty else {
                throw EtcdError(.configuration, "\(endpoint) is not an etcd client URL (http://host:port or https://host:port)")
            }
            if tls != nil, scheme == "http" {
                throw EtcdError(.configuration, "TLS settings were given, but \(endpoint) is plain http://")
            }
            normalized.append(text)
        }
        self.endpoints = normalized
        self.requestTimeout = requestTimeout

        var configuration = HTTPClient.Configuration(
            tlsConfiguration: try tls?.configuration(),
            redirectConfiguration: .disallow,
            // No read timeout: a quiet watch is idle for as long as nothing changes.
            timeout: HTTPClient.Configuration.Timeout(connect: TimeAmount(connectTimeout), read: nil),
            decompression: .disabled)
        // The gateway's streams are chunked HTTP/1.1 answers; one connection per request in flight.
        configuration.httpVersion = .http1Only
        // An endpoint that refuses the connection fails now, so the next is tried at once
        // (retrying would wait out the whole connect timeout on a member that is down).
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        state = Mutex(State(credentials: credentials))
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: Keys

    public func range(_ keys: KeyRange, _ options: RangeOptions) async throws(EtcdError) -> RangeResponse {
        let answer: WireRangeResponse = try await call("/v3/kv/range", WireRangeRequest(keys, options), repeatable: true)
        return answer.response
    }

    @discardableResult
    public func put(_ key: Data, _ value: Data, lease: Int64, prevKV: Bool) async throws(EtcdError) -> PutResponse {
        let answer: WirePutResponse = try await call("/v3/kv/put", WirePutRequest(key: key, value: value, lease: lease, prevKV: prevKV))
        return answer.response
    }

    @discardableResult
    public func delete(_ keys: KeyRange, prevKV: Bool) async throws(EtcdError) -> DeleteResponse {
        let answer: WireDeleteRangeResponse = try await call("/v3/kv/deleterange", WireDeleteRangeRequest(keys, prevKV: prevKV))
        return answer.response
    }

    public func txn(if compares: [Compare], then success: [TxnOperation], else failure: [TxnOperation]) async throws(EtcdError) -> TxnResponse {
        let request = WireTxnRequest(compare: compares.map(WireCompare.init), success: success.map(WireRequestOp.init),
                                     failure: failure.map(WireRequestOp.init))
        let answer: WireTxnResponse = try await call("/v3/kv/txn", request)
        let succeeded = answer.succeeded ?? false
        let operations = succeeded ? success : failure
        let responses = answer.responses ?? []
        guard responses.count == operations.count else {
            throw EtcdError(.malformedResponse, "a transaction of \(operations.count) operations answered \(responses.count)")
        }
        return TxnResponse(header: answer.header.header, succeeded: succeeded,
                           responses: zip(responses, operations).map { $0.response(for: $1) })
    }

    @discardableResult
    public func compact(revision: Int64, physical: Bool) async throws(EtcdError) -> ResponseHeader {
        let answer: WireHeaderOnly = try await call("/v3/kv/compaction", WireCompactionRequest(revision: WireInt(revision), physical: physical ? true : nil))
        return answer.header.header
    }

    // MARK: Watches

    public func watch(_ keys: KeyRange, _ options: WatchOptions) async throws(EtcdError) -> EtcdWatch {
        let body = try Self.encode(WireWatchRequest(keys, options))
        return try await authenticated { token throws(EtcdError) in
            let (response, endpoint) = try await self.send("/v3/watch", body, token: token, repeatable: true)
            guard response.status == .ok else { throw await self.failure(of: response, endpoint: endpoint) }
            let stream = GatewayWatchStream(response.body, endpoint: endpoint, counting: self.received)
            try await stream.awaitCreated()
            return EtcdWatch(next: stream.next)
        }
    }

    // MARK: Leases

    public func grantLease(ttl: Int64, id: Int64) async throws(EtcdError) -> LeaseGrant {
        let answer: WireLeaseGrantResponse = try await call("/v3/lease/grant", WireLeaseGrantRequest(TTL: WireInt(ttl), ID: id == 0 ? nil : WireInt(id)))
        if let error = answer.error, !error.isEmpty { throw EtcdError(.server, error) }
        return LeaseGrant(header: answer.header.header, id: answer.ID.int, ttl: answer.TTL.int)
    }

    /// The gateway answers a keep-alive as a stream (it is one in gRPC); the first message is
    /// the renewal. A lease that is gone is renewed to TTL 0, as etcd's own client reads it.
    public func keepAliveOnce(lease: Int64) async throws(EtcdError) -> Int64 {
        let body = try Self.encode(WireLeaseID(ID: WireInt(lease)))
        return try await authenticated { token throws(EtcdError) in
            let (response, endpoint) = try await self.send("/v3/lease/keepalive", body, token: token, repeatable: true)
            guard response.status == .ok else { throw await self.failure(of: response, endpoint: endpoint) }
            let lines = GatewayLineReader(response.body, counting: self.received)
            let line: [UInt8]?
            do {
                line = try await lines.nextLine()
            } catch {
                throw Self.transportError(error, endpoint: endpoint)
            }
            guard let line else { throw EtcdError(.connection, "etcd closed the keep-alive without an answer", endpoint: endpoint) }
            let decoded = try Self.decode(WireKeepAliveLine.self, Data(line), endpoint: endpoint)
            if let failure = decoded.error {
                throw EtcdError.fromServer(code: failure.grpc_code ?? GRPCStatusCode.unknown.rawValue, message: failure.message ?? "",
                                           httpStatus: failure.http_code, endpoint: endpoint)
            }
            let ttl = decoded.result?.TTL.int ?? 0
            guard ttl > 0 else {
                throw EtcdError(.leaseNotFound, "etcdserver: requested lease not found", grpcCode: .notFound, endpoint: endpoint)
            }
            return ttl
        }
    }

    public func revokeLease(_ lease: Int64) async throws(EtcdError) {
        let _: WireHeaderOnly = try await call("/v3/lease/revoke", WireLeaseID(ID: WireInt(lease)))
    }

    public func timeToLive(lease: Int64, keys: Bool) async throws(EtcdError) -> LeaseTimeToLive {
        let answer: WireTimeToLiveResponse = try await call("/v3/lease/timetolive", WireTimeToLiveRequest(ID: WireInt(lease), keys: keys ? true : nil),
                                                            repeatable: true)
        return LeaseTimeToLive(header: answer.header.header, id: answer.ID.int, ttl: answer.TTL.int, grantedTTL: answer.grantedTTL.int,
                               keys: answer.keys ?? [])
    }

    // MARK: Authentication and access control

    public func authenticate(_ credentials: EtcdCredentials) async throws(EtcdError) {
        _ = try await logIn(credentials)
    }

    /// The token etcd gives `credentials`, kept for the requests that follow.
    private func logIn(_ credentials: EtcdCredentials) async throws(EtcdError) -> String {
        let answer: WireAuthenticateResponse = try await call("/v3/auth/authenticate",
                                                              WireAuthenticateRequest(name: credentials.user, password: credentials.password),
                                                              repeatable: true, authenticated: false)
        guard let token = answer.token, !token.isEmpty else { throw EtcdError(.malformedResponse, "etcd accepted the login but gave no token") }
        state.withLock {
            $0.credentials = credentials
            $0.token = token
        }
        return token
    }

    /// The token sent with each request, if logged in.
    var token: String? { state.withLock { $0.token } }

    public func addUser(_ name: String, password: String) async throws(EtcdError) {
        let _: WireHeaderOnly = try await call("/v3/auth/user/add", WireUserAddRequest(name: name, password: password))
    }

    public func addRole(_ name: String) async throws(EtcdError) {
        let _: WireHeaderOnly = try await call("/v3/auth/role/add", WireRoleAddRequest(name: name))
    }

    public func grant(_ permission: Permission, toRole role: String) async throws(EtcdError) {
        let perm = WireRoleGrantRequest.Perm(permType: permission.access.rawValue, key: permission.keys.key, range_end: permission.keys.rangeEnd)
        let _: WireHeaderOnly = try await call("/v3/auth/role/grant", WireRoleGrantRequest(name: role, perm: perm))
    }

    public func grantRole(_ role: String, toUser user: String) async throws(EtcdError) {
        let _: WireHeaderOnly = try await call("/v3/auth/user/grant", WireUserGrantRoleRequest(user: user, role: role))
    }

    public func deleteUser(_ name: String) async throws(EtcdError) {
        let _: WireHeaderOnly = try await call("/v3/auth/user/delete", WireUserDeleteRequest(name: name))
    }

    public func deleteRole(_ name: String) async throws(EtcdError) {
        let _: WireHeaderOnly = try await call("/v3/auth/role/delete", WireRoleDeleteRequest(role: name))
    }

    public func enableAuth() async throws(EtcdError) {
        let _: WireHeaderOnly = try await call("/v3/auth/enable", WireEmpty())
    }

    public func disableAuth() async throws(EtcdError) {
        let _: WireHeaderOnly = try await call("/v3/auth/disable", WireEmpty())
    }

    // MARK: Maintenance

    public func status() async throws(EtcdError) -> EtcdStatus {
        let answer: WireStatusResponse = try await call("/v3/maintenance/status", WireEmpty(), repeatable: true)
        return answer.status
    }

    // MARK: The exchange

    /// One unary call: the request as JSON, the answer decoded, an error answer turned into
    /// an `EtcdError`. `repeatable`: sending it twice does no harm, so a broken connection
    /// may be retried on another endpoint.
    private func call<Answer: Decodable>(_ path: String, _ request: some Encodable, repeatable: Bool = false,
                                         authenticated withToken: Bool = true) async throws(EtcdError) -> Answer {
        let body = try Self.encode(request)
        let exchange = { (token: String?) async throws(EtcdError) -> Answer in
            let (response, endpoint) = try await self.send(path, body, token: token, repeatable: repeatable)
            let bytes = try await self.collect(response, endpoint: endpoint)
            guard response.status == .ok else { throw Self.failure(status: response.status, bytes, endpoint: endpoint) }
            return try Self.decode(Answer.self, Data(bytes.readableBytesView), endpoint: endpoint)
        }
        return withToken ? try await authenticated(exchange) : try await exchange(nil)
    }

    /// Runs `exchange` with the current token; if etcd refuses the token (or asks for one) and
    /// the client knows a user, logs in again and runs it once more.
    private func authenticated<T>(_ exchange: (String?) async throws(EtcdError) -> T) async throws(EtcdError) -> T {
        let (token, credentials) = state.withLock { ($0.token, $0.credentials) }
        do {
            return try await exchange(token)
        } catch let error where error.kind == .invalidAuthToken || error.kind == .authenticationRequired {
            guard let credentials else { throw error }
            return try await exchange(try await logIn(credentials))
        }
    }

    /// Sends the request to the preferred endpoint, then the others in turn while they cannot
    /// be reached; returns the answer's head (its body still to read) and who answered.
    private func send(_ path: String, _ body: ByteBuffer, token: String?, repeatable: Bool) async throws(EtcdError) -> (HTTPClientResponse, String) {
        let first = state.withLock { $0.preferred }
        var failures: [EtcdError] = []
        for offset in endpoints.indices {
            let index = (first + offset) % endpoints.count
            let endpoint = endpoints[index]
            var request = HTTPClientRequest(url: endpoint + path)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            // The raw token: etcd's gateway takes the header as it is, with no "Bearer".
            if let token { request.headers.add(name: "Authorization", value: token) }
            request.body = .bytes(body)
            do {
                let response = try await http.execute(request, deadline: .now() + TimeAmount(requestTimeout))
                if offset != 0 { state.withLock { $0.preferred = index } }
                return (response, endpoint)
            } catch {
                let failure = Self.transportError(error, endpoint: endpoint, timeout: requestTimeout)
                guard failure.kind == .connection, repeatable || Self.neverSent(error) else { throw failure }
                failures.append(failure)
            }
        }
        guard failures.count > 1 else { throw failures[0] }
        throw EtcdError(.connection, failures.map { "\($0.endpoint ?? ""): \($0.message)" }.joined(separator: "; "),
                        endpoint: endpoints.joined(separator: ", "))
    }

    private func collect(_ response: HTTPClientResponse, endpoint: String) async throws(EtcdError) -> ByteBuffer {
        do {
            let bytes = try await response.body.collect(upTo: Self.maximumAnswer)
            received.add(bytes.readableBytes)
            return bytes
        } catch is NIOTooManyBytesError {
            throw EtcdError(.malformedResponse, "the answer is larger than \(Self.maximumAnswer >> 20) MiB", endpoint: endpoint)
        } catch {
            throw Self.transportError(error, endpoint: endpoint)
        }
    }

    /// The error a non-200 streamed answer carries.
    private func failure(of response: HTTPClientResponse, endpoint: String) async -> EtcdError {
        do throws(EtcdError) {
            return Self.failure(status: response.status, try await collect(response, endpoint: endpoint), endpoint: endpoint)
        } catch {
            return error
        }
    }

    /// etcd's error answer, `{"error": ..., "code": 7}`; or, when the answer is not etcd's
    /// (a wrong path, a proxy), the HTTP status and the start of the text.
    static func failure(status: HTTPResponseStatus, _ bytes: ByteBuffer, endpoint: String) -> EtcdError {
        let data = Data(bytes.readableBytesView)
        if let answer = try? JSONDecoder().decode(WireError.self, from: data), let code = answer.code {
            return .fromServer(code: code, message: answer.message ?? answer.error ?? "", httpStatus: Int(status.code), endpoint: endpoint)
        }
        let text = String(decoding: data.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return EtcdError(.http, "\(status.code) \(status.reasonPhrase)\(text.isEmpty ? "" : ": " + text)", httpStatus: Int(status.code), endpoint: endpoint)
    }

    static func encode(_ request: some Encodable) throws(EtcdError) -> ByteBuffer {
        do {
            return ByteBuffer(bytes: try JSONEncoder().encode(request))
        } catch {
            throw EtcdError(.configuration, "cannot encode the request: \(error)")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ data: Data, endpoint: String) throws(EtcdError) -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            let start = String(decoding: data.prefix(120), as: UTF8.self)
            throw EtcdError(.malformedResponse, "cannot read \(start): \(error)", endpoint: endpoint)
        }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
