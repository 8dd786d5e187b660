import Compiler
import Glibc

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
    /// The ruleset's nf_tables generation as this connection last knew it (`followGeneration`),
    /// or nil. While it is known, every batch is sent on the condition that the ruleset is
    /// still at it (the kernel refuses it with ERESTART otherwise) and the generation the
    /// batch's commit makes becomes the known one. So "known" means: no other process has
    /// committed anything since this connection read it or committed itself.
    public private(set) var knownGeneration: UInt32?

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
        let expected = knownGeneration
        // Until this batch is acknowledged the generation is not known: a refusal or a lost
        // connection leaves it unknown, and the next apply reads it again.
        knownGeneration = nil
        let batch = Self.encodeBatch(messages, begin: begin, generation: expected)
        let bytes = batch.reduce(0) { $0 + $1.count }
        Trace.phase("batch encoded (\(bytes / 1024) KiB in \(batch.count) part\(batch.count == 1 ? "" : "s"))")
        // A large batch goes in with this process's monitor away (see `NFTablesMonitor`): it
        // counts the commits from the generation just before it left to the one after it is
        // back (read then, not taken from `expected`: commits before that, it heard).
        let quiet = bytes >= Self.quietBytes ? NFTablesMonitor.listening(in: socket.namespace) : nil
        let before = quiet == nil ? nil : try? readGeneration()
        var committed = false
        quiet?.pause()
        defer { quiet?.resume(from: before, to: try? readGeneration(), own: committed ? 1 : 0) }
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
        if !refusals.isEmpty {
            let rejection = KernelRejection(refusals: refusals)
            // A refused batch is aborted whole and commits nothing: the generation stays
            // (unless the refusal was that it had moved).
            if !rejection.isGenerationMoved { knownGeneration = expected }
            throw .rejected(rejection)
        }
        guard acknowledged.count == messages.count else {
            throw .incompleteAcknowledgement(expected: messages.count, received: acknowledged.count)
        }
        // Commits are serialised and each advances the generation by one (0 is skipped).
        if let expected { knownGeneration = expected &+ 1 == 0 ? 1 : expected &+ 1 }
        let done = monotonicSeconds()
        committed = true
        return CommitReport(messages: messages.count, bytes: bytes, seconds: done - started, kernelSeconds: done - sent)
    }

    /// The size from which a batch is committed with this process's monitor away: a few
    /// thousand elements' notices cost the kernel little, a million's cost it more than the
    /// transaction itself.
    static let quietBytes = 1 << 20

    /// The batch for `messages` (sequence numbers from `begin`: BEGIN, the messages, END),
    /// in consecutive parts that are one datagram when sent together. A large batch is cut
    /// at message boundaries into parts of about equal bytes, each encoded on its own core.
    /// `parts` overrides the count (tests).
    static func encodeBatch(_ messages: [EncodedMessage], begin: UInt32, generation: UInt32? = nil, parts requested: Int? = nil) -> [[UInt8]] {
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
            var bytes = part == 0 ? LibNFTNL.batchBegin(sequence: begin, generation: generation) : []
            // Grown once: doubling a large batch's buffer would hold two copies at the peak.
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

    /// Reads the ruleset's generation id and follows it from now on (see `knownGeneration`).
    @discardableResult
    public func followGeneration() throws(KernelError) -> UInt32 {
        let generation = try readGeneration()
        knownGeneration = generation
        return generation
    }

    /// The ruleset's generation id now.
    private func readGeneration() throws(KernelError) -> UInt32 {
        let sequence = nextSequence(count: 1)
        do { try socket.send(LibNFTNL.getGeneration(sequence: sequence)) } catch { throw .socket(error) }
        socket.setReceiveTimeout(seconds: 5)
        var generation: UInt32?
        while true {
            let datagram: [UInt8]
            do { datagram = try socket.receive() } catch { throw .socket(error) }
            for reply in NetlinkReply.parse(datagram) {
                switch reply {
                case let .generation(seq, id) where seq == sequence:
                    generation = id
                case let .acknowledgement(error, seq, _) where seq == sequence:
                    if error != 0 {
                        throw .rejected(KernelRejection(refusals: [.init(origin: "the ruleset generation", operation: .getGeneration, errno: -error, kernelMessage: nil)]))
                    }
                    guard let generation else {
                        throw .rejected(KernelRejection(refusals: [.init(origin: "the ruleset generation", operation: .getGeneration, errno: EPROTO, kernelMessage: "no generation in the answer")]))
                    }
                    return generation
                default: continue
                }
            }
        }
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
                    state = TableState(handle: handle, comment: UserData.comment(in: userData))
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

    /// The keys of every element of a set, or nil when there is no such set (or table).
    public func setElementKeys(family: UInt8, table: String, set: String) throws(KernelError) -> [[UInt8]]? {
        let sequence = nextSequence(count: 1)
        do { try socket.send(LibNFTNL.getSetElements(family: family, table: table, set: set, sequence: sequence)) } catch { throw .socket(error) }
        socket.setReceiveTimeout(seconds: 5)
        var keys: [[UInt8]] = []
        while true {
            let datagram: [UInt8]
            do { datagram = try socket.receive() } catch { throw .socket(error) }
            for reply in NetlinkReply.parse(datagram) {
                switch reply {
                case let .elements(seq, found) where seq == sequence:
                    keys += found
                case let .done(seq) where seq == sequence:
                    return keys
                case let .acknowledgement(error, seq, _) where seq == sequence:
                    if error == -ENOENT { return nil }
                    if error != 0 {
                        throw .rejected(KernelRejection(refusals: [.init(origin: "set \(set)", operation: .getTable, errno: -error, kernelMessage: nil)]))
                    }
                    return keys
                default: continue
                }
            }
        }
    }

    /// What every counter object of a table has counted, by name; empty when there is no
    /// such table.
    public func counters(family: UInt8, table: String) throws(KernelError) -> [String: CounterValue] {
        let sequence = nextSequence(count: 1)
        do { try socket.send(LibNFTNL.getCounters(family: family, table: table, sequence: sequence)) } catch { throw .socket(error) }
        socket.setReceiveTimeout(seconds: 5)
        var counters: [String: CounterValue] = [:]
        while true {
            let datagram: [UInt8]
            do { datagram = try socket.receive() } catch { throw .socket(error) }
            for reply in NetlinkReply.parse(datagram) {
                switch reply {
                case let .counter(seq, owner, name, value) where seq == sequence && owner == table:
                    counters[name] = value
                case let .done(seq) where seq == sequence:
                    return counters
                case let .acknowledgement(error, seq, _) where seq == sequence:
                    if error == -ENOENT { return [:] }
                    if error != 0 {
                        throw .rejected(KernelRejection(refusals: [.init(origin: "counters of table \(table)", operation: .getCounters, errno: -error, kernelMessage: nil)]))
                    }
                    return counters
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
