import Foundation
import Glibc

/// What makes the state directory trustworthy before enforcer acts on it. Whoever can write
/// there decides what `rollback` loads into the kernel as root, so it must be writable by
/// root alone: the directory and every directory above it owned by root and not writable by
/// group or others (a root-owned directory with the sticky bit, such as /tmp, is accepted:
/// nobody else can rename or delete what root made in it), and nothing in it a symbolic link.
/// Its own modes are tightened to 0700, and the process umask (set at start) makes every file
/// in it 0600.
public struct StateGuard: Sendable {
    public let path: String
    /// The owner accepted besides root: the caller itself when it is not root (it cannot
    /// change the kernel anyway, and a test or dry run may keep its own state).
    private let acceptedOwner: uid_t

    public init(path: String, acceptedOwner: uid_t = geteuid()) {
        self.path = path
        self.acceptedOwner = acceptedOwner
    }

    /// The entries enforcer reads and writes in the state directory.
    static let entries = ["state.sqlite", "state.sqlite-wal", "state.sqlite-shm", "overrides.json", "daemon.json", "pending-confirm.json",
                          "applying", "watchdog.log", "lock",
                          // An earlier enforcer's JSON record, taken in by the database's first open.
                          "generations", "current", "policy-ids.json"]

    /// Creates the directory (0700) when missing, then checks it and every parent; throws
    /// the path and the reason of the first that fails.
    public func secure() throws(StateRefusal) {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var info = stat()
        if lstat(absolute, &info) != 0 {
            guard errno == ENOENT else { throw StateRefusal(path: absolute, reason: "cannot inspect it: \(String(cString: strerror(errno)))") }
            try create(absolute)
            guard lstat(absolute, &info) == 0 else { throw StateRefusal(path: absolute, reason: "cannot inspect it: \(String(cString: strerror(errno)))") }
        }
        try check(absolute, info, isStateDirectory: true)
        var parent = (absolute as NSString).deletingLastPathComponent
        while true {
            var parentInfo = stat()
            guard lstat(parent, &parentInfo) == 0 else { throw StateRefusal(path: parent, reason: "cannot inspect it: \(String(cString: strerror(errno)))") }
            try check(parent, parentInfo, isStateDirectory: false)
            if parent == "/" { break }
            parent = (parent as NSString).deletingLastPathComponent
        }
        if info.st_mode & 0o077 != 0, chmod(absolute, 0o700) != 0 {
            throw StateRefusal(path: absolute, reason: "cannot make it 0700: \(String(cString: strerror(errno)))")
        }
        for entry in Self.entries {
            var entryInfo = stat()
            guard lstat(absolute + "/" + entry, &entryInfo) == 0 else { continue }
            if entryInfo.st_mode & S_IFMT == S_IFLNK {
                throw StateRefusal(path: absolute + "/" + entry, reason: "is a symbolic link; enforcer follows none in its state directory")
            }
            if entryInfo.st_uid != 0, entryInfo.st_uid != acceptedOwner {
                throw StateRefusal(path: absolute + "/" + entry, reason: "is owned by uid \(entryInfo.st_uid), not root")
            }
        }
    }

    private func check(_ path: String, _ info: stat, isStateDirectory: Bool) throws(StateRefusal) {
        let kind = info.st_mode & S_IFMT
        if kind == S_IFLNK {
            throw StateRefusal(path: path, reason: "is a symbolic link; name the directory it points to")
        }
        guard kind == S_IFDIR else { throw StateRefusal(path: path, reason: "is not a directory") }
        if info.st_uid != 0, info.st_uid != acceptedOwner {
            throw StateRefusal(path: path, reason: "is owned by uid \(info.st_uid); it must be owned by root")
        }
        let writableByOthers = info.st_mode & 0o022 != 0
        let sticky = info.st_mode & S_ISVTX != 0
        if writableByOthers, isStateDirectory || !sticky || info.st_uid != 0 {
            let mode = String(info.st_mode & 0o7777, radix: 8)
            throw StateRefusal(path: path, reason: "is writable by group or others (mode \(mode)); only root may write there")
        }
    }

    /// The directory and any missing parents, each 0700.
    private func create(_ absolute: String) throws(StateRefusal) {
        var missing: [String] = []
        var probe = absolute
        var info = stat()
        while probe != "/", lstat(probe, &info) != 0, errno == ENOENT {
            missing.append(probe)
            probe = (probe as NSString).deletingLastPathComponent
        }
        for directory in missing.reversed() where mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw StateRefusal(path: directory, reason: "cannot create it: \(String(cString: strerror(errno)))")
        }
    }
}

/// A state directory enforcer will not use, and why.
public struct StateRefusal: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var description: String { "refusing the state directory: \(path) \(reason)" }
}
