import Glibc

/// An exclusive advisory lock (flock) on a file inside a directory, held until released or
/// until the process ends (the kernel drops it with the descriptor, so a killed holder never
/// leaves it stuck). The file is opened relative to the directory without following a
/// symbolic link, and its content names the holder, for the caller that has to wait.
final class FileLock {
    private var descriptor: Int32

    /// Takes the lock on `name` in `directory`; while another process holds it, calls
    /// `waiting(holder)` once and waits.
    init(directory: String, name: String, holder: String, waiting: (String) -> Void) throws(SystemError) {
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directoryDescriptor >= 0 else { throw SystemError(operation: "cannot open \(directory)", errno: errno) }
        defer { close(directoryDescriptor) }
        descriptor = openat(directoryDescriptor, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SystemError(operation: "cannot open \(directory)/\(name)", errno: errno) }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let first = errno
            guard first == EWOULDBLOCK else {
                close(descriptor)
                throw SystemError(operation: "cannot lock \(directory)/\(name)", errno: first)
            }
            waiting(Self.contents(of: descriptor))
            while flock(descriptor, LOCK_EX) != 0 {
                guard errno == EINTR else {
                    let failure = errno
                    close(descriptor)
                    throw SystemError(operation: "cannot lock \(directory)/\(name)", errno: failure)
                }
            }
        }
        // Who holds it now, for the next caller to read.
        let text = Array(holder.utf8)
        _ = ftruncate(descriptor, 0)
        _ = text.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    deinit { release() }

    func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)  // closing drops the flock
        descriptor = -1
    }

    private static func contents(of descriptor: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        let text = count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : ""
        return text.isEmpty ? "another process" : text
    }
}
