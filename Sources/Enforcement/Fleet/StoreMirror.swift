import Compiler
import Foundation
import Kernel

/// The agent's copy of the fleet's bundle, in its state directory: the policy directory as
/// the store had it at one revision. The daemon loads it like any policy directory, so a
/// policy means the same from the store as from disk; and when the store cannot be reached,
/// the agent (even restarted) keeps enforcing the last revision it took in (fail-static).
///
/// `<state>/fleet/<fleet>/policy/` holds the files, `<state>/fleet/<fleet>/revision` says
/// which revision and digest they are. A new revision is written beside the old one and
/// swapped in by renames, so a crash leaves one or the other whole.
public struct StoreMirror: PolicySource {
    public let base: String
    public var directory: String { base + "/policy" }
    private var inner: PolicyDirectory { PolicyDirectory(path: directory, cache: cache) }
    /// What the last load made of each file (see `ParseCache`): a new revision is mostly
    /// the files of the one before.
    public let cache: ParseCache?

    public init(stateDirectory: String, layout: FleetLayout, cache: ParseCache? = nil) {
        base = stateDirectory + "/fleet/" + layout.fleet
        self.cache = cache
    }

    public var location: String { directory }
    public func load() -> PolicyLoader.Loaded { inner.load() }
    public func configuration() -> (Config, [Diagnostic]) { inner.configuration() }
    /// The store tells of its changes itself.
    public func watchedDirectories(of policy: PolicySet?) -> [String] { [] }

    /// The revision and digest of the bundle held, nil when none is.
    public func held() -> (revision: Int64, digest: String)? {
        recover()
        guard let text = try? String(contentsOfFile: base + "/revision", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let revision = Int64(fields[0]), FileManager.default.fileExists(atPath: directory) else { return nil }
        return (revision, String(fields[1]).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The chunks of the files held, by digest: what need not be fetched again.
    public func chunks() -> [String: Data] {
        guard let snapshot = try? SourceSnapshot(directory: directory) else { return [:] }
        var out: [String: Data] = [:]
        for file in snapshot.files {
            for piece in Chunker.split(file.content) { out[SHA256.hex(piece)] = piece }
        }
        return out
    }

    /// The pushed files held (all but the enrolled systems' file).
    public func pushedFiles() -> [Data] {
        guard let snapshot = try? SourceSnapshot(directory: directory) else { return [] }
        return snapshot.files.filter { !$0.path.hasSuffix("/" + Self.enrolledFileName) }.map(\.content)
    }

    /// The file of the enrolled systems (see `EnrolledSystems`), among the pushed ones. A
    /// pushed file of that name is refused by `fleet push`.
    public static let enrolledFileName = "99-enrolled-systems.policy"
    public var enrolledFile: String { directory + "/rules.d/" + Self.enrolledFileName }

    /// Replaces the file of the enrolled systems: written beside it, then renamed over it.
    public func writeEnrolled(_ text: String) throws(FleetError) {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory + "/rules.d", withIntermediateDirectories: true)
            try text.write(toFile: enrolledFile + ".new", atomically: false, encoding: .utf8)
            guard rename(enrolledFile + ".new", enrolledFile) == 0 else { throw FleetError.store("cannot rename into \(enrolledFile): \(SystemErrno(errno))") }
        } catch let error as FleetError {
            throw error
        } catch {
            throw .store("cannot write \(enrolledFile): \(SystemErrno.describe(error))")
        }
    }

    /// Replaces the files held with `files`, the bundle of `revision`; the file of the
    /// enrolled systems is kept. `unchanged`: paths whose file held is known to hold the same
    /// bytes (the agent compared the chunks), linked without reading them.
    public func write(_ files: [(path: String, content: Data)], revision: Int64, digest: String, unchanged: Set<String> = []) throws(FleetError) {
        let fm = FileManager.default
        let fresh = base + "/policy.new", old = base + "/policy.old"
        do {
            try? fm.removeItem(atPath: fresh)
            try fm.createDirectory(atPath: fresh, withIntermediateDirectories: true)
            for file in files {
                // Paths come from the store: nothing may climb out of the mirror.
                guard !file.path.hasPrefix("/"), !file.path.split(separator: "/").contains("..") else {
                    throw FleetError.store("the bundle names a file outside its directory: \(file.path)")
                }
                let path = fresh + "/" + file.path
                try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                // A file the bundle did not change is the same file again (a hard link): not
                // written, and the record's digest of it (see `SourceSnapshot.digests`) still holds.
                let held = directory + "/" + file.path
                if unchanged.contains(file.path) || Self.sameBytes(held, file.content), link(held, path) == 0 { continue }
                guard fm.createFile(atPath: path, contents: file.content) else { throw FleetError.store("cannot write \(path): \(SystemErrno(errno))") }
            }
            if let enrolled = fm.contents(atPath: enrolledFile) {
                try fm.createDirectory(atPath: fresh + "/rules.d", withIntermediateDirectories: true)
                guard fm.createFile(atPath: fresh + "/rules.d/" + Self.enrolledFileName, contents: enrolled) else {
                    throw FleetError.store("cannot write the enrolled systems into \(fresh): \(SystemErrno(errno))")
                }
            }
            try? fm.removeItem(atPath: old)
            if fm.fileExists(atPath: directory) { try fm.moveItem(atPath: directory, toPath: old) }
            try fm.moveItem(atPath: fresh, toPath: directory)
            try? fm.removeItem(atPath: old)
            let record = base + "/revision.new"
            try "\(revision) \(digest)\n".write(toFile: record, atomically: false, encoding: .utf8)
            _ = rename(record, base + "/revision")
        } catch let error as FleetError {
            throw error
        } catch {
            throw .store("cannot write the mirror of the fleet's policy in \(base): \(SystemErrno.describe(error))")
        }
    }

    /// Whether the file at `path` holds exactly `content` (its size first, so a changed file is rarely read).
    private static func sameBytes(_ path: String, _ content: Data) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) == content.count else { return false }
        return FileManager.default.contents(atPath: path) == content
    }

    /// A crash between the two renames of `write` leaves the old files aside: put them back.
    private func recover() {
        let fm = FileManager.default
        if !fm.fileExists(atPath: directory), fm.fileExists(atPath: base + "/policy.old") {
            try? fm.moveItem(atPath: base + "/policy.old", toPath: directory)
        }
    }
}
