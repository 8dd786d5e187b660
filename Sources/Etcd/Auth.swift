import Foundation

/// A user name and password for etcd's authentication. The client keeps them to get a new
/// token when the old one expires (simple tokens live `--auth-token-ttl`, 300 s by default,
/// after their last use).
public struct EtcdCredentials: Sendable, Equatable {
    public var user: String
    public var password: String

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}

/// What a role may do on a range of keys. Roles hold several; a user holds roles.
public struct Permission: Sendable, Equatable {
    public enum Access: String, Sendable {
        case read = "READ", write = "WRITE", readWrite = "READWRITE"
    }

    public var access: Access
    public var keys: KeyRange

    public init(_ access: Access, _ keys: KeyRange) {
        self.access = access
        self.keys = keys
    }

    /// `access` on every key that starts with `prefix`.
    public static func prefix(_ prefix: String, _ access: Access) -> Permission { Permission(access, .prefix(prefix)) }

    /// `access` on the one key `key`.
    public static func key(_ key: String, _ access: Access) -> Permission { Permission(access, .key(key)) }
}
