import Compiler
/// Writes the daemon's report (what `enforcer status` reads): at once on every state
/// change, and counters at most every `interval` seconds.
final class ReportWriter: EventSource {
    private let interval: Double
    private var lastWrite = 0.0
    private var dirty = false
    private let write: () -> Void

    init(interval: Double = 2, write: @escaping () -> Void) {
        self.interval = interval
        self.write = write
    }

    var fileDescriptor: Int32 { -1 }
    var deadline: Double? { dirty ? lastWrite + interval : nil }

    /// Counters changed: written within `interval`.
    func markDirty() { dirty = true }

    /// A state change: written now.
    func writeNow() {
        dirty = false
        lastWrite = monotonicSeconds()
        write()
    }

    func wake(_ readiness: Poll.Readiness, now: Double) { writeNow() }
}
