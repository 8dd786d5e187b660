import Glibc

// The only file of the NFQueue target that calls the socket API with pointers: whole IP
// packets the worker built (a reset for the server, a redirect for the client) go out
// through raw sockets with the IP header included, so their source may be another host.

/// Sends complete IPv4 and IPv6 packets.
public final class RawSocket {
    private let v4: Int32
    private let v6: Int32

    public init() throws(QueueError) {
        // IPPROTO_RAW implies a header written by the caller (IP_HDRINCL / IPV6_HDRINCL).
        v4 = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
        guard v4 >= 0 else { throw QueueError(operation: "socket(AF_INET, SOCK_RAW)", errno: errno) }
        v6 = socket(AF_INET6, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
        guard v6 >= 0 else {
            let code = errno
            close(v4)
            throw QueueError(operation: "socket(AF_INET6, SOCK_RAW)", errno: code)
        }
    }

    deinit {
        close(v4)
        close(v6)
    }

    /// Sends `packet` (IP header first) to its own destination address.
    public func send(_ packet: [UInt8]) throws(QueueError) {
        let view = PacketView(packet)
        guard let destination = view.destination else { throw QueueError(operation: "send: not an IP packet", errno: EINVAL) }
        let sent: Int
        if destination.isIPv4 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: destination.bytes) }
            sent = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(v4, packet, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        } else {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: destination.bytes) }
            sent = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(v6, packet, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        guard sent == packet.count else { throw QueueError(operation: "sendto \(destination)", errno: sent < 0 ? errno : EMSGSIZE) }
    }
}
