import Compiler
import Foundation
import Glibc

/// An apply under way, on record from before its transaction until its generation is
/// recorded (the file `applying` in the state directory). A process killed between the
/// kernel's commit and the record leaves it behind: the kernel then holds either the
/// recorded generation or the one that was being applied, and nobody can tell which from
/// the record. So while it is there, no delta is computed against the record (the next
/// apply replaces the table whole) and `status` says what happened.
public struct ApplyIntent: Codable, Sendable, Equatable {
    /// The generation number it was going to record.
    public var number: Int
    public var system: String
    public var pid: Int32
    public var startedAt: Date

    /// Whether the process that wrote it still runs (a pid reused since is taken as
    /// alive: the intent then stays until that process ends, which only costs a replace).
    public var isUnderWay: Bool { kill(pid, 0) == 0 || errno == EPERM }
}

extension GenerationStore {
    private var intentPath: String { directory + "/applying" }

    /// The apply under way or interrupted, if any.
    public func intent() -> ApplyIntent? {
        guard let data = FileManager.default.contents(atPath: intentPath) else { return nil }
        return try? Self.decoder.decode(ApplyIntent.self, from: data)
    }

    /// On record before the transaction (written to a temporary name and renamed, so it is
    /// whole or absent).
    func beginIntent(number: Int, system: String) throws(StateError) {
        let intent = ApplyIntent(number: number, system: system, pid: getpid(), startedAt: Date())
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Self.encoder.encode(intent).write(to: URL(fileURLWithPath: intentPath), options: .atomic)
        } catch {
            throw StateError(description: "cannot write \(intentPath): \(SystemErrno.describe(error))")
        }
    }

    /// The apply is recorded, or was refused as a whole: the record tells the truth again.
    func endIntent() {
        unlink(intentPath)
    }
}
