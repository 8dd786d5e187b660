internal import CLinux
import Glibc

/// Signals delivered through a file descriptor instead of handlers. The signals are blocked
/// for the process first; threads started later inherit the mask.
final class SignalDescriptor {
    let fileDescriptor: Int32

    init(_ signals: [Int32]) throws(SystemError) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        guard pthread_sigmask(SIG_BLOCK, &set, nil) == 0 else { throw SystemError(operation: "pthread_sigmask", errno: errno) }
        fileDescriptor = signalfd(-1, &set, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard fileDescriptor >= 0 else { throw SystemError(operation: "signalfd", errno: errno) }
    }

    deinit { close(fileDescriptor) }

    /// The signals received since the last call, in order.
    func take() -> [Int32] {
        var received: [Int32] = []
        var info = signalfd_siginfo()
        while read(fileDescriptor, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            received.append(Int32(info.ssi_signo))
        }
        return received
    }
}
