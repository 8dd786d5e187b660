/// What the daemon reacts to, whichever source it came from.
public enum DaemonEvent: Equatable, Sendable {
    /// Load the policy again (SIGHUP, files changed): `reason` goes to the log.
    case reload(reason: String)
    /// The flip timer reached the next window, expiry or trust change.
    case timerFired
    /// The wall clock was set (NTP step, `date -s`): recompute now.
    case clockSet
    /// The deadline of an `apply --confirm` came (or the clock jumped past it).
    case confirmDue
    /// Another enforcer command changed the state directory (SIGUSR1), e.g. it asked for a
    /// confirm that the daemon now keeps.
    case stateChanged
    /// Another process changed enforcer's tables in the kernel: what it changed, in words.
    case drift(changes: [String])
    /// Stop (SIGTERM, SIGINT).
    case stop(reason: String)
}
