import Compiler
import Foundation
import Kernel

/// The agent's copy of the fleet's bundle, in its state directory: the policy directory as
/// the store had it at one revision. The daemon loads it like any policy directory, so a
/// policy means the same from the store as from disk; and when the store cannot be reached,
/// the agent (even restarted) keeps enforcing the last revision it took in (fail-static).
///
/// `<state>/fleet/<fleet>/policy/` holds the files, `<state>/fleet/<fleet>/revision` says
/// which revision and digest they are. A new revision writes the files that changed beside
/// their places and swaps them in by renames after a journal (see `write`), so a crash
/// leaves one revision or the other whole.
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
        guard let files = try? SourceSnapshot.read(directory: directory) else { return [:] }
        var out: [String: Data] = [:]
        for file in files {
            for piece in Chunker.split(file.content) { out[SHA256.hex(piece)] = piece }
        }
        return out
    }

    /// The pushed files held (all but the enrolled systems' file).
    public func pushedFiles() -> [(path: String, content: Data)] {
        guard let files = try? SourceSnapshot.read(directory: directory) else { return [] }
        return files.filter { !$0.path.hasSuffix("/" + Self.enrolledFileName) }
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
    /// enrolled systems is kept. Only the files that changed are written: each beside its
    /// place as `PATH.next`, then a journal (`revision.next`: the revision, and each file
    /// to put in place or remove), then the renames, then the journal becomes `revision`. A
    /// crash before the journal leaves the old revision whole (the `.next` files are
    /// removed); after it, the swap is finished at the next start. A file left alone keeps
    /// its inode and times, so the next load takes it by its stamp without reading it (see
    /// `FileStamp`), and the record by its digest. `unchanged`: paths whose bytes are those
    /// of the bundle of digest `since` (the agent compared the chunks): while the mirror
    /// holds that bundle (a write may have failed since), they are not even compared.
    public func write(_ files: [(path: String, content: Data)], revision: Int64, digest: String,
                      unchanged: (since: String, paths: Set<String>)? = nil) throws(FleetError) {
        let byPath = Dictionary(files.map { ($0.path, $0.content) }) { first, _ in first }
        try write(paths: files.map(\.path), content: { byPath[$0]! }, revision: revision, digest: digest, unchanged: unchanged)
    }

    /// The same, with each file's bytes made by `content` when the file is compared or
    /// written: a file trusted unchanged is never made.
    public func write(paths: [String], content: (String) -> Data, revision: Int64, digest: String,
                      unchanged: (since: String, paths: Set<String>)? = nil) throws(FleetError) {
        let fm = FileManager.default
        recover()
        let trusted = unchanged.flatMap { held()?.digest == $0.since ? $0.paths : nil } ?? []
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let held = Set(heldPaths())
            var journal = ["\(revision) \(digest)"]
            for name in paths {
                // Paths come from the store: nothing may climb out of the mirror, or break a journal line.
                guard !name.hasPrefix("/"), !name.split(separator: "/").contains(".."), !name.contains("\n"),
                      !name.hasSuffix(Self.pending), name != "rules.d/" + Self.enrolledFileName else {
                    throw FleetError.store("the bundle names a file outside its directory: \(name)")
                }
                let path = directory + "/" + name
                if held.contains(name), trusted.contains(name) { continue }
                let bytes = content(name)
                if held.contains(name), Self.sameBytes(path, bytes) { continue }
                try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                guard fm.createFile(atPath: path + Self.pending, contents: bytes) else {
                    throw FleetError.store("cannot write \(path + Self.pending): \(SystemErrno(errno))")
                }
                journal.append("put " + name)
            }
            for path in held.subtracting(paths).sorted() { journal.append("remove " + path) }
            try (journal.joined(separator: "\n") + "\n").write(toFile: base + "/revision" + Self.pending, atomically: false, encoding: .utf8)
            try finish()
        } catch let error as FleetError {
            throw error
        } catch {
            throw .store("cannot write the mirror of the fleet's policy in \(base): \(SystemErrno.describe(error))")
        }
    }

    /// The suffix of a file written but not yet in place, and of the journal.
    static let pending = ".next"

    /// The files of the pushed bundle held, relative to the directory (not the enrolled
    /// systems' file, nor files pending).
    private func heldPaths() -> [String] {
        let fm = FileManager.default
        return (fm.subpaths(atPath: directory) ?? []).filter { path in
            var isDirectory: ObjCBool = false
            return fm.fileExists(atPath: directory + "/" + path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && !path.hasSuffix(Self.pending) && path != "rules.d/" + Self.enrolledFileName
        }
    }

    /// Carries out the journal: every file put in place, every file removed, then the
    /// journal becomes the record of the revision held. Each step may have been done
    /// already (a swap finished after a crash).
    private func finish() throws {
        let journal = base + "/revision" + Self.pending
        let lines = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n").map(String.init)
        guard let head = lines.first else { return }
        for line in lines.dropFirst() {
            if line.hasPrefix("put ") {
                let path = directory + "/" + line.dropFirst(4)
                if rename(path + Self.pending, path) != 0, errno != ENOENT { throw FleetError.store("cannot rename into \(path): \(SystemErrno(errno))") }
            } else if line.hasPrefix("remove ") {
                let path = directory + "/" + line.dropFirst(7)
                if unlink(path) != 0, errno != ENOENT { throw FleetError.store("cannot remove \(path): \(SystemErrno(errno))") }
            }
        }
        try (head + "\n").write(toFile: journal, atomically: false, encoding: .utf8)
        guard rename(journal, base + "/revision") == 0 else { throw FleetError.store("cannot rename into \(base)/revision: \(SystemErrno(errno))") }
    }

    /// Whether the file at `path` holds exactly `content` (its size first, so a changed file is rarely read).
    private static func sameBytes(_ path: String, _ content: Data) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) == content.count else { return false }
        return FileManager.default.contents(atPath: path) == content
    }

    /// After a crash: a swap whose journal was written is finished; files written before
    /// their journal are removed, the old revision standing. (A mirror written by the
    /// release before the journal, a directory swapped whole, may have left its old files
    /// aside: they are put back.)
    private func recover() {
        let fm = FileManager.default
        if !fm.fileExists(atPath: directory), fm.fileExists(atPath: base + "/policy.old") {
            try? fm.moveItem(atPath: base + "/policy.old", toPath: directory)
        }
        if fm.fileExists(atPath: base + "/revision" + Self.pending) {
            try? finish()
        }
        for path in fm.subpaths(atPath: directory) ?? [] where path.hasSuffix(Self.pending) {
            try? fm.removeItem(atPath: directory + "/" + path)
        }
    }
}
