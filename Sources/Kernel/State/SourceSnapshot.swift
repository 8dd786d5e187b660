import Compiler
import Foundation
import Glibc

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
        var found: [(path: String, content: Data)] = []
        for (path, _) in try Self.listing(directory) {
            guard let data = FileManager.default.contents(atPath: directory + "/" + path) else {
                throw StateError(description: "cannot read \(directory)/\(path): \(SystemErrno(errno))")
            }
            found.append((path, data))
        }
        self.init(files: found)
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
    }

    public struct Digests: Sendable {
        public var digest: String
        public var files: [FileDigest]
    }

    /// The digest of `directory` and of each of its files, reading and hashing only the files
    /// this process has not hashed as they are now. A file is known by its device, inode,
    /// size and modification time; it is remembered only when that time is 50 ms older
    /// than the moment its reading began. The kernel stamps files with a coarse clock (a few
    /// milliseconds behind), so a file written again after it was read gets a later time
    /// than that, and is never taken for the one hashed. A policy reloaded after a one-line
    /// edit hashes that file only.
    ///
    /// Not the change time: a hard link or a rename changes it, and the fleet's mirror links
    /// the files a push did not change into the directory of the new revision. Only a file
    /// rewritten in place to the same size with its modification time set back by hand
    /// escapes this; it changes the record of the source, never what is enforced (the
    /// compile reads the files themselves).
    public static func digests(directory: String) throws(StateError) -> Digests {
        var files: [FileDigest] = []
        for (path, info) in try listing(directory) {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let settled = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 - 0.05
            let absolute = directory + "/" + path
            let identity = FileIdentity(info)
            if let digest = known.digest(of: absolute, identity: identity) {
                files.append(FileDigest(path: path, size: Int(info.st_size), digest: digest, content: nil))
                continue
            }
            guard let data = FileManager.default.contents(atPath: absolute) else {
                throw StateError(description: "cannot read \(absolute): \(SystemErrno(errno))")
            }
            let digest = SHA256.hex(data)
            // Remembered only when what was read is what the identity describes, and settled.
            func seconds(_ time: timespec) -> Double { Double(time.tv_sec) + Double(time.tv_nsec) / 1e9 }
            if data.count == Int(info.st_size), seconds(info.st_mtim) < settled {
                known.remember(absolute, identity: identity, digest: digest)
            }
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

    struct FileIdentity: Equatable {
        var device: UInt64, inode: UInt64, size: Int64
        var modified: timespec

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modified = info.st_mtim
        }

        static func == (a: FileIdentity, b: FileIdentity) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size
                && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
        }
    }

    /// The digests this process computed, by absolute path.
    private static let known = KnownDigests()

    private final class KnownDigests: @unchecked Sendable {
        private let lock = NSLock()
        private var byPath: [String: (identity: FileIdentity, digest: String)] = [:]

        func digest(of path: String, identity: FileIdentity) -> String? {
            lock.withLock { byPath[path].flatMap { $0.identity == identity ? $0.digest : nil } }
        }

        func remember(_ path: String, identity: FileIdentity, digest: String) {
            lock.withLock {
                // A bound, so a process that sees many directories (tests) does not grow without end.
                if byPath.count >= 4_096 { byPath.removeAll() }
                byPath[path] = (identity, digest)
            }
        }
    }
}
