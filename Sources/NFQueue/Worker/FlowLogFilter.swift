import Compiler

/// Which judged flows the worker logs (`[web] log_flows`), and how often the same one.
///
/// A browser opens many connections to one site, and a client retrying a blocked one opens
/// them by the hundred: one line each would bury everything else in the log. So a flow of
/// the same client, protocol, host, outcome and rule as one logged less than `window` seconds ago is
/// only counted; once the window has passed, the next such line (or a summary line, if none
/// comes) says how many were left out (`repeated=N`).
public struct FlowLogFilter: Sendable {
    public var mode: Config.FlowLogging
    public var window: Double

    /// What identifies "the same flow again" for the log.
    struct Key: Hashable {
        var client: PacketAddress
        var kind: String?
        var host: String?
        var outcome: FlowOutcome
        var rule: String?
    }

    struct Seen {
        var loggedAt: Double
        var suppressed: Int
        /// The last line left out, to summarise it if no other line of its key comes.
        var last: Judgement
    }

    private var seen: [Key: Seen] = [:]
    /// The key `admit` looked up last and its entry's index; nil after any key is added or removed.
    private var last: (key: Key, index: Dictionary<Key, Seen>.Index)?
    /// The most keys kept: past it, lines of new keys are written without being counted until
    /// `expired` makes room, so a scan over many clients cannot grow the table without bound.
    public var capacity = 4096

    public init(mode: Config.FlowLogging = .all, window: Double = 10) {
        self.mode = mode
        self.window = window
    }

    /// Whether the judgement's line is written now, and how many like it were left out since
    /// the last one written.
    public mutating func admit(_ judgement: Judgement, now: Double) -> (log: Bool, repeated: Int) {
        switch mode {
        case .none: return (false, 0)
        case .deny where judgement.outcome == .permit: return (false, 0)
        default: break
        }
        guard window > 0 else { return (true, 0) }
        // The key (three strings) is hashed at most once: the entry is then read and changed
        // through its index, which stays valid while no key is added or removed. A client's
        // connections to one site come in runs, so the index of the key seen last is kept,
        // and comparing a key costs less than hashing it.
        let key = Key(client: judgement.flow.client, kind: judgement.kind, host: judgement.host, outcome: judgement.outcome, rule: judgement.decision?.rule)
        let index: Dictionary<Key, Seen>.Index
        if let last, last.key == key {
            index = last.index
        } else if let found = seen.index(forKey: key) {
            index = found
            last = (key, found)
        } else {
            if seen.count < capacity {
                seen[key] = Seen(loggedAt: now, suppressed: 0, last: judgement)
                last = nil  // an insertion may move every entry
            }
            return (true, 0)
        }
        return Self.note(judgement, now: now, window: window, in: &seen.values[index])
    }

    /// The entry changed in place: reading a field through the subscript would copy the whole
    /// entry, its judgement's strings included.
    private static func note(_ judgement: Judgement, now: Double, window: Double, in entry: inout Seen) -> (log: Bool, repeated: Int) {
        if now - entry.loggedAt < window {
            entry.suppressed += 1
            entry.last = judgement
            return (false, 0)
        }
        let repeated = entry.suppressed
        entry = Seen(loggedAt: now, suppressed: 0, last: judgement)
        return (true, repeated)
    }

    /// The lines left out whose window has passed with no line of theirs since: each once,
    /// with its count. Called about once a second.
    public mutating func expired(now: Double) -> [(judgement: Judgement, repeated: Int)] {
        var due: [(Judgement, Int)] = []
        last = nil
        for (key, entry) in seen where now - entry.loggedAt >= window {
            if entry.suppressed > 0 { due.append((entry.last, entry.suppressed)) }
            seen[key] = nil
        }
        return due
    }

    /// A new `[web] log_flows` or `log_repeat_window` (a reload): what was counted under the
    /// old ones is dropped.
    public mutating func reset(mode: Config.FlowLogging, window: Double) {
        self.mode = mode
        self.window = window
        seen = [:]
        last = nil
    }
}
