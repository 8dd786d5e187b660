internal import CNetfilterQueue
import Glibc

// The only file of the NFQueue target that touches libnetfilter_queue/libmnl pointers.
// Packets come out as Swift values; verdicts go in as Swift values.

/// A failed call on the queue's netlink socket, with the kernel's errno.
public struct QueueError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var errno: Int32
    public var description: String {
        let hint = errno == EPERM ? " (needs root, or CAP_NET_ADMIN)" : errno == EBUSY ? " (another process is bound to this queue)" : ""
        return "\(operation): \(String(cString: strerror(errno)))\(hint)"
    }
}

/// One packet the kernel handed to the queue.
public struct QueuedPacket: Sendable {
    /// The id the verdict must name.
    public var id: UInt32
    /// The packet mark as the kernel had it (the verdict replaces it, so keep other bits).
    public var mark: UInt32
    /// The network-layer packet, IP header first.
    public var bytes: [UInt8]

    public init(id: UInt32, mark: UInt32, bytes: [UInt8]) {
        self.id = id
        self.mark = mark
        self.bytes = bytes
    }
}

/// What the kernel does with a queued packet.
public enum PacketVerdict: Sendable, Hashable {
    /// Let the packet go on; `mark`, when given, replaces the packet mark.
    case accept(mark: UInt32?)
    case drop
}

/// A netlink socket bound to one NFQUEUE number, in copy-packet mode.
public final class NetfilterQueue {
    private let socket: OpaquePointer
    private let portID: UInt32
    public let number: UInt16
    private var receiveBuffer: [UInt8]
    private var verdictBuffer: [UInt8] = []
    /// nfq_nlmsg_parse's attribute table, reused for every packet.
    private var attributes = [UnsafeMutablePointer<nlattr>?](repeating: nil, count: Int(__NFQA_MAX.rawValue))
    /// The batch being handed out; its buffers are reused (see `unpack`).
    private var packets: [QueuedPacket] = []
    private var pendingVerdicts = 0

