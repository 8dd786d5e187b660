import Glibc
import Compiler

/// What a request asked of the kernel (an nf_tables message, or the batch as a whole).
public enum KernelOperation: String, Hashable, Sendable, CustomStringConvertible {
    case addTable = "add table"
    case deleteTable = "delete table"
    case getTable = "get table"
    case addChain = "add chain"
    case deleteChain = "delete chain"
    case flushChain = "flush chain"
    case addRule = "add rule"
    case addSet = "add set"
    case deleteSet = "delete set"
    case addElements = "add elements"
    case deleteElements = "delete elements"
    /// The batch itself (refused before any of its messages, e.g. without permission).
    case transaction = "the transaction"

    public var description: String { rawValue }
}

/// The kernel refused a transaction; nothing of it took effect.
public struct KernelRejection: Error, CustomStringConvertible, Sendable {
    public struct Refusal: Sendable {
        /// What the refused message came from ("rule 3 of chain input: …", "set …").
        public var origin: String
        public var operation: KernelOperation
        public var errno: Int32
        /// The kernel's extended-ACK text, when it gave one.
        public var kernelMessage: String?
    }
    public var refusals: [Refusal]

    public var description: String {
        refusals.map { refusal in
            var text = "the kernel refused \(refusal.operation) (\(refusal.origin)): \(String(cString: strerror(refusal.errno)))"
            if let message = refusal.kernelMessage, !message.isEmpty { text += " (\(message))" }
            return text
        }.joined(separator: "\n")
    }
}

public enum KernelError: Error, CustomStringConvertible, Sendable {
    case socket(NetlinkError)
    case rejected(KernelRejection)
    /// The ruleset cannot be put into messages (nothing was sent).
    case encoding(EncodeError)
    /// The kernel stopped answering before every message of the batch was acknowledged.
    case incompleteAcknowledgement(expected: Int, received: Int)

    public var description: String {
        switch self {
        case .socket(let error): "netlink: \(error)"
        case .rejected(let rejection): rejection.description
        case .encoding(let error): "cannot encode the ruleset for the kernel: \(error)"
        case let .incompleteAcknowledgement(expected, received):
            "the kernel acknowledged \(received) of \(expected) messages; the outcome of the transaction is unknown"
        }
    }
}

public struct TableState: Sendable, Equatable {
    public var handle: UInt64
    public var comment: String?
}

public struct CommitReport: Sendable {
    public var messages: Int
    public var bytes: Int
    /// From the first byte encoded to the last acknowledgement drained.
    public var seconds: Double = 0
    /// From the send to the last acknowledgement: the kernel's part of `seconds`.
    public var kernelSeconds: Double = 0
}

/// One netfilter netlink connection: batches in, acknowledgements out.
public final class NFTablesConnection {
    private let socket: NetlinkSocket
    private var sequence: UInt32

    public init() throws(KernelError) {
        do { socket = try NetlinkSocket() } catch { throw .socket(error) }
        sequence = UInt32(truncatingIfNeeded: time(nil))
    }

