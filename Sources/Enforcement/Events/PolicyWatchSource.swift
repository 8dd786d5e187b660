/// Changes under the policy directory as one reload event: editors write a file in several
/// steps, so changes closer together than `settle` seconds are one reload.
final class PolicyWatchSource: EventSource {
    private let watch: DirectoryWatch
    private let settle: Double
    private let reason: String
    private(set) var deadline: Double?
    var onEvent: (DaemonEvent) -> Void = { _ in }

    init(directory: String, settle: Double = 0.3) throws(SystemError) {
        watch = try DirectoryWatch()
        self.settle = settle
        reason = "files changed under \(directory)"
    }

    var fileDescriptor: Int32 { watch.fileDescriptor }

    /// Watches exactly `directories`.
    func watch(_ directories: [String]) { watch.watch(directories) }

    func wake(_ readiness: Poll.Readiness, now: Double) {
        if !readiness.isEmpty {
            if watch.drain() { deadline = now + settle }
            return
        }
        if let due = deadline, now >= due {
            deadline = nil
            onEvent(.reload(reason: reason))
        }
    }
}
