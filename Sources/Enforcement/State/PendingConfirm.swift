import Compiler
import Foundation

/// An `apply --confirm` waiting for `enforcer confirm`: what to restore at the deadline.
/// Kept in the state directory as pending-confirm.json, and written before the kernel
/// commit it guards: an apply killed at any point leaves either no change or a change with
/// its promise to undo it on record, which the daemon, the watchdog or the next enforcer
/// command keeps.
public struct PendingConfirm: Codable, Sendable, Equatable {
    /// The generation waiting to be confirmed; nil while the apply that asked is still under
    /// way (or was killed before it recorded one).
    public var generation: Int?
    /// The last confirmed generation, which the deadline restores; nil: there was no
    /// enforcer table before, and restoring means removing it.
    public var previous: Int?
    public var deadline: Date
    /// enforcer's table, for restoring by removing it.
    public var table: String
    /// Who asked, for `status` and the log.
    public var requestedBy: String

    public init(generation: Int?, previous: Int?, deadline: Date, table: String, requestedBy: String) {
        self.generation = generation
        self.previous = previous
        self.deadline = deadline
        self.table = table
        self.requestedBy = requestedBy
    }

    /// What it waits for, in words: "generation 7 (restores generation 6 at …)".
    public var summary: String {
        let what = generation.map { "generation \($0)" } ?? "an apply that did not finish"
        let restores = previous.map { "generation \($0)" } ?? "no enforcer table (as before)"
        return "\(what), applied with --confirm by \(requestedBy); unless confirmed, \(restores) is restored at \(ISO8601.string(deadline))"
    }

    /// Seconds since 1970 with their fraction: a deadline is never rounded early.
    public static func read(from state: StateDirectory) -> PendingConfirm? {
        guard let data = FileManager.default.contents(atPath: state.pendingConfirm) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(PendingConfirm.self, from: data)
    }

    public func write(to state: StateDirectory) throws(EnforcementError) {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        do { try encoder.encode(self).write(to: URL(fileURLWithPath: state.pendingConfirm), options: .atomic) } catch {
            throw .refused(["enforcer: cannot write \(state.pendingConfirm): \(SystemErrno.describe(error))"])
        }
    }

    public static func remove(from state: StateDirectory) {
        try? FileManager.default.removeItem(atPath: state.pendingConfirm)
    }
}