    /// Sends `messages` as one batch (all or nothing) with one sequence number per message
    /// and waits for the acknowledgement of every one of them.
    @discardableResult
    /// - Parameter whileInKernel: called once the batch is encoded, just before it is sent:
    ///   work started there on another thread has a core to itself while the kernel takes
    ///   the transaction (and does not slow the encoding down).
    public func commit(_ messages: [EncodedMessage], whileInKernel: () -> Void = {}) throws(KernelError) -> CommitReport {
        guard !messages.isEmpty else { return CommitReport(messages: 0, bytes: 0) }
        let started = monotonicSeconds()
        let begin = nextSequence(count: messages.count + 2)
        let batch = Self.encodeBatch(messages, begin: begin)
        let bytes = batch.reduce(0) { $0 + $1.count }
        Trace.phase("batch encoded (\(bytes / 1024) KiB in \(batch.count) part\(batch.count == 1 ? "" : "s"))")
        socket.setBuffers(send: bytes + 65536, receive: max(4 << 20, messages.count * 1024))
        socket.setReceiveTimeout(seconds: 30)
        whileInKernel()
        let sent = monotonicSeconds()
        do { try socket.send(parts: batch) } catch { throw .socket(error) }
        Trace.phase("batch sent")

        var acknowledged = Set<UInt32>()
        var refusals: [KernelRejection.Refusal] = []
        let first = begin + 1, last = begin + UInt32(messages.count)
        receiving: while acknowledged.count < messages.count {
            let datagram: [UInt8]
            do { datagram = try socket.receive() } catch {
                if error.errno == EAGAIN || error.errno == EWOULDBLOCK { break receiving }
                throw .socket(error)
            }
            for reply in NetlinkReply.parse(datagram) {
                guard case let .acknowledgement(error, sequence, message) = reply else { continue }
                if sequence == begin || sequence == last + 1 {
                    // The batch itself was refused (e.g. no permission): nothing else will come.
                    if error != 0 {
                        refusals.append(.init(origin: "the batch", operation: .transaction, errno: -error, kernelMessage: message))
                        break receiving
                    }
                    continue
                }
                guard sequence >= first && sequence <= last else { continue }
                acknowledged.insert(sequence)
                if error != 0 {
                    let source = messages[Int(sequence - first)]
                    refusals.append(.init(origin: source.origin, operation: source.message.operation, errno: -error, kernelMessage: message))
                }
            }
        }
        if !refusals.isEmpty { throw .rejected(KernelRejection(refusals: refusals)) }
        guard acknowledged.count == messages.count else {
            throw .incompleteAcknowledgement(expected: messages.count, received: acknowledged.count)
        }
        let done = monotonicSeconds()
        return CommitReport(messages: messages.count, bytes: bytes, seconds: done - started, kernelSeconds: done - sent)
    }

    /// The batch for `messages` (sequence numbers from `begin`: BEGIN, the messages, END),
    /// in consecutive parts that are one datagram when sent together. A large batch is cut
    /// at message boundaries into parts of about equal bytes, each encoded on its own core.
    /// `parts` overrides the count (tests).
    static func encodeBatch(_ messages: [EncodedMessage], begin: UInt32, parts requested: Int? = nil) -> [[UInt8]] {
        let estimates = messages.map(\.estimatedBytes)
        let total = estimates.reduce(0, +)
        let parts = max(1, requested ?? Concurrently<[UInt8]>.parts(limit: total / (4 << 20) + 1))
        // Part p holds messages[bounds[p] ..< bounds[p + 1]].
        var bounds = [0]
        var running = 0
        for (index, estimate) in estimates.enumerated() where bounds.count < parts {
            running += estimate
            if running >= total * bounds.count / parts { bounds.append(index + 1) }
        }
        while bounds.count <= parts { bounds.append(messages.count) }
        let cuts = bounds
        let work: @Sendable (Int) -> [UInt8] = { part in
            let range = cuts[part]..<cuts[part + 1]
            var bytes = part == 0 ? LibNFTNL.batchBegin(sequence: begin) : []
            // Grown once: doubling a 50 MB buffer would hold two copies at the peak.
            bytes.reserveCapacity(estimates[range].reduce(4096, +))
            let scratch = NetlinkBuffer()
            for index in range {
                LibNFTNL.encode(messages[index].message, sequence: begin + 1 + UInt32(index), appendingTo: &bytes, scratch: scratch)
            }
            if part == parts - 1 { bytes += LibNFTNL.batchEnd(sequence: begin + UInt32(messages.count) + 1) }
            return bytes
        }
        return Concurrently<[UInt8]>.each(parts, work)
    }

