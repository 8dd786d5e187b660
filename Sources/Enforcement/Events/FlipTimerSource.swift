import Foundation

/// The wall-clock timer set to the daemon's next flip, as daemon events.
final class FlipTimerSource: EventSource {
    private let timer: WallClockTimer
    var onEvent: (DaemonEvent) -> Void = { _ in }

    init() throws(SystemError) {
        timer = try WallClockTimer()
    }

    var fileDescriptor: Int32 { timer.fileDescriptor }

    /// Fires at `instant` (never with nil).
    func arm(at instant: Date?) throws(SystemError) { try timer.arm(at: instant) }

    func wake(_ readiness: Poll.Readiness, now: Double) {
        switch timer.acknowledge() {
        case .fired: onEvent(.timerFired)
        case .clockChanged: onEvent(.clockSet)
        case .nothing: break
        }
    }
}
