import Compiler
import Foundation

/// The NFQUEUE worker: reads queued packets, judges their flows, answers each packet at
/// once, and sends the resets and redirects its decisions need.
public final class Worker {
    private let queue: NetfilterQueue
    private let raw: RawSocket
    public private(set) var inspector: Inspector
    private let log: (String) -> Void

    /// Binds the queue; fails (EPERM, EBUSY) before anything is judged.
    public init(queueNumber: UInt16, queueFailOpen: Bool, inspector: Inspector, log: @escaping (String) -> Void) throws(QueueError) {
        queue = try NetfilterQueue(number: queueNumber, failOpen: queueFailOpen)
        raw = try RawSocket()
        self.inspector = inspector
        self.log = log
    }

    /// Replaces the rules (a reload); flows being judged keep their buffers.
    public func replaceMatcher(_ matcher: WebMatcher) { inspector.matcher = matcher }

    /// Runs until `shouldStop` answers true (asked at least twice a second).
    public func run(shouldStop: () -> Bool) throws(QueueError) {
        var lastSweep = Self.monotonicSeconds()
        while !shouldStop() {
            _ = try queue.receive(timeoutMilliseconds: 500) { packet in
                let action = inspector.inspect(packet, now: Self.monotonicSeconds(), wallClock: Date())
                for segment in action.segments {
                    do { try raw.send(segment.bytes) } catch { log("worker: \(error)") }
                }
                queue.verdict(action.verdict, for: packet.id)
                if let judgement = action.judgement { log(judgement.description) }
            }
            try queue.flushVerdicts()
            let now = Self.monotonicSeconds()
            if now - lastSweep >= 1 {
                inspector.expire(now: now)
                lastSweep = now
            }
        }
    }

    static func monotonicSeconds() -> Double { ProcessInfo.processInfo.systemUptime }
}
