import Compiler
import Glibc

/// The service manager's notification socket: systemd passes its path in `NOTIFY_SOCKET` to
/// a `Type=notify` service, and reads from it lines such as `READY=1` (start-up is done, so
/// units ordered after this one may start), `RELOADING=1`, `STATUS=…` (shown by
/// `systemctl status`), `STOPPING=1` and `WATCHDOG=1` (still alive). One datagram per
/// message, sent without blocking: a manager that does not read never stalls the daemon.
final class ServiceManagerSocket {
    private let fileDescriptor: Int32
    private var address = sockaddr_un()
    private let addressLength: socklen_t
    /// How often the manager wants `WATCHDOG=1` at the latest (`WATCHDOG_USEC`), when it
    /// asked this process (`WATCHDOG_PID` absent or ours).
    let watchdogInterval: Double?

    /// The socket named by the environment, or nil when no service manager asked for
    /// notifications. The variables are removed from the environment so that the processes
    /// this one starts (the confirm watchdog) do not notify in its name.
    init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@") else { return nil }
        var bytes = Array(path.utf8)
        // "@name" is an abstract socket: its address starts with a zero byte.
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return nil }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        fileDescriptor = descriptor
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes[0] == 0 ? 0 : 1))
        let pid = environment["WATCHDOG_PID"].flatMap { Int32($0) }
        if let microseconds = environment["WATCHDOG_USEC"].flatMap({ UInt64($0) }), microseconds > 0, pid == nil || pid == getpid() {
            watchdogInterval = Double(microseconds) / 1_000_000
        } else {
            watchdogInterval = nil
        }
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { unsetenv(name) }
    }

    deinit { close(fileDescriptor) }

    /// Sends `lines` as one message. A failure is returned, not thrown: the daemon goes on
    /// enforcing whether or not its manager hears it.
    @discardableResult
    func send(_ lines: [String]) -> SystemError? {
        // A STATUS line ends at the first newline: keep each line whole.
        let text = lines.map { String($0.map { $0 == "\n" ? " " : $0 }) }.joined(separator: "\n")
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fileDescriptor, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), $0, addressLength)
                }
            }
        }
        return sent < 0 ? SystemError(operation: "notify the service manager", errno: errno) : nil
    }
}
