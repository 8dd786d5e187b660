internal import CLinux
import Compiler
import Foundation
import Glibc

// The only file of the Enforcer target that makes raw system calls: the daemon's event
// sources as file descriptors, and one poll over them.

/// A failed system call, with its errno.
struct SystemError: Error, CustomStringConvertible {
    var operation: String
    var errno: Int32
    var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// A wall-clock (CLOCK_REALTIME) timer armed at an absolute instant. It fires at the
/// instant also after a suspend (the wall clock kept going), and reports a clock that was
/// set (NTP step, `date -s`) at once, so the state can be recomputed.
final class WallClockTimer {
    let fileDescriptor: Int32

    enum Event { case fired, clockChanged, nothing }

    init() throws(SystemError) {
        fileDescriptor = timerfd_create(CLOCK_REALTIME, Int32(TFD_CLOEXEC | TFD_NONBLOCK))
        guard fileDescriptor >= 0 else { throw SystemError(operation: "timerfd_create", errno: errno) }
    }

    deinit { close(fileDescriptor) }

    /// Arms the timer at `instant` (disarms with nil). A past instant fires at once.
    func arm(at instant: Date?) throws(SystemError) {
        var spec = itimerspec()
        var flags = Int32(TFD_TIMER_ABSTIME) | Int32(TFD_TIMER_CANCEL_ON_SET)
        if let instant {
            let seconds = max(instant.timeIntervalSince1970, 0.000_001)
            spec.it_value.tv_sec = Int(seconds.rounded(.down))
            spec.it_value.tv_nsec = Int((seconds - seconds.rounded(.down)) * 1e9)
            if spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0 { spec.it_value.tv_nsec = 1 }
        } else {
            flags = 0
        }
        guard timerfd_settime(fileDescriptor, flags, &spec, nil) == 0 else { throw SystemError(operation: "timerfd_settime", errno: errno) }
    }

    /// What happened since the last call; re-arm after `.fired` and `.clockChanged`.
    func acknowledge() -> Event {
        var expirations: UInt64 = 0
        let count = read(fileDescriptor, &expirations, MemoryLayout<UInt64>.size)
        if count == MemoryLayout<UInt64>.size { return .fired }
        return count < 0 && errno == ECANCELED ? .clockChanged : .nothing
    }
}

/// Signals delivered through a file descriptor instead of handlers. The signals are blocked
/// for the process first; threads started later inherit the mask.
final class SignalChannel {
    let fileDescriptor: Int32

    init(_ signals: [Int32]) throws(SystemError) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        guard pthread_sigmask(SIG_BLOCK, &set, nil) == 0 else { throw SystemError(operation: "pthread_sigmask", errno: errno) }
        fileDescriptor = signalfd(-1, &set, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard fileDescriptor >= 0 else { throw SystemError(operation: "signalfd", errno: errno) }
    }

    deinit { close(fileDescriptor) }

    /// The signals received since the last call, in order.
    func take() -> [Int32] {
        var received: [Int32] = []
        var info = signalfd_siginfo()
        while read(fileDescriptor, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            received.append(Int32(info.ssi_signo))
        }
        return received
    }
}

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

enum Poll {
    /// Waits until one of `descriptors` is readable (or `timeoutMilliseconds`, -1 for none);
    /// returns which are. An interrupted wait returns none ready.
    static func wait(_ descriptors: [Int32], timeoutMilliseconds: Int32) throws(SystemError) -> [Bool] {
        var entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let ready = poll(&entries, nfds_t(entries.count), timeoutMilliseconds)
        if ready < 0 {
            if errno == EINTR { return descriptors.map { _ in false } }
            throw SystemError(operation: "poll", errno: errno)
        }
        return entries.map { $0.revents != 0 }
    }
}

/// A non-blocking TCP listener (the portal). With no address it listens on every address,
/// IPv4 and IPv6.
final class ListeningSocket {
    let fileDescriptor: Int32

    init(address: IPAddress?, port: UInt16) throws(SystemError) {
        let v4 = address?.family == .v4
        fileDescriptor = socket(v4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fileDescriptor >= 0 else { throw SystemError(operation: "socket", errno: errno) }
        var one: Int32 = 1
        _ = setsockopt(fileDescriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        if v4, let address {
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = port.bigEndian
            socketAddress.sin_addr.s_addr = UInt32(truncatingIfNeeded: address.value).bigEndian
            bound = withUnsafePointer(to: &socketAddress) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fileDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        } else {
            var zero: Int32 = 0
            _ = setsockopt(fileDescriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = port.bigEndian
            if let address {
                let bytes = (0..<16).map { UInt8(truncatingIfNeeded: address.value >> (8 * (15 - $0))) }
                withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { $0.copyBytes(from: bytes) }
            }
            bound = withUnsafePointer(to: &socketAddress) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fileDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
        guard bound == 0, listen(fileDescriptor, 64) == 0 else {
            let code = errno
            close(fileDescriptor)
            throw SystemError(operation: "listen on \(address.map { $0.family == .v6 ? "[\($0)]" : "\($0)" } ?? "*"):\(port)", errno: code)
        }
    }

    deinit { close(fileDescriptor) }

    /// The next waiting connection and its peer's address (IPv4-mapped IPv6 as IPv4), if any.
    func accept() -> (connection: StreamConnection, peer: IPAddress)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let descriptor = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fileDescriptor, $0, &length) }
        }
        guard descriptor >= 0 else { return nil }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        let peer: IPAddress?
        if storage.ss_family == sa_family_t(AF_INET) {
            peer = withUnsafeBytes(of: &storage) { raw in IPAddress(bytes: raw[4..<8]) }
        } else {
            peer = withUnsafeBytes(of: &storage) { raw -> IPAddress? in
                let bytes = Array(raw[8..<24])
                if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return IPAddress(bytes: bytes[12..<16]) }
                return IPAddress(bytes: bytes)
            }
        }
        return (StreamConnection(descriptor), peer ?? IPAddress(v4: 0))
    }
}

/// One accepted connection; closed when released.
final class StreamConnection {
    let fileDescriptor: Int32
    init(_ descriptor: Int32) { fileDescriptor = descriptor }
    deinit { close(fileDescriptor) }

    /// What has arrived: bytes, [] when nothing is waiting, nil when the peer closed or failed.
    func read(max: Int = 16 * 1024) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: max)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fileDescriptor, $0.baseAddress, $0.count) }
        if count > 0 { return Array(buffer[..<count]) }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return [] }
        return nil
    }

    /// Writes what the socket takes now (portal answers are a few KiB, well under its buffer).
    func write(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { send(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// Large blocks (a compiled sender map, a 50 MB netlink batch) get their own mappings,
/// returned to the kernel when freed. glibc otherwise raises this threshold to the size of
/// the largest block freed so far and serves later ones from its heap, which keeps the
/// freed space resident: 35 MB more at the peak of a million-sender apply.
enum MemoryTuning {
    static func returnLargeBlocks() {
        _ = mallopt(M_MMAP_THRESHOLD, 256 << 10)
    }
}
