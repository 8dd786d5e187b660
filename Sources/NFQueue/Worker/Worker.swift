import Compiler
import Foundation

/// The NFQUEUE worker: reads queued packets, judges their flows, answers each packet at
/// once, and sends the resets and redirects its decisions need.
public final class Worker {
    private let queue: NetfilterQueue
    private let raw: RawSocket
    public private(set) var inspector: Inspector
    /// Receives the log lines of one drain at once (one write, not one per flow), as
    /// bytes, each line behind `linePrefix()` (made once per drain) and ending in a newline.
    private let log: ([UInt8]) -> Void
    private let linePrefix: () -> [UInt8]
    private var pendingLog: [UInt8] = []

    /// Binds the queue; fails (EPERM, EBUSY) before anything is judged.
    public init(queueNumber: UInt16, queueFailOpen: Bool, queueMaxLength: UInt32 = 4096, inspector: Inspector,
                log: @escaping ([UInt8]) -> Void, linePrefix: @escaping () -> [UInt8] = { [] }) throws(QueueError) {
        queue = try NetfilterQueue(number: queueNumber, failOpen: queueFailOpen, maxLength: queueMaxLength)
        raw = try RawSocket()
        self.inspector = inspector
        self.log = log
        self.linePrefix = linePrefix
    }

    /// Replaces the rules (a reload); flows being judged keep their buffers.
    public func replaceMatcher(_ matcher: WebMatcher) { inspector.matcher = matcher }

    /// The portal's acknowledge button (see `Inspector.acknowledge`).
    public func acknowledge(client: IPAddress, rule: String, until: Date) {
        inspector.acknowledge(client: client, rule: rule, until: until)
    }

    /// The queue's socket, for the daemon's poll.
    public var fileDescriptor: Int32 { queue.fileDescriptor }
    /// Whether flows are being judged (then `drain` wants calling about once a second, to
    /// time them out, even when no packet comes).
    public var isTracking: Bool { inspector.flows.count > 0 }
    private var lastSweep = Worker.monotonicSeconds()

    /// Answers every packet waiting now (at most 8 batches of 64, so timers and signals get
    /// their turn under load) and times out idle flows about once a second. The kernel hands
    /// over one packet per read; the verdicts of all of them go back in one write.
    public func drain() throws(QueueError) {
        var prefix: [UInt8]?
        for _ in 0..<8 {
            let now = Self.monotonicSeconds(), wallClock = Date()
            let count = try queue.receive(timeoutMilliseconds: 0) { packet in
                let action = inspector.inspect(packet, now: now, wallClock: wallClock)
                for segment in action.segments {
                    do { try raw.send(segment.bytes) } catch {
                        if prefix == nil { prefix = linePrefix() }
                        pendingLog.append(contentsOf: prefix!)
                        pendingLog.append(contentsOf: "worker: \(error)\n".utf8)
                    }
                }
                queue.verdict(action.verdict, for: packet.id)
                if let judgement = action.judgement {
                    if prefix == nil { prefix = linePrefix() }
                    pendingLog.append(contentsOf: prefix!)
                    judgement.appendLine(to: &pendingLog)
                }
            }
            if count == 0 { break }
        }
        try queue.flushVerdicts()
        // After the verdicts: logging never delays a packet.
        if !pendingLog.isEmpty { log(pendingLog) }
        pendingLog.removeAll(keepingCapacity: true)
        let now = Self.monotonicSeconds()
        if now - lastSweep >= 1 {
            inspector.expire(now: now)
            lastSweep = now
        }
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
