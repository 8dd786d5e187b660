import Foundation

/// A wall-clock timer as daemon events: the next flip (`.timerFired`, and `.clockSet` when
/// the clock is set), or the deadline of an `apply --confirm` (`.confirmDue` for both: a
/// clock set forward may have passed it).
final class WallClockTimerSource: EventSource {
    private let timer: WallClockTimer
    private let fired: DaemonEvent
    private let clockChanged: DaemonEvent
    var onEvent: (DaemonEvent) -> Void = { _ in }

    init(fired: DaemonEvent, clockChanged: DaemonEvent) throws(SystemError) {
        timer = try WallClockTimer()
        self.fired = fired
        self.clockChanged = clockChanged
    }

    var fileDescriptor: Int32 { timer.fileDescriptor }

    /// Fires at `instant` (never with nil).
    func arm(at instant: Date?) throws(SystemError) { try timer.arm(at: instant) }

    func wake(_ readiness: Poll.Readiness, now: Double) {
        switch timer.acknowledge() {
        case .fired: onEvent(fired)
        case .clockChanged: onEvent(clockChanged)
        case .nothing: break
        }
    }
}
