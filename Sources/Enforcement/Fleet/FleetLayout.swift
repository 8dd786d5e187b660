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
/// /enforcer/<fleet>/gc                 touched by each batch of `fleet gc`'s deletions
/// /enforcer/<fleet>/desired/enrolled/<slot>  an enrolled system's tags (administrators)
/// /enforcer/<fleet>/desired/members/<slot>   its name and addresses, under its lease (the host)
/// /enforcer/<fleet>/keys/<id>          an enrolment key: its tags, uses, expiry
/// /enforcer/<fleet>/slots/<id>/<n>     an unused enrolment under that key: the credentials
///                                     the host that claims it will log in with
/// ```
///
/// Everything an agent must follow is under `desired/`: it watches that one prefix, and
/// neither the chunks (fetched when a bundle names them) nor the other agents' presence.
///
/// etcd's users and roles follow the same names: `enforcer.<fleet>.admin` (everything under
/// the prefix), `enforcer.<fleet>.reader` (read `desired/` and `chunk/`), one user and role
/// per enrolment key (`….key.<id>`: read, and claim a slot of its key) and per enrolled host
/// (`….host.<slot>`: read, and write its own member and presence keys).
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
    /// Written by `fleet gc` with each batch of chunks it deletes: a push whose transaction
    /// finds it changed since it listed the chunks fails, as it may name one just deleted.
    public var collectionKey: String { prefix + "gc" }

    public func chunkKey(_ digest: String) -> String { chunkPrefix + digest }
    public func presenceKey(_ host: String) -> String { presencePrefix + host }

    public var enrolledPrefix: String { desiredPrefix + "enrolled/" }
    public var memberPrefix: String { desiredPrefix + "members/" }
    public var keyPrefix: String { prefix + "keys/" }
    public func enrolledKey(_ slot: String) -> String { enrolledPrefix + slot }
    public func memberKey(_ slot: String) -> String { memberPrefix + slot }
    public func keyRecord(_ id: String) -> String { keyPrefix + id }
    public func slotPrefix(_ id: String) -> String { prefix + "slots/" + id + "/" }

    public var adminRole: String { "enforcer.\(fleet).admin" }
    public var readerRole: String { "enforcer.\(fleet).reader" }
    public func keyUser(_ id: String) -> String { "enforcer.\(fleet).key.\(id)" }
    public func hostUser(_ slot: String) -> String { "enforcer.\(fleet).host.\(slot)" }
    /// The etcd user of a host of the pushed policy (`fleet host add`).
    public func systemUser(_ name: String) -> String { "enforcer.\(fleet).system.\(name)" }
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
    /// A chunk a bundle names is not in the store (`fleet gc` deleted it, or it was never written).
    case missing(String)

    public var description: String {
        switch self {
        case .usage(let text), .store(let text), .conflict(let text), .missing(let text): text
        case .invalid(let lines): lines.joined(separator: "\n")
        }
    }
}
