import Compiler
import Foundation

/// The NFQUEUE worker: reads queued packets, judges their flows, answers each packet at
/// once, and sends the resets and redirects its decisions need.
public final class Worker {
    private let queue: NetfilterQueue
    private let raw: RawSocket
    /// Never nil but during `drain`, which holds it in a local (see there).
    private var inspectorStorage: Inspector?
    public var inspector: Inspector { inspectorStorage! }
    /// Receives the log lines of one drain at once (one write, not one per flow), as
    /// bytes, each line behind `linePrefix(priority)` (made once per drain; nil: lines of
    /// that syslog priority are not written) and ending in a newline.
    private let log: ([UInt8]) -> Void
    private let linePrefix: (_ syslogPriority: Int) -> [UInt8]?
    private var pendingLog: [UInt8] = []
    /// The resets and redirects of one drain, held until its verdicts are out (see `drain`).
    private var pendingSegments: [ForgedSegment] = []
    /// Which judged flows get a line, and how often the same one (`[web] log_flows`).
    public var flowLog: FlowLogFilter

    private static let errorStart = Array("level=error msg=".utf8)
    /// Packets read before they are judged (see `NetfilterQueue.receive`).
    private static let batch = 64

    /// Binds the queue; fails (EPERM, EBUSY) before anything is judged.
    public init(queueNumber: UInt16, queueFailOpen: Bool, queueMaxLength: UInt32 = 4096, inspector: Inspector,
                log: @escaping ([UInt8]) -> Void, linePrefix: @escaping (_ syslogPriority: Int) -> [UInt8]? = { _ in [] },
                flowLog: FlowLogFilter = FlowLogFilter()) throws(QueueError) {
        queue = try NetfilterQueue(number: queueNumber, failOpen: queueFailOpen, maxLength: queueMaxLength)
        raw = try RawSocket()
        inspectorStorage = inspector
        self.log = log
        self.linePrefix = linePrefix
        self.flowLog = flowLog
    }

    /// Replaces the rules (a reload); flows being judged keep their buffers.
    public func replaceMatcher(_ matcher: WebMatcher) { inspectorStorage!.matcher = matcher }

    /// enforcer.conf again (a reload): the inspector's settings and which flows are logged.
    public func follow(_ config: Config) {
        inspectorStorage!.follow(config)
        if flowLog.mode != config.logFlows || flowLog.window != config.logRepeatWindow {
            flowLog.reset(mode: config.logFlows, window: config.logRepeatWindow)
        }
    }

    /// The portal's acknowledge button (see `Inspector.acknowledge`).
    public func acknowledge(client: IPAddress, rule: String, until: Date) {
        inspectorStorage!.acknowledge(client: client, rule: rule, until: until)
    }

    /// The queue's socket, for the daemon's poll.
    public var fileDescriptor: Int32 { queue.fileDescriptor }
    /// Whether flows are being judged (then `drain` wants calling about once a second, to
    /// time them out, even when no packet comes).
    public var isTracking: Bool { inspector.flows.count > 0 }
    private var lastSweep = monotonicSeconds()

    /// Answers every packet waiting now (at most 8 batches of 64, so timers and signals get
    /// their turn under load) and times out idle flows about once a second. The kernel hands
    /// over one packet per read; the verdicts of all of them go back in one write.
    ///
    /// The resets and redirects of the drain's decisions go out only after that write. A
    /// ClientHello in two back-to-back segments is judged on the second while the verdict
    /// that lets the first through still waits here; a reset sent then would reach the
    /// server ahead of that first segment, with a sequence number past the one the server
    /// expects, and a reset counts only on exactly that number: the server's side would
    /// stay open.
    public func drain() throws(QueueError) {
        // One timestamp for the drain's lines, made at its first judged flow: most drains of a
        // quiet queue judge none (a SYN, an ACK), and the time is formatted as text.
        // Flow lines are informational (6); a log level above info leaves them out (nil). (An
        // error line's prefix, priority 3, is made only when there is one.)
        var prefix: [UInt8]?? = nil
        // The inspector, the log and the segments in locals for the drain: a class's stored
        // properties are checked for exclusive access on every use, several times a packet
        // otherwise.
        var inspector = inspectorStorage.take()!, log: [UInt8] = [], segments: [ForgedSegment] = []
        swap(&log, &pendingLog)
        swap(&segments, &pendingSegments)
        defer {
            inspectorStorage = inspector
            swap(&log, &pendingLog)
            swap(&segments, &pendingSegments)
        }
        var failure: QueueError?
        do {
            for _ in 0..<8 {
                let now = monotonicSeconds(), wallClock = Date()
                let count = try queue.receive(timeoutMilliseconds: 0, batch: Self.batch) { packet -> PacketVerdict in
                    var action = inspector.inspect(packet, now: now, wallClock: wallClock)
                    if !action.segments.isEmpty { segments.append(contentsOf: action.segments) }
                    // Moved out, not copied: a copy retains each of its strings, and the
                    // action's own copy would release them all again.
                    if let judgement = action.judgement.take() {
                        if prefix == nil { prefix = linePrefix(6) }
                        if let prefix = prefix! {
                            let admitted = flowLog.admit(judgement, now: now)
                            if admitted.log {
                                log.append(contentsOf: prefix)
                                judgement.appendLine(to: &log, repeated: admitted.repeated)
                            }
                        }
                    }
                    return action.verdict
                }
                // Fewer than a batch: the socket was empty when read last, so the verdicts go
                // out now rather than after one more read that finds nothing.
                if count < Self.batch { break }
            }
        } catch {
            // The verdicts and segments of the batches read before the error still go out.
            failure = error
        }
        do { try queue.flushVerdicts() } catch { failure = failure ?? error }
        for segment in segments {
            do { try raw.send(segment.bytes) } catch {
                log.append(contentsOf: linePrefix(3) ?? [])
                log.append(addingCapacity: 64 + 2 * "\(error)".utf8.count) { line in
                    line.write(Self.errorStart)
                    line.writeValue("worker: \(error)")
                    line.append(UInt8(ascii: "\n"))
                }
            }
        }
        segments.removeAll(keepingCapacity: true)
        // After the verdicts: logging never delays a packet.
        if !log.isEmpty { self.log(log) }
        log.removeAll(keepingCapacity: true)
        if let failure { throw failure }
        let now = monotonicSeconds()
        if now - lastSweep >= 1 {
            inspector.expire(now: now)
            lastSweep = now
            // Lines left out whose window passed: one summary each, in a write of their own.
            let summaries = flowLog.expired(now: now)
            if !summaries.isEmpty, let prefix = prefix ?? linePrefix(6) {
                var lines: [UInt8] = []
                for (judgement, repeated) in summaries {
                    lines.append(contentsOf: prefix)
                    judgement.appendLine(to: &lines, repeated: repeated)
                }
                self.log(lines)
            }
        }
    }
}
