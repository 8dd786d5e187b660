import Compiler
import Foundation
import GRDB

/// One thing that happened to the enforced state, as `enforcer history` lists it: the table
/// `event` of the state database.
public struct HistoryEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// `enforcer apply`, and the daemon's first apply at start.
        case apply
        /// The daemon applied the policy again (files changed, SIGHUP, an override).
        case reload
        /// A time window or expiry changed what is enforced.
        case flip
        /// A policy, reload or transaction was refused; nothing changed.
        case refusal
        case rollback
        /// `enforcer confirm` kept an `apply --confirm`.
        case confirm
        /// An `apply --confirm` not confirmed in time was undone.
        case confirmExpired = "confirm-expired"
        /// `policy enable|disable`, `trust grant|revoke`.
        case override
        /// Another process changed enforcer's tables (and what was done about it).
        case drift
        case flush
    }

    /// Its number in the history, rising (nil before it is appended).
    public var id: Int64?
    public var at: Date
    public var kind: Kind
    /// The generation it made live or concerns, if any.
    public var generation: Int?
    public var actor: String?
    public var reason: String?
    /// What happened, in one line.
    public var summary: String
    /// More lines (the changes of a drift, the diagnostics of a refusal), if any.
    public var detail: String?

    public init(at: Date = Date(), kind: Kind, generation: Int? = nil, actor: String? = nil, reason: String? = nil, summary: String,
                detail: String? = nil) {
        self.at = at
        self.kind = kind
        self.generation = generation
        self.actor = actor
        self.reason = reason
        self.summary = summary
        self.detail = detail
    }
}

extension GenerationStore {
    /// Events kept: the oldest beyond this go as new ones come.
    public static let eventsKept = 100_000

    /// Appends an event in its own transaction (and drops the oldest beyond `eventsKept`).
    @discardableResult
    public func append(_ event: HistoryEvent, keeping kept: Int = GenerationStore.eventsKept) throws(StateError) -> Int64 {
        try database().write { db in
            try db.execute(sql: """
                INSERT INTO event (at, kind, generation, actor, reason, summary, detail) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [ISO8601.string(event.at, precision: .milliseconds), event.kind.rawValue, event.generation, event.actor,
                                 event.reason, event.summary, event.detail])
            let id = db.lastInsertedRowID
            // The primary key only rises, so the oldest are those below the newest by more than kept.
            try db.execute(sql: "DELETE FROM event WHERE id <= ?", arguments: [id - Int64(kept)])
            return id
        }
    }

    /// Events, oldest first: the last `limit` of them (all when nil) of the given kinds
    /// (all when empty), of one generation if given.
    public func events(limit: Int? = nil, kinds: Set<HistoryEvent.Kind> = [], generation: Int? = nil) throws(StateError) -> [HistoryEvent] {
        guard hasRecord else { return [] }
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if !kinds.isEmpty {
            conditions.append("kind IN (" + kinds.map { _ in "?" }.joined(separator: ", ") + ")")
            arguments += kinds.sorted { $0.rawValue < $1.rawValue }.map { $0.rawValue }
        }
        if let generation {
            conditions.append("generation = ?")
            arguments.append(generation)
        }
        var sql = "SELECT id, at, kind, generation, actor, reason, summary, detail FROM event"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY id DESC"
        if let limit {
            sql += " LIMIT ?"
            arguments.append(limit)
        }
        let statementArguments = StatementArguments(arguments)
        let rows = try database().read { db in try Row.fetchAll(db, sql: sql, arguments: statementArguments) }
        return rows.reversed().map { row in
            var event = HistoryEvent(at: ISO8601.date(row["at"]) ?? Date(timeIntervalSince1970: 0),
                                     kind: HistoryEvent.Kind(rawValue: row["kind"]) ?? .apply, generation: row["generation"], actor: row["actor"],
                                     reason: row["reason"], summary: row["summary"], detail: row["detail"])
            event.id = row["id"]
            return event
        }
    }
}
