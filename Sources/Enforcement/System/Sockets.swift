import Compiler
import Glibc

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

    /// No more output: the peer reads the end of the answer, then end of file.
    func shutdownWriting() { _ = shutdown(fileDescriptor, Int32(SHUT_WR)) }

    /// Writes what the socket takes now: how many bytes (0 when its buffer is full), or nil
    /// when the peer is gone.
    func write(_ bytes: ArraySlice<UInt8>) -> Int? {
        let count = bytes.withUnsafeBytes { send(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if count >= 0 { return count }
        return errno == EAGAIN || errno == EINTR ? 0 : nil
    }
}
