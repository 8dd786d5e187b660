import Foundation

/// What enforcer asks of etcd: keys, transactions, watches, leases, users and roles.
///
/// A protocol so that the transport can change (today `EtcdGatewayClient`, over etcd's
/// HTTP/JSON gateway; later perhaps gRPC) without its callers changing. Every call throws
/// `EtcdError`, whose `kind` says what to do about it.
public protocol EtcdClient: Sendable {
    // MARK: Keys

    /// The keys in `keys`, as `options` says (a limit, a past revision, counts only...).
    func range(_ keys: KeyRange, _ options: RangeOptions) async throws(EtcdError) -> RangeResponse

    /// Sets `key` to `value`, attached to `lease` (0 for none).
    @discardableResult
    func put(_ key: Data, _ value: Data, lease: Int64, prevKV: Bool) async throws(EtcdError) -> PutResponse

    @discardableResult
    func delete(_ keys: KeyRange, prevKV: Bool) async throws(EtcdError) -> DeleteResponse

    /// Atomically: if every compare holds, the `success` operations, else the `failure` ones.
    func txn(if compares: [Compare], then success: [TxnOperation], else failure: [TxnOperation]) async throws(EtcdError) -> TxnResponse

    /// Forgets the history before `revision`: reads and watches there fail with `compacted`.
    @discardableResult
    func compact(revision: Int64, physical: Bool) async throws(EtcdError) -> ResponseHeader

    // MARK: Watches

    /// The changes to `keys`, from `options.startRevision` on. Returns once etcd has created
    /// the watch, so changes made after this call returns are seen even without a start revision.
    func watch(_ keys: KeyRange, _ options: WatchOptions) async throws(EtcdError) -> EtcdWatch

    // MARK: Leases

    /// A new lease of `ttl` seconds; `id` 0 lets etcd choose its ID.
    func grantLease(ttl: Int64, id: Int64) async throws(EtcdError) -> LeaseGrant

    /// Renews the lease once; returns its new TTL. A lease that is gone gives `leaseNotFound`.
    func keepAliveOnce(lease: Int64) async throws(EtcdError) -> Int64

    /// Ends the lease now, deleting its keys.
    func revokeLease(_ lease: Int64) async throws(EtcdError)

    func timeToLive(lease: Int64, keys: Bool) async throws(EtcdError) -> LeaseTimeToLive

    // MARK: Authentication and access control

    /// Logs in: every later request carries the token etcd gives, and a refused (expired)
    /// token is replaced by logging in again once, by itself.
    func authenticate(_ credentials: EtcdCredentials) async throws(EtcdError)

    func addUser(_ name: String, password: String) async throws(EtcdError)
    func addRole(_ name: String) async throws(EtcdError)
    func grant(_ permission: Permission, toRole role: String) async throws(EtcdError)
    func grantRole(_ role: String, toUser user: String) async throws(EtcdError)
    /// Deletes a user: its password no longer logs in, and the tokens it was given stop working.
    func deleteUser(_ name: String) async throws(EtcdError)
    /// Deletes a role and takes it from every user that held it.
    func deleteRole(_ name: String) async throws(EtcdError)
    /// Turns authentication on; etcd requires a user `root` with the role `root` first.
    func enableAuth() async throws(EtcdError)
    func disableAuth() async throws(EtcdError)

    // MARK: Maintenance

    /// The answering member's version, database size and raft position.
    func status() async throws(EtcdError) -> EtcdStatus

    /// Closes every connection. Call it once, when done with the client.
    func shutdown() async
}

/// A member's own account of itself (`/v3/maintenance/status`).
public struct EtcdStatus: Sendable, Equatable {
    public var header: ResponseHeader
    /// The server's version, e.g. "3.4.23".
    public var version: String
    public var dbSize: Int64
    /// The member ID of the cluster's leader.
    public var leader: UInt64
    public var raftIndex: UInt64
    public var raftTerm: UInt64

    public init(header: ResponseHeader, version: String, dbSize: Int64, leader: UInt64, raftIndex: UInt64, raftTerm: UInt64) {
        self.header = header
        self.version = version
        self.dbSize = dbSize
        self.leader = leader
        self.raftIndex = raftIndex
        self.raftTerm = raftTerm
    }
}

// Text keys and values, and the usual defaults: most of enforcer's keys are paths and its
// values JSON.
extension EtcdClient {
    public func get(_ key: String, revision: Int64 = 0) async throws(EtcdError) -> KeyValue? {
        try await range(.key(key), RangeOptions(revision: revision)).kvs.first
    }

    public func range(_ keys: KeyRange) async throws(EtcdError) -> RangeResponse {
        try await range(keys, RangeOptions())
    }

    @discardableResult
    public func put(_ key: String, _ value: String, lease: Int64 = 0, prevKV: Bool = false) async throws(EtcdError) -> PutResponse {
        try await put(Data(key.utf8), Data(value.utf8), lease: lease, prevKV: prevKV)
    }

    @discardableResult
    public func put(_ key: String, _ value: Data, lease: Int64 = 0, prevKV: Bool = false) async throws(EtcdError) -> PutResponse {
        try await put(Data(key.utf8), value, lease: lease, prevKV: prevKV)
    }

    @discardableResult
    public func delete(_ keys: KeyRange) async throws(EtcdError) -> DeleteResponse {
        try await delete(keys, prevKV: false)
    }

    public func txn(if compares: [Compare], then success: [TxnOperation]) async throws(EtcdError) -> TxnResponse {
        try await txn(if: compares, then: success, else: [])
    }

    @discardableResult
    public func compact(revision: Int64) async throws(EtcdError) -> ResponseHeader {
        try await compact(revision: revision, physical: false)
    }

    public func watch(_ keys: KeyRange, from startRevision: Int64 = 0, prevKV: Bool = false, progressNotify: Bool = false)
        async throws(EtcdError) -> EtcdWatch {
        try await watch(keys, WatchOptions(startRevision: startRevision, prevKV: prevKV, progressNotify: progressNotify))
    }

    public func grantLease(ttl: Int64) async throws(EtcdError) -> LeaseGrant {
        try await grantLease(ttl: ttl, id: 0)
    }

    public func timeToLive(lease: Int64) async throws(EtcdError) -> LeaseTimeToLive {
        try await timeToLive(lease: lease, keys: false)
    }

    public func authenticate(user: String, password: String) async throws(EtcdError) {
        try await authenticate(EtcdCredentials(user: user, password: password))
    }
}
