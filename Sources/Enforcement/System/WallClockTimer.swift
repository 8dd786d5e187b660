internal import CLinux
import Foundation
import Glibc

/// A wall-clock (CLOCK_REALTIME) timer armed at an absolute instant. It fires at the
/// instant also after a suspend (the wall clock kept going), and reports a clock that was
/// set (NTP step, `date -s`) at once, so the state can be recomputed.
final class WallClockTimer {
    let fileDescriptor: Int32

    enum Event { case fired, clockChanged, nothing }

    init() throws(SystemError) {
        fileDescriptor = timerfd_create(CLOCK_REALTIME, Int32(TFD_CLOEXEC | TFD_NONBLOCK))
        guard fileDescriptor >= 0 else { throw SystemError(operation: "timerfd_create", errno: errno) }
    }

    deinit { close(fileDescriptor) }

    /// Arms the timer at `instant` (disarms with nil). A past instant fires at once.
    func arm(at instant: Date?) throws(SystemError) {
        var spec = itimerspec()
        var flags = Int32(TFD_TIMER_ABSTIME) | Int32(TFD_TIMER_CANCEL_ON_SET)
        if let instant {
            let seconds = max(instant.timeIntervalSince1970, 0.000_001)
            spec.it_value.tv_sec = Int(seconds.rounded(.down))
            spec.it_value.tv_nsec = Int((seconds - seconds.rounded(.down)) * 1e9)
            if spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0 { spec.it_value.tv_nsec = 1 }
        } else {
            flags = 0
        }
        guard timerfd_settime(fileDescriptor, flags, &spec, nil) == 0 else { throw SystemError(operation: "timerfd_settime", errno: errno) }
    }

    /// What happened since the last call; re-arm after `.fired` and `.clockChanged`.
    func acknowledge() -> Event {
        var expirations: UInt64 = 0
        let count = read(fileDescriptor, &expirations, MemoryLayout<UInt64>.size)
        if count == MemoryLayout<UInt64>.size { return .fired }
        return count < 0 && errno == ECANCELED ? .clockChanged : .nothing
    }
}
