import Glibc

/// SIGHUP, SIGUSR1, SIGTERM and SIGINT as daemon events. Creating it blocks the signals for the
/// process, so it must come before any thread is started (threads inherit the mask).
final class SignalSource: EventSource {
    private let signals: SignalDescriptor
    var onEvent: (DaemonEvent) -> Void = { _ in }

    init() throws(SystemError) {
        signals = try SignalDescriptor([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
    }

    var fileDescriptor: Int32 { signals.fileDescriptor }

    func wake(_ readiness: Poll.Readiness, now: Double) {
        for signal in signals.take() {
            switch signal {
            case SIGHUP: onEvent(.reload(reason: "SIGHUP"))
            case SIGUSR1: onEvent(.stateChanged)
            case SIGTERM: onEvent(.stop(reason: "SIGTERM"))
            default: onEvent(.stop(reason: "SIGINT"))
            }
        }
    }
}
