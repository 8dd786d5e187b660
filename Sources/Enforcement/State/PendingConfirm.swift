import Foundation

/// An `apply --confirm` waiting for `enforcer confirm`: which generation, what to restore
/// at the deadline. Kept in the state directory as pending-confirm.json.
public struct PendingConfirm: Codable, Sendable {
    public var generation: Int
    /// nil: there was no enforcer table before; restoring means flushing.
    public var previous: Int?
    public var deadline: Date

    /// Seconds since 1970 with their fraction: a deadline is never rounded early.
    public static func read(from state: StateDirectory) -> PendingConfirm? {
        guard let data = FileManager.default.contents(atPath: state.pendingConfirm) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(PendingConfirm.self, from: data)
    }

    public func write(to state: StateDirectory) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        try encoder.encode(self).write(to: URL(fileURLWithPath: state.pendingConfirm), options: .atomic)
    }

    public static func remove(from state: StateDirectory) {
        try? FileManager.default.removeItem(atPath: state.pendingConfirm)
    }
}
