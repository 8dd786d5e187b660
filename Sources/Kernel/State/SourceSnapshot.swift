import Compiler
import Foundation
import Glibc
import Synchronization

/// The policy source as a generation was applied from it: every regular file under the
/// policy directory (symbolic links are not followed), by path relative to it, and one
/// SHA-256 over all of them, so `enforcer history` can say whether two generations came
/// from the same source and `sqlite3` can print a file as it was.
///
/// The digest covers, for each file in path order, its path, a NUL, its length in decimal, a
/// NUL and the SHA-256 of its bytes (64 hexadecimal digits): a file renamed or moved
/// between two files changes it, and it is made from the files' own digests, so a file
/// not changed since it was last hashed need not be read again (`digests(directory:)`).
public struct SourceSnapshot: Sendable {
    public var files: [(path: String, content: Data)]
    public var digest: String

    public init(directory: String) throws(StateError) {
        self.init(files: try Self.read(directory: directory))
    }

    /// The files alone, in path order, not hashed: for a reader that needs their bytes only.
    public static func read(directory: String) throws(StateError) -> [(path: String, content: Data)] {
        var found: [(path: String, content: Data)] = []
        for (path, _) in try listing(directory) {
            guard let data = FileManager.default.contents(atPath: directory + "/" + path) else {
                throw StateError(description: "cannot read \(directory)/\(path): \(SystemErrno(errno))")
            }
            found.append((path, data))
        }
        return found
    }

    /// The same files held in memory (a fleet's bundle as the store has it).
    public init(files: [(path: String, content: Data)]) {
        self.files = files.sorted { $0.path < $1.path }
        digest = Self.compose(self.files.map { ($0.path, $0.content.count, SHA256.hex($0.content)) })
    }

    /// One file of `Digests`: its bytes when they were read to hash them, else nil (its
    /// digest was known).
    public struct FileDigest: Sendable {
        public var path: String
        public var size: Int
        public var digest: String
        public var content: Data?
        /// The file as it was when its digest was known (nil: its bytes were read here).
        var stamp: FileStamp?

        /// Whether `content`, read from `path` since, is still the file whose digest this
        /// holds: the file unchanged since then (its stamp taken after the read), so the bytes
        /// need not be hashed again to be stored under it.
        func stillDescribes(_ content: Data, at path: String) -> Bool {
            var info = stat()
            guard let stamp, content.count == size, lstat(path, &info) == 0 else { return false }
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return stamp.stillDescribes(FileStamp(info, openedAt: now))
        }
    }

    public struct Digests: Sendable {
        public var digest: String
        public var files: [FileDigest]
    }

    /// The digest of `directory` and of each of its files, reading and hashing only the files
    /// this process has not hashed as they are now: a file is known by its `FileStamp`
    /// (device, inode, size, modification and change times, settled 50 ms before it was
    /// read), as the policy loader knows the files it need not read again. A policy reloaded
    /// after a one-line edit hashes that file only; the fleet's mirror leaves the files a
    /// push did not change as they are.
    public static func digests(directory: String) throws(StateError) -> Digests {
        // A hash ahead of this directory still at work: its digests, not a second reading.
        if let ahead = hashingAhead.withLock({ $0.removeValue(forKey: directory) }) { _ = ahead.value }
        return try hashing(directory: directory)
    }

    private static func hashing(directory: String) throws(StateError) -> Digests {
        var files: [FileDigest] = []
        for (path, info) in try listing(directory) {
            let absolute = directory + "/" + path
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let stamp = FileStamp(info, openedAt: now)
            if let digest = known.digest(of: absolute, stamp: stamp) {
                files.append(FileDigest(path: path, size: Int(info.st_size), digest: digest, content: nil, stamp: stamp))
                continue
            }
            guard let data = FileManager.default.contents(atPath: absolute) else {
                throw StateError(description: "cannot read \(absolute): \(SystemErrno(errno))")
            }
            let digest = SHA256.hex(data)
            // Remembered only when what was read is what the stamp describes, and settled.
            if data.count == Int(info.st_size), stamp.settled { known.remember(absolute, stamp: stamp, digest: digest) }
            files.append(FileDigest(path: path, size: data.count, digest: digest, content: data))
        }
        return Digests(digest: compose(files.map { ($0.path, $0.size, $0.digest) }), files: files)
    }

    static func compose(_ files: [(path: String, size: Int, digest: String)]) -> String {
        var hash = SHA256()
        for file in files {
            hash.update(Array(file.path.utf8) + [0] + Array(String(file.size).utf8) + [0] + Array(file.digest.utf8))
        }
        return hash.hex()
    }

    /// Every regular file under `directory`, in path order, with what `lstat` says of it;
    /// none when there is no such directory.
    static func listing(_ directory: String) throws(StateError) -> [(path: String, info: stat)] {
        var found: [(path: String, info: stat)] = []
        func walk(_ relative: String) throws(StateError) {
            let absolute = relative.isEmpty ? directory : directory + "/" + relative
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: absolute) } catch {
                throw StateError(description: "cannot read \(absolute): \(SystemErrno.describe(error))")
            }
            for name in names.sorted() {
                let path = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard lstat(directory + "/" + path, &info) == 0 else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: try walk(path)
                case S_IFREG: found.append((path, info))
                default: continue
                }
            }
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else { return [] }
        try walk("")
        // Path order over the whole tree ("a/b" before "a.c"), as `init(files:)` sorts.
        return found.sorted { $0.path < $1.path }
    }

    /// Hashes the files of `directory` on another core now, so that the record of an apply
    /// that follows finds their digests known (`digests(directory:)` waits for it rather than
    /// hashing the same files beside it). The daemon's first apply of a fleet's large policy
    /// stages its record while a transaction of a few milliseconds lasts: hashing the source
    /// while the policy is compiled takes that off the time to the first applied slice. Only
    /// files settled when read are remembered, as in `digests(directory:)`.
    public static func hashAhead(directory: String) {
        hashingAhead.withLock { pending in
            guard pending[directory] == nil else { return }
            pending[directory] = Concurrently { _ = try? hashing(directory: directory) }
        }
    }
    private static let hashingAhead = Mutex<[String: Concurrently<Void>]>([:])

    /// The digests this process computed, by absolute path.
    private static let known = KnownDigests()

    private final class KnownDigests: @unchecked Sendable {
        private let lock = NSLock()
        private var byPath: [String: (stamp: FileStamp, digest: String)] = [:]

        func digest(of path: String, stamp: FileStamp) -> String? {
            lock.withLock { byPath[path].flatMap { $0.stamp.stillDescribes(stamp) ? $0.digest : nil } }
        }

        func remember(_ path: String, stamp: FileStamp, digest: String) {
            lock.withLock {
                // A bound, so a process that sees many directories (tests) does not grow without end.
                if byPath.count >= 4_096 { byPath.removeAll() }
                byPath[path] = (stamp, digest)
            }
        }
    }
}
