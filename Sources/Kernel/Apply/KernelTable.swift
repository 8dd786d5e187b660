import Compiler
import Glibc
import Synchronization

/// enforcer's own table in the kernel. Every change is one transaction, and nothing outside
/// the table is ever named in one, so other tables (docker, iptables-nft, firewalld) are
/// untouched by construction.
public struct KernelTable {
    public let family: TableFamily
    public let name: String
    let connection: NFTablesConnection

    public init(family: TableFamily = .inet, name: String, connection: NFTablesConnection) {
        self.family = family
        self.name = name
        self.connection = connection
    }

    /// `probeQueueEncoding`, asked of the kernel once per process (its expressions do not
    /// change under a running process): an apply needs it before its transaction and again
    /// for the timed grants, and `apply` starts it while the policy is still being read.
    /// A second caller waits for a probe under way rather than sending its own.
    public static func queueEncoding(connection: NFTablesConnection) throws(KernelError) -> QueueEncoding {
        try probed.withLock { (known: inout QueueEncoding?) throws(KernelError) -> QueueEncoding in
            if let known { return known }
            let encoding = try probeQueueEncoding(connection: connection)
            known = encoding
            return encoding
        }
    }

    private static let probed = Mutex<QueueEncoding?>(nil)
    private static let probeEnd = "probe end (fails on purpose)"

    /// Which queue encoding this kernel accepts: a transaction that creates a throwaway
    /// table with a native `queue` rule and ends in a message bound to fail (deleting a table
    /// that does not exist), so it never commits: the kernel still checks every message and
    /// says whether the rule was accepted, and the ruleset's generation does not move (which
    /// would make the next apply doubt its record). If the kernel lacks nft_queue, the
    /// xtables NFQUEUE target is checked the same way.
    public static func probeQueueEncoding(connection: NFTablesConnection) throws(KernelError) -> QueueEncoding {
        let probe = "enforcer_probe_\(getpid())"
        func attempt(_ encoding: QueueEncoding) throws(KernelError) -> Bool {
            let family = TableFamily.inet.number
            let messages: [EncodedMessage] = [
                EncodedMessage(.newTable(NFTTableSpec(family: family, name: probe, userData: [])), origin: "probe table"),
                EncodedMessage(.newChain(NFTChainSpec(family: family, table: probe, name: "probe", hook: nil, userData: [])), origin: "probe chain"),
                EncodedMessage(.newRule(NFTRuleSpec(family: family, table: probe, chain: "probe",
                                                    expressions: [RulesetEncoder.queueExpression(number: 0, bypass: true, encoding: encoding)],
                                                    userData: [])), origin: "probe rule (\(encoding.rawValue))"),
                EncodedMessage(.deleteTable(family: family, name: probe + "_absent"), origin: Self.probeEnd),
            ]
            do {
                try connection.commit(messages)
            } catch .rejected(let rejection) where rejection.refusals.allSatisfy({ $0.origin == Self.probeEnd }) {
                return true
            } catch .rejected(let rejection) where rejection.refusals.allSatisfy({ $0.operation == .addRule || $0.origin == Self.probeEnd }) {
                return false
            }
            // Committed after all: someone made a table of that name; take it away again.
            _ = try? connection.commit([EncodedMessage(.deleteTable(family: family, name: probe), origin: "probe table"),
                                        EncodedMessage(.deleteTable(family: family, name: probe + "_absent"), origin: "probe table")])
            return true
        }
        if try attempt(.native) { return .native }
        if try attempt(.xtablesTarget) { return .xtablesTarget }
        throw .rejected(KernelRejection(refusals: [.init(origin: "queue probe", operation: .addRule, errno: ENOENT,
                                                         kernelMessage: "neither nft queue nor the xt NFQUEUE target is available")]))
    }

    /// The table's handle and comment, nil when there is no such table.
    public func state() throws(KernelError) -> TableState? {
        try connection.tableState(family: family.number, name: name)
    }

    /// Sends a delta computed against the live generation.
    @discardableResult
    public func update(_ delta: Delta) throws(KernelError) -> CommitReport {
        try connection.commit(delta.messages)
    }

    /// Replaces the whole table in one transaction: created if missing, else deleted and
    /// created anew, so the old ruleset stays live if anything is refused.
    @discardableResult
    public func replace(with ruleset: Ruleset, comment: String?, encoder: RulesetEncoder) throws(KernelError) -> CommitReport {
        try replace(with: Snapshot(ruleset), comment: comment, encoder: encoder)
    }

