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
    /// whole or absent). Not flushed to the disk: it must outlive this process, which the
    /// page cache sees to, but not a power loss, after which the kernel holds no ruleset of
    /// enforcer's to be in doubt about (and an intent read back damaged counts as none).
    /// A flush here delayed every transaction, and longest while the disk was still busy
    /// with the record of the generation before.
    func beginIntent(number: Int, system: String) throws(StateError) {
        let intent = ApplyIntent(number: number, system: system, pid: getpid(), startedAt: Date())
        let temporary = intentPath + ".next"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            // Foundation's `Data.write` flushes even when not atomic: the descriptor is
            // opened here (no symbolic link followed) and written through a FileHandle.
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw SystemErrno(errno) }
            let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
            try handle.write(contentsOf: Self.encoder.encode(intent))
            try handle.close()
        } catch {
            throw StateError(description: "cannot write \(temporary): \(SystemErrno.describe(error))")
        }
        guard rename(temporary, intentPath) == 0 else {
            throw StateError(description: "cannot rename \(temporary) to \(intentPath): \(SystemErrno(errno))")
        }
    }

    /// The apply is recorded, or was refused as a whole: the record tells the truth again.
    func endIntent() {
        unlink(intentPath)
    }
}