    /// - Parameters:
    ///   - failOpen: when the queue is full the kernel accepts instead of dropping.
    ///   - maxLength: packets the kernel holds for this queue before it is "full".
    public init(number: UInt16, failOpen: Bool, maxLength: UInt32 = 4096) throws(QueueError) {
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else { throw QueueError(operation: "mnl_socket_open", errno: Glibc.errno) }
        self.socket = socket
        self.number = number
        receiveBuffer = [UInt8](repeating: 0, count: 0xffff + 8192)
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) >= 0 else {
            let code = Glibc.errno
            mnl_socket_close(socket)
            throw QueueError(operation: "mnl_socket_bind", errno: code)
        }
        portID = mnl_socket_get_portid(socket)
        // A burst larger than the socket buffer must not make the kernel report ENOBUFS
        // and drop verdict state; the queue's own length and fail mode decide instead.
        var one: Int32 = 1
        _ = setsockopt(mnl_socket_get_fd(socket), Int32(SOL_NETLINK), NETLINK_NO_ENOBUFS, &one, socklen_t(MemoryLayout<Int32>.size))
        var size: Int32 = 8 << 20
        _ = setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))

        do {
            try configure { header in nfq_nlmsg_cfg_put_cmd(header, UInt16(AF_UNSPEC), UInt8(NFQNL_CFG_CMD_BIND.rawValue)) }
            try configure { header in
                nfq_nlmsg_cfg_put_params(header, UInt8(NFQNL_COPY_PACKET.rawValue), 0xffff)
                nfq_nlmsg_cfg_put_qmaxlen(header, maxLength)
                let flags = failOpen ? UInt32(NFQA_CFG_F_FAIL_OPEN) : 0
                mnl_attr_put_u32(header, UInt16(NFQA_CFG_FLAGS.rawValue), flags.bigEndian)
                mnl_attr_put_u32(header, UInt16(NFQA_CFG_MASK.rawValue), UInt32(NFQA_CFG_F_FAIL_OPEN).bigEndian)
            }
        } catch {
            mnl_socket_close(socket)
            throw error
        }
    }

    /// For a caller's own poll; `receive(timeoutMilliseconds: 0)` then reads without waiting.
    public var fileDescriptor: Int32 { mnl_socket_get_fd(socket) }

    deinit {
        // Closing the socket unbinds the queue; the kernel applies the bypass setting again.
        mnl_socket_close(socket)
    }

    /// A config message with an ACK, so a refusal (EBUSY, EPERM) surfaces here.
    private func configure(_ fill: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws(QueueError) {
        var buffer = [CChar](repeating: 0, count: 8192)
        let sequence = UInt32.random(in: 1...UInt32.max)
        let sent: Int = buffer.withUnsafeMutableBufferPointer { raw in
            let header = nfq_nlmsg_put(raw.baseAddress, Int32(NFQNL_MSG_CONFIG.rawValue), UInt32(number))!
            header.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
            header.pointee.nlmsg_seq = sequence
            fill(header)
            return mnl_socket_sendto(socket, header, Int(header.pointee.nlmsg_len))
        }
        guard sent >= 0 else { throw QueueError(operation: "queue \(number) config", errno: Glibc.errno) }
        let received = receiveBuffer.withUnsafeMutableBytes { raw in mnl_socket_recvfrom(socket, raw.baseAddress, raw.count) }
        guard received >= 0 else { throw QueueError(operation: "queue \(number) config", errno: Glibc.errno) }
        let code = receiveBuffer.withUnsafeBytes { raw -> Int32 in
            guard received >= MemoryLayout<nlmsghdr>.size + MemoryLayout<nlmsgerr>.size else { return 0 }
            let header = raw.load(as: nlmsghdr.self)
            guard header.nlmsg_type == UInt16(NLMSG_ERROR) else { return 0 }
            return raw.load(fromByteOffset: MemoryLayout<nlmsghdr>.size, as: nlmsgerr.self).error
        }
        if code < 0 { throw QueueError(operation: "queue \(number) config", errno: -code) }
    }

    /// Waits up to `timeoutMilliseconds` for packets, reads up to `batch` of those waiting,
    /// then hands each to `body` in arrival order; the verdict `body` returns waits for
    /// `flushVerdicts`. Returns how many were read (0 on timeout or interruption).
    ///
    /// Reading a batch before judging any of it keeps the kernel's work and the caller's
    /// apart, so each runs on warm caches; it adds no wait, since only packets already
    /// queued are read.
    public func receive(timeoutMilliseconds: Int32, batch: Int = 64, _ body: (QueuedPacket) -> PacketVerdict) throws(QueueError) -> Int {
        let descriptor = mnl_socket_get_fd(socket)
        if timeoutMilliseconds != 0 {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, timeoutMilliseconds)
            if ready < 0 {
                if Glibc.errno == EINTR { return 0 }
                throw QueueError(operation: "poll", errno: Glibc.errno)
            }
            guard ready > 0, poller.revents & Int16(POLLIN) != 0 else { return 0 }
        }
        // The buffers in locals for the batch: a class's stored properties are checked for
        // exclusive access on every use, which adds up over a few accesses per packet.
        var packets: [QueuedPacket] = [], buffer: [UInt8] = [], attributes: [UnsafeMutablePointer<nlattr>?] = []
        swap(&packets, &self.packets)
        swap(&buffer, &receiveBuffer)
        swap(&attributes, &self.attributes)
        defer {
            swap(&packets, &self.packets)
            swap(&buffer, &receiveBuffer)
            swap(&attributes, &self.attributes)
        }
        var count = 0
        while count < batch {
            // One datagram a call (the kernel hands over one packet per datagram), always into
            // the same buffer, whose cache lines stay warm: recvmmsg into a slot per packet
            // measured no cheaper in the kernel, and each slot's lines came in cold.
            let received = buffer.withUnsafeMutableBytes { raw in recv(descriptor, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT)) }
            if received < 0 {
                if Glibc.errno == EINTR || Glibc.errno == EAGAIN || Glibc.errno == EWOULDBLOCK || Glibc.errno == ENOBUFS { break }
                if count > 0 { break }  // the packets read are answered first; the error comes back on the next call
                throw QueueError(operation: "recv on queue \(number)", errno: Glibc.errno)
            }
            count = Self.unpack(buffer, length: received, into: &packets, from: count, attributes: &attributes)
        }
        var verdicts: [UInt8] = []
        swap(&verdicts, &verdictBuffer)
        for index in 0..<count {
            Self.appendVerdict(body(packets[index]), for: packets[index].id, queue: number, to: &verdicts)
        }
        pendingVerdicts += count
        swap(&verdicts, &verdictBuffer)
        return count
    }

    /// The packet messages of one datagram (`length` bytes of `buffer`), into `packets` from
    /// `index` on, their buffers refilled in place: once the caller is done with a batch,
    /// each has one owner again, so nothing is allocated. Returns the index after the last one.
    private static func unpack(_ buffer: [UInt8], length: Int, into packets: inout [QueuedPacket], from index: Int,
                               attributes: inout [UnsafeMutablePointer<nlattr>?]) -> Int {
        var next = index
        buffer.withUnsafeBytes { raw in
            var remaining = Int32(min(length, raw.count))
            var header = UnsafeRawPointer(raw.baseAddress!).assumingMemoryBound(to: nlmsghdr.self)
            attributes.withUnsafeMutableBufferPointer { attributes in
                while mnl_nlmsg_ok(header, remaining) {
                    for entry in attributes.indices { attributes[entry] = nil }
                    if header.pointee.nlmsg_type == UInt16(UInt32(NFNL_SUBSYS_QUEUE) << 8 | NFQNL_MSG_PACKET.rawValue),
                       nfq_nlmsg_parse(header, attributes.baseAddress) >= 0,
                       let packetHeader = attributes[Int(NFQA_PACKET_HDR.rawValue)],
                       let payload = attributes[Int(NFQA_PAYLOAD.rawValue)] {
                        let info = UnsafeRawPointer(mnl_attr_get_payload(packetHeader)!).loadUnaligned(as: nfqnl_msg_packet_hdr.self)
                        if next == packets.count { packets.append(QueuedPacket(id: 0, mark: 0, bytes: [])) }
                        packets[next].id = UInt32(bigEndian: info.packet_id)
                        packets[next].mark = attributes[Int(NFQA_MARK.rawValue)].map { UInt32(bigEndian: mnl_attr_get_u32($0)) } ?? 0
                        packets[next].bytes.removeAll(keepingCapacity: true)
                        packets[next].bytes.append(contentsOf: UnsafeRawBufferPointer(start: mnl_attr_get_payload(payload), count: Int(mnl_attr_get_payload_len(payload))))
                        next += 1
                    }
                    header = UnsafePointer(mnl_nlmsg_next(UnsafeMutablePointer(mutating: header), &remaining))
                }
            }
        }
        return next
    }

    /// One verdict message appended to `buffer`.
    private static let zeros = [UInt8](repeating: 0, count: 64)

    private static func appendVerdict(_ verdict: PacketVerdict, for id: UInt32, queue: UInt16, to buffer: inout [UInt8]) {
        let messageSize = zeros.count
        let start = buffer.count
        buffer.append(contentsOf: zeros)  // copied, not appended a byte at a time
        let length = buffer.withUnsafeMutableBytes { raw -> Int in
            let base = raw.baseAddress!.advanced(by: start).assumingMemoryBound(to: CChar.self)
            let header = nfq_nlmsg_put(base, Int32(NFQNL_MSG_VERDICT.rawValue), UInt32(queue))!
            switch verdict {
            case .accept(let mark):
                nfq_nlmsg_verdict_put(header, Int32(bitPattern: id), NF_ACCEPT)
                if let mark { nfq_nlmsg_verdict_put_mark(header, mark) }
            case .drop:
                nfq_nlmsg_verdict_put(header, Int32(bitPattern: id), NF_DROP)
            }
            precondition(Int(header.pointee.nlmsg_len) <= messageSize, "verdict message outgrew its slot")
            return (Int(header.pointee.nlmsg_len) + 3) & ~3
        }
        // Messages of one write follow each other at their aligned length.
        buffer.removeLast(messageSize - length)
    }

    public func flushVerdicts() throws(QueueError) {
        guard pendingVerdicts > 0 else { return }
        defer { verdictBuffer.removeAll(keepingCapacity: true); pendingVerdicts = 0 }
        let sent = verdictBuffer.withUnsafeBytes { raw in mnl_socket_sendto(socket, raw.baseAddress, raw.count) }
        guard sent >= 0 else { throw QueueError(operation: "verdict on queue \(number)", errno: Glibc.errno) }
    }
}