    /// A table's handle and comment, or nil when the table does not exist.
    public func tableState(family: UInt8, name: String) throws(KernelError) -> TableState? {
        let sequence = nextSequence(count: 1)
        do { try socket.send(LibNFTNL.getTable(family: family, name: name, sequence: sequence)) } catch { throw .socket(error) }
        socket.setReceiveTimeout(seconds: 5)
        var state: TableState? = nil
        while true {
            let datagram: [UInt8]
            do { datagram = try socket.receive() } catch { throw .socket(error) }
            for reply in NetlinkReply.parse(datagram) {
                switch reply {
                case let .table(seq, _, handle, userData) where seq == sequence:
                    state = TableState(handle: handle, comment: UserDataRecords.comment(in: userData))
                case let .acknowledgement(error, seq, _) where seq == sequence:
                    if error == -ENOENT { return nil }
                    if error != 0 {
                        throw .rejected(KernelRejection(refusals: [.init(origin: "table \(name)", operation: .getTable, errno: -error, kernelMessage: nil)]))
                    }
                    return state
                default: continue
                }
            }
        }
    }

    private func nextSequence(count: Int) -> UInt32 {
        let start = sequence
        sequence &+= UInt32(count)
        return start
    }
}

/// Netlink messages the kernel sends back, parsed from bytes (host byte order).
enum NetlinkReply {
    case acknowledgement(error: Int32, sequence: UInt32, message: String?)
    case table(sequence: UInt32, name: String, handle: UInt64, userData: [UInt8])
    case other(type: UInt16)

    static let errorType: UInt16 = 2
    static let newTableType: UInt16 = 10 << 8  // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE
    static let acknowledgementTLVs: UInt16 = 0x200

    static func parse(_ bytes: [UInt8]) -> [NetlinkReply] {
        var out: [NetlinkReply] = []
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(u32(bytes, offset))
            guard length >= 16, offset + length <= bytes.count else { break }
            let type = u16(bytes, offset + 4), flags = u16(bytes, offset + 6), sequence = u32(bytes, offset + 8)
            let body = offset + 16
            switch type {
            case errorType where length >= 36:
                let error = Int32(bitPattern: u32(bytes, body))
                let original = body + 4
                let originalSequence = u32(bytes, original + 8)
                var message: String?
                if flags & acknowledgementTLVs != 0 {
                    // With NETLINK_CAP_ACK only the original header is echoed; TLVs follow it.
                    for (attribute, value) in attributes(bytes, from: original + 16, to: offset + length) where attribute == 1 {
                        message = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
                    }
                }
                out.append(.acknowledgement(error: error, sequence: originalSequence, message: message))
            case newTableType:
                var name = "", userData: [UInt8] = [], handle: UInt64 = 0
                for (attribute, value) in attributes(bytes, from: body + 4, to: offset + length) {
                    if attribute == 1 { name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self) }
                    if attribute == 4, value.count == 8 { handle = value.reduce(0) { $0 << 8 | UInt64($1) } }
                    if attribute == 6 { userData = value }
                }
                out.append(.table(sequence: sequence, name: name, handle: handle, userData: userData))
            default:
                out.append(.other(type: type))
            }
            offset += (length + 3) & ~3
        }
        return out
    }

    static func attributes(_ bytes: [UInt8], from start: Int, to end: Int) -> [(UInt16, [UInt8])] {
        var out: [(UInt16, [UInt8])] = []
        var offset = start
        while offset + 4 <= end {
            let length = Int(u16(bytes, offset))
            guard length >= 4, offset + length <= end else { break }
            out.append((u16(bytes, offset + 2) & 0x3fff, Array(bytes[(offset + 4)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return out
    }

    static func u16(_ bytes: [UInt8], _ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}

enum UserDataRecords {
    /// Record type 0 of table/chain/rule userdata: the comment.
    static func comment(in bytes: [UInt8]) -> String? {
        var offset = 0
        while offset + 2 <= bytes.count {
            let type = bytes[offset], length = Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { return nil }
            if type == 0 {
                return String(decoding: bytes[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }, as: UTF8.self)
            }
            offset += 2 + length
        }
        return nil
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
