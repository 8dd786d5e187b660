/// What the daemon reacts to, whichever source it came from.
public enum DaemonEvent: Equatable, Sendable {
    /// Load the policy again (SIGHUP, files changed): `reason` goes to the log.
    case reload(reason: String)
    /// The flip timer reached the next window, expiry or trust change.
    case timerFired
    /// The wall clock was set (NTP step, `date -s`): recompute now.
    case clockSet
    /// Stop (SIGTERM, SIGINT).
    case stop(reason: String)
}
