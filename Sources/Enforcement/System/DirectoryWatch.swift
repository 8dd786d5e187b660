import Glibc

/// Changes to files in a set of directories (inotify), for reloading the policy.
final class DirectoryWatch {
    let fileDescriptor: Int32
    private var watches: [String: Int32] = [:]

    init() throws(SystemError) {
        fileDescriptor = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fileDescriptor >= 0 else { throw SystemError(operation: "inotify_init1", errno: errno) }
    }

    deinit { close(fileDescriptor) }

    /// Watches exactly `directories` (missing ones are skipped); unchanged ones keep their watch.
    func watch(_ directories: [String]) {
        let wanted = Set(directories)
        for (path, watch) in watches where !wanted.contains(path) {
            inotify_rm_watch(fileDescriptor, watch)
            watches[path] = nil
        }
        let mask = UInt32(IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
        for path in wanted where watches[path] == nil {
            let watch = inotify_add_watch(fileDescriptor, path, mask)
            if watch >= 0 { watches[path] = watch }
        }
    }

    /// Whether a file changed since the last call. A removed watch's own IN_IGNORED does not count.
    func drain() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var changed = false
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            var offset = 0
            // struct inotify_event: wd, mask, cookie, len (4 bytes each), then len bytes of name.
            while offset + 16 <= count {
                func word(_ at: Int) -> UInt32 { buffer[offset + at ..< offset + at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
                if word(4) & UInt32(IN_IGNORED) == 0 { changed = true }
                offset += 16 + Int(word(12))
            }
        }
        return changed
    }
}
