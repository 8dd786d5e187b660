import Compiler
import NFQueue

/// The NFQUEUE worker's socket: each wake answers every packet waiting. While flows are
/// being judged it also wants a wake about once a second, to time idle ones out.
final class QueueSource: EventSource {
    let worker: Worker
    /// After each drain (the daemon's report keeps the counters).
    var onDrained: (Worker) -> Void = { _ in }
    private var lastWake = monotonicSeconds()

    init(worker: Worker) { self.worker = worker }

    var fileDescriptor: Int32 { worker.fileDescriptor }
    var deadline: Double? { worker.isTracking ? lastWake + 1 : nil }

    func wake(_ readiness: Poll.Readiness, now: Double) {
        lastWake = now
        do { try worker.drain() } catch { Log.error("worker: \(error)") }
        onDrained(worker)
    }
}
