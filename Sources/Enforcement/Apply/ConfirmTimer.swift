import Foundation

/// The transient systemd timer that keeps an `apply --confirm` promise where systemd runs the
/// system: systemd, not a process of ours, waits for the deadline, and it starts
/// `enforcer confirm-watchdog` then, which restores unless the apply was confirmed.
enum ConfirmTimer {
    /// Whether systemd is the init system (what sd_booted asks: it made /run/systemd/system).
    static var systemdRuns: Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: "/run/systemd/system", isDirectory: &isDirectory) && isDirectory.boolValue
    }

    static func unitName(generation: Int) -> String { "enforcer-confirm-\(generation)" }

    /// The systemd-run command line, nil where systemd does not run the system.
    static func systemd(executable: String, state: String, generation: Int, seconds: Double,
                        systemdRuns: Bool = ConfirmTimer.systemdRuns) -> [String]? {
        guard systemdRuns else { return nil }
        // Whole milliseconds, rounded up: the timer never fires before the deadline.
        let milliseconds = Int((seconds * 1000).rounded(.up))
        return ["/usr/bin/systemd-run", "--quiet", "--collect", "--unit=\(unitName(generation: generation))-\(getpid())",
                "--on-active=\(milliseconds)ms", "--timer-property=AccuracySec=100ms",
                "--description=enforcer: restore unless generation \(generation) is confirmed",
                executable, "confirm-watchdog", "--state-dir", state, "--generation", String(generation)]
    }
}
