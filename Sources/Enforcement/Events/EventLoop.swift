import Compiler
import Foundation

/// Something the daemon's event loop waits on: a descriptor (a signal, a timer, a socket,
/// an inotify watch) and/or a deadline. Each source turns what it reads into typed events
/// for its handler; the loop never knows what a descriptor is.
protocol EventSource: AnyObject {
    /// The descriptor to wait on; -1 for a source of deadlines only.
    var fileDescriptor: Int32 { get }
    /// Whether to wake it when its descriptor can be written (output waiting).
    var wantsWritable: Bool { get }
    /// When (monotonic seconds) to wake it even if its descriptor stays quiet.
    var deadline: Double? { get }
    /// Its descriptor is ready, or its deadline passed (`readiness` empty).
    func wake(_ readiness: Poll.Readiness, now: Double)
}

extension EventSource {
    var wantsWritable: Bool { false }
    var deadline: Double? { nil }
}

/// One thread, one poll over every registered source. A turn waits for the first ready
/// descriptor or the earliest deadline, then wakes each source that is due, in the order
/// they were added. Every handler runs to completion before the next, so the daemon's
/// state needs no locks; each handler must return quickly (a slow client is a source
/// with a deadline, never a blocking read).
final class EventLoop {
    private var sources: [any EventSource] = []
    /// The longest a turn waits with no deadline due (-1: until a descriptor is ready).
    var idleWaitMilliseconds: Int32 = -1

    func add(_ source: any EventSource) {
        guard !sources.contains(where: { $0 === source }) else { return }
        sources.append(source)
    }

    /// Takes `source` out; a source removed during a turn is not woken later in it.
    func remove(_ source: any EventSource) {
        sources.removeAll { $0 === source }
    }

    var count: Int { sources.count }

    /// Waits once and wakes what is due.
    func turn() throws(SystemError) {
        let now = monotonicSeconds()
        let earliest = sources.compactMap(\.deadline).min()
        var timeout = idleWaitMilliseconds
        if let earliest {
            let due = Int32(clamping: Int(max(0, (earliest - now) * 1000).rounded(.up)))
            timeout = timeout < 0 ? due : min(timeout, due)
        }
        let waiting = sources.filter { $0.fileDescriptor >= 0 }
        let readiness = try Poll.wait(waiting.map { Poll.Interest(fileDescriptor: $0.fileDescriptor, writable: $0.wantsWritable) },
                                      timeoutMilliseconds: timeout)
        let ready = Dictionary(uniqueKeysWithValues: zip(waiting.map { ObjectIdentifier($0) }, readiness))
        let after = monotonicSeconds()
        for source in sources {
            // Removed by a handler earlier in this turn: leave it.
            guard sources.contains(where: { $0 === source }) else { continue }
            let state = ready[ObjectIdentifier(source)] ?? []
            if !state.isEmpty {
                source.wake(state, now: after)
            } else if let deadline = source.deadline, deadline <= after {
                source.wake([], now: after)
            }
        }
    }
}
