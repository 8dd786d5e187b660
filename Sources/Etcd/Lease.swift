import Foundation

/// A lease etcd granted: keys put with it are deleted when it expires, `ttl` seconds after
/// the last keep-alive (so a host that stops renewing disappears from the store by itself).
public struct LeaseGrant: Sendable, Equatable {
    public var header: ResponseHeader
    public var id: Int64
    /// The TTL etcd chose, in seconds (it may raise a very short one to its minimum).
    public var ttl: Int64

    public init(header: ResponseHeader, id: Int64, ttl: Int64) {
        self.header = header
        self.id = id
        self.ttl = ttl
    }
}

public struct LeaseTimeToLive: Sendable, Equatable {
    public var header: ResponseHeader
    public var id: Int64
    /// Seconds left; -1 when the lease has expired or never existed.
    public var ttl: Int64
    /// The TTL it was granted with.
    public var grantedTTL: Int64
    /// The keys attached to it, when asked for.
    public var keys: [Data]

    public init(header: ResponseHeader, id: Int64, ttl: Int64, grantedTTL: Int64, keys: [Data] = []) {
        self.header = header
        self.id = id
        self.ttl = ttl
        self.grantedTTL = grantedTTL
        self.keys = keys
    }
}
