import Foundation

/// Where a fleet's state lives in etcd: every key under `/enforcer/<fleet>/`. docs/FLEET.md
/// documents the layout; this type is the one place that spells the keys.
///
/// ```
/// /enforcer/<fleet>/desired/bundle    the pushed policy directory: every file by the
///                                     digests of its chunks, who pushed it, when and why
///                                     (written by every push: its revisions are the history)
/// /enforcer/<fleet>/chunk/<sha256>    a piece of a file, by the SHA-256 of its bytes
/// /enforcer/<fleet>/presence/<host>   what an agent has applied, under a lease
/// ```
///
/// Everything an agent must follow is under `desired/`: it watches that one prefix, and
/// neither the chunks (fetched when a bundle names them) nor the other agents' presence.
public struct FleetLayout: Sendable, Equatable {
    public let fleet: String

    public init(fleet: String) throws(FleetError) {
        // Its name is also a folder of the state directory: "." and ".." would be others.
        guard !fleet.isEmpty, fleet.utf8.allSatisfy({ Self.nameBytes.contains($0) }), !fleet.allSatisfy({ $0 == "." }) else {
            throw .usage("fleet name '\(fleet)': use letters, digits, '.', '_' or '-'")
        }
        self.fleet = fleet
    }

    static let nameBytes = Set(Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-".utf8))

    public var prefix: String { "/enforcer/\(fleet)/" }
    public var desiredPrefix: String { prefix + "desired/" }
    public var pushKey: String { desiredPrefix + "bundle" }
    public var chunkPrefix: String { prefix + "chunk/" }
    public var presencePrefix: String { prefix + "presence/" }

    public func chunkKey(_ digest: String) -> String { chunkPrefix + digest }
    public func presenceKey(_ host: String) -> String { presencePrefix + host }
}

public enum FleetError: Error, CustomStringConvertible, Sendable {
    /// The command was given something it cannot use.
    case usage(String)
    /// The store refused or could not be reached; what was asked, and etcd's word.
    case store(String)
    /// Another push landed since this one was checked.
    case conflict(String)
    /// The bundle does not check: the diagnostics, as `check` prints them.
    case invalid([String])

    public var description: String {
        switch self {
        case .usage(let text), .store(let text), .conflict(let text): text
        case .invalid(let lines): lines.joined(separator: "\n")
        }
    }
}
