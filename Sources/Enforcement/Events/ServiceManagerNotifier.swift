import Compiler
import Glibc

/// What the daemon tells its service manager (see `ServiceManagerSocket`): ready once the
/// first generation is in the kernel, reloading and ready again around each reload, a
/// status line saying which generation is live or why a reload was refused, stopping at the
/// end. As an event source it sends `WATCHDOG=1` at half the manager's watchdog interval:
/// from the loop itself, so a loop that hangs stops the pings and the manager restarts it.
final class ServiceManagerNotifier: EventSource {
    private let socket: ServiceManagerSocket
    private var lastPing = monotonicSeconds()
    /// Whether a send failed already: said once in the log, not at every ping.
    private var failed = false

    init?(environment: [String: String]) {
        guard let socket = ServiceManagerSocket(environment: environment) else { return nil }
        self.socket = socket
    }

    var fileDescriptor: Int32 { -1 }
    var deadline: Double? { socket.watchdogInterval.map { lastPing + $0 / 2 } }

    func wake(_ readiness: Poll.Readiness, now: Double) {
        lastPing = now
        send(["WATCHDOG=1"])
    }

    /// Start-up is done: the first generation is live.
    func ready(status: String) { send(["READY=1", "STATUS=" + status, "MAINPID=\(getpid())"]) }

    /// A reload begins; the manager shows the unit reloading until `ready` follows.
    func reloading() {
        // MONOTONIC_USEC tells the manager which reload this is, as it asks.
        send(["RELOADING=1", "MONOTONIC_USEC=\(UInt64(monotonicSeconds() * 1_000_000))"])
    }

    func status(_ text: String) { send(["STATUS=" + text]) }

    func stopping(status: String) { send(["STOPPING=1", "STATUS=" + status]) }

    private func send(_ lines: [String]) {
        guard let failure = socket.send(lines) else { return }
        if !failed { Log.warning("run: \(failure)") }
        failed = true
    }
}