    /// `alsoRemoving`: other tables of enforcer's (same family) to remove in the same transaction.
    /// `whileInKernel`: as for `NFTablesConnection.commit`.
    /// `alsoAdding`: messages that go in after the table's own (its timed grants).
    @discardableResult
    public func replace(with snapshot: Snapshot, comment: String?, encoder: RulesetEncoder, alsoRemoving: [String] = [],
                        alsoAdding: [EncodedMessage] = [], whileInKernel: () -> Void = {}) throws(KernelError) -> CommitReport {
        precondition(snapshot.table.name == name && snapshot.table.family == family)
        // The new table's counters start where the ones it replaces (this table's and the
        // other tables' removed with it) had got to: a reload never resets what was counted.
        var counts: [String: CounterValue] = [:]
        if !snapshot.table.counters.isEmpty {
            for table in [name] + alsoRemoving {
                for (counter, value) in (try? connection.counters(family: family.number, table: table)) ?? [:] {
                    counts[counter] = (counts[counter] ?? CounterValue(packets: 0, bytes: 0)) + value
                }
            }
        }
        let created: [EncodedMessage]
        do { created = try encoder.create(snapshot, tableComment: comment, counts: counts) } catch { throw .encoding(error) }
        let others = alsoRemoving.flatMap { KernelTable(family: family, name: $0, connection: connection).removal() }
        return try connection.commit(others + removal() + created + alsoAdding, whileInKernel: whileInKernel)
    }

    /// Puts mark elements into a timeout set, each with its own kernel timeout (an existing
    /// element gets the new timeout), and deletes `removing` one by one in transactions of
    /// their own, so one that already ran out (ENOENT) cannot undo the rest.
    public func setTimedMarks(_ marks: [(mark: UInt32, milliseconds: UInt64)], removing: [UInt32], set: String, encoder: RulesetEncoder) throws(KernelError) {
        let spec = NamedSet(name: set, key: [.mark], flags: .timeout)
        let table = Table(family: family, name: name, sets: [spec], chains: [])
        for mark in removing {
            let element = NFTElement(key: RulesetEncoder.hostBytes(mark, width: 4), keyEnd: nil, flags: 0)
            do { try connection.commit(encoder.chunks([element], of: spec, in: table, delete: true)) } catch .rejected(let rejection)
                where rejection.refusals.allSatisfy({ $0.errno == ENOENT }) {
                // Already gone: it ran out, or was never there.
            }
        }
        let added = timedMarkMessages(marks, set: set, encoder: encoder)
        guard !added.isEmpty else { return }
        try connection.commit(added)
    }

    /// The messages that put `marks` into the timeout set `set`, each with its own timeout:
    /// for `setTimedMarks`, and for a transaction that creates the table, so that a flow
    /// granted for a while is never without its grant between the two.
    public func timedMarkMessages(_ marks: [(mark: UInt32, milliseconds: UInt64)], set: String, encoder: RulesetEncoder) -> [EncodedMessage] {
        guard !marks.isEmpty else { return [] }
        let spec = NamedSet(name: set, key: [.mark], flags: .timeout)
        let table = Table(family: family, name: name, sets: [spec], chains: [])
        let elements = marks.map { NFTElement(key: RulesetEncoder.hostBytes($0.mark, width: 4), keyEnd: nil, flags: 0, verdict: nil, timeoutMilliseconds: max(1, $0.milliseconds)) }
        return encoder.chunks(elements, of: spec, in: table, delete: false)
    }

    /// `timedMarkMessages` for the timed grants set of `model` (the table this one holds or
    /// will hold); none when it has no such set.
    public func timedMarkMessages(_ marks: [(mark: UInt32, milliseconds: UInt64)], in model: Table, encoder: RulesetEncoder) -> [EncodedMessage] {
        model.sets(withRole: .timedGrants).flatMap { timedMarkMessages(marks, set: $0.name, encoder: encoder) }
    }

    /// What the table's counter objects have counted, by name (empty without the table).
    public func counters() throws(KernelError) -> [String: CounterValue] {
        try connection.counters(family: family.number, table: name)
    }

    /// Removes the table and everything in it; a no-op when it does not exist.
    @discardableResult
    public func flush() throws(KernelError) -> CommitReport {
        try connection.commit(removal())
    }

    /// Create-if-missing then delete: both succeed whether or not the table exists.
    private func removal() -> [EncodedMessage] {
        [EncodedMessage(.newTable(NFTTableSpec(family: family.number, name: name, userData: [])), origin: "table \(name)"),
         EncodedMessage(.deleteTable(family: family.number, name: name), origin: "table \(name)")]
    }
}
