import Compiler
import Foundation

public enum ApplyError: Error, CustomStringConvertible, Sendable {
    case kernel(KernelError)
    case state(StateError)

    public var description: String {
        switch self {
        case .kernel(let error): error.description
        case .state(let error): error.description
        }
    }
}

public struct ApplyOutcome: Sendable {
    public enum Mode: String, Sendable { case unchanged, delta, replaced }
    public var mode: Mode
    public var generation: Int
    public var summary: String
    public var messages: Int
    public var bytes: Int
    public var queue: QueueEncoding
    /// Encoding, sending and the kernel's acknowledgements.
    public var transactionSeconds: Double = 0
    /// The kernel's part of `transactionSeconds` (from the send to the last acknowledgement).
    public var kernelSeconds: Double = 0
    /// Whether a delta was built from the incremental compile's changes (not by comparing rulesets).
    public var fromChanges = false
}

/// Puts a compiled ruleset into the kernel and records it as a generation: a delta
/// against the live generation when the kernel still holds the table enforcer left there,
/// otherwise one transaction that replaces the table.
public struct Applier {
    public let store: GenerationStore
    let connection: NFTablesConnection

    public init(stateDirectory: String) throws(ApplyError) {
        store = GenerationStore(directory: stateDirectory)
        do { connection = try NFTablesConnection() } catch { throw .kernel(error) }
    }

    init(stateDirectory: String, connection: NFTablesConnection) {
        store = GenerationStore(directory: stateDirectory)
        self.connection = connection
    }

    public func apply(_ ruleset: Ruleset, system: String, policyDirectory: String?, forceReplace: Bool = false,
                      timedGrants: [(mark: UInt32, until: Date)] = [], changes: (base: Int, changes: RulesetChanges)? = nil) throws(ApplyError) -> ApplyOutcome {
        try apply(ruleset, system: system, policyDirectory: policyDirectory, forceReplace: forceReplace, note: nil, timedGrants: timedGrants,
                  changes: changes)
    }

    /// Makes `next` live: nothing when it already is, else a delta, else a replacement.
    /// A delta of a table with at least `recentFrom` single sender addresses puts the senders
    /// it adds into the recent table (see `RecentTable`). `timedGrants` go into the
    /// transaction's timed_policies sets wherever it creates a table (which starts with
    /// none); `setTimedGrants` still has them to assert against a table kept.
    ///
    /// `changes`, from the incremental compile, lead from generation `base`'s ruleset to
    /// `ruleset`: while `base` is the live generation the delta is built from them (see
    /// `changePlan`) rather than by comparing the two rulesets.
    public func apply(_ ruleset: Ruleset, system: String, policyDirectory: String?, forceReplace: Bool = false, note: String?,
                      timedGrants: [(mark: UInt32, until: Date)] = [], changes: (base: Int, changes: RulesetChanges)? = nil) throws(ApplyError) -> ApplyOutcome {
        // The kernel elements of `ruleset`, encoded when a path needs them (a delta from the
        // compile's changes does not); optional so the delta can take the only copy (and trim
        // it in place); encoded again if the delta falls through to a replacement.
        var next: Snapshot?
        var ruleset = ruleset
        let table = KernelTable(family: ruleset.table.family, name: ruleset.table.name, connection: connection)
        let recentTable = KernelTable(family: ruleset.table.family, name: RecentTable.name(of: ruleset.table.name), connection: connection)
        let queue: QueueEncoding
        do { queue = try KernelTable.queueEncoding(connection: connection) } catch { throw .kernel(error) }
        let encoder = RulesetEncoder(queue: queue)
        let timedMarks = Self.timedMarks(timedGrants)
        let number = (store.numbers().last ?? 0) + 1
        let prefix = note.map { "\($0): " } ?? ""
        let comment = "managed by enforcer: see `enforcer status`"
        // An apply interrupted between its commit and its record leaves the kernel in doubt:
        // no delta against the record then, the table is replaced whole.
        let interrupted = store.intent() != nil
        // The ruleset's generation now: the table is trusted to be as the record says only if
        // nobody committed anything since enforcer last did (or since the daemon, watching,
        // saw that a commit left enforcer's tables alone). Mark and handle alone miss a rule
        // inserted or an element deleted by hand while no daemon watched.
        let kernelGeneration = try? connection.followGeneration()
        var replacedBecause: String?
        do { try store.beginIntent(number: number, system: system) } catch { throw .state(error) }
        Trace.phase("intent recorded")
        // Cleared once the record tells the truth again: recorded, or nothing committed.
        var inDoubt = false
        defer { if !inDoubt { store.endIntent() } }

        var staged: Concurrently<GenerationStore.Staged>?
        if !forceReplace, !interrupted, let (current, previous) = try liveGeneration(table),
           Self.untouched(recorded: store.kernelGeneration(of: current), now: kernelGeneration, generation: current, because: &replacedBecause) {
            Trace.phase("live generation read")
            // A set the kernel holds keeps its size while its elements fit (see
            // `keepingSetSizes`); so does a replacement below, which records the same.
            ruleset = ruleset.keepingSetSizes(of: previous)
            let previousRecent = store.recent(current)
            let recentIsLive: Bool
            do { recentIsLive = try recentTable.state() != nil } catch { throw .kernel(error) }
            // A recent table that should be there and is not, or the reverse, is drift: replace below.
            if previousRecent.isEmpty != recentIsLive {
                if previous == ruleset {
                    return ApplyOutcome(mode: .unchanged, generation: current, summary: "no change", messages: 0, bytes: 0, queue: queue)
                }
                // The record is staged on another core while the delta is worked out: a delta's
                // transaction is too short for staging during it to hide anything; a
                // replacement below takes the same staging.
                let early = stage(ruleset, number: number, policyDirectory: policyDirectory)
                staged = early
                var fromChanges = false
                var plan: DeltaPlan?
                // The recent table is written anew by every delta: its counters start from
                // what they had counted.
                let recentCounts = previousRecent.isEmpty ? [:] : (try? connection.counters(family: recentTable.family.number, table: recentTable.name)) ?? [:]
                if let changes, changes.base == current {
                    plan = try? changePlan(from: previous, recent: previousRecent, to: ruleset, changes: changes.changes, encoder: encoder,
                                           timedMarks: timedMarks, recentCounts: recentCounts)
                    fromChanges = plan != nil
                }
                if plan == nil {
                    plan = try? deltaPlan(from: previous, recent: previousRecent, to: ruleset, next: next.take() ?? Snapshot(ruleset), encoder: encoder, comment: comment,
                                          timedMarks: timedMarks, recentCounts: recentCounts)
                }
                if var plan {
                    plan.messages += GenerationMark.move(from: current, to: number, in: ruleset.table, encoder: encoder)
                    Trace.phase(fromChanges ? "delta from the compile's changes" : "delta computed")
                    do {
                        let report = try connection.commit(plan.messages)
                        Trace.phase("delta committed")
                        let handle = Self.handleAfterCommit(table)
                        inDoubt = !self.record(early.value, system: system, policyDirectory: policyDirectory, handle: handle, summary: prefix + plan.summary,
                                               recent: plan.recent, kernelGeneration: connection.knownGeneration)
                        Trace.phase("generation recorded")
                        return ApplyOutcome(mode: .delta, generation: number, summary: prefix + plan.summary,
                                            messages: report.messages, bytes: report.bytes, queue: queue, transactionSeconds: report.seconds, kernelSeconds: report.kernelSeconds,
                                            fromChanges: fromChanges)
                    } catch .rejected(let rejection) {
                        // The table drifted from the record (edited by hand?), or another
                        // process committed since the generation was read: replace it whole below.
                        if rejection.isGenerationMoved { replacedBecause = "another process changed the ruleset during the apply" }
                    } catch {
                        store.discard(early.value)
                        throw .kernel(error)
                    }
                }
            }
        }
        do throws(KernelError) {
            // The kernel elements are freed on return, before the generation is recorded.
            // The record is staged on another core while the kernel takes the transaction
            // (unless the delta above staged it already).
            func replace(with whole: consuming Snapshot) throws(KernelError) -> (CommitReport, String) {
                let report = try table.replace(with: whole, comment: comment, encoder: encoder, alsoRemoving: [recentTable.name],
                                               alsoAdding: table.timedMarkMessages(timedMarks, in: ruleset.table, encoder: encoder)
                                                   + GenerationMark.create(number, in: ruleset.table, encoder: encoder)) {
                    if staged == nil { staged = stage(ruleset, number: number, policyDirectory: policyDirectory) }
                }
                let elements = whole.elements.values.reduce(0) { $0 + $1.count }
                return (report, "table replaced: \(whole.table.sets.count) sets, \(whole.table.chains.count) chains, \(elements) kernel elements")
            }
            do throws(KernelError) {
                // On the condition of the generation read just before, so that the one
                // recorded is this commit's; another process committing in between makes
                // the kernel refuse it, and it is sent again (with nothing else to go by, a
                // fourth time unconditionally).
                var attempt = 0
                var result: (CommitReport, String)?
                while result == nil {
                    attempt += 1
                    if attempt < 4 { _ = try? connection.followGeneration() }
                    do throws(KernelError) {
                        result = try replace(with: next.take() ?? Snapshot(ruleset))
                    } catch .rejected(let rejection) where rejection.isGenerationMoved && attempt < 4 {
                        continue
                    }
                }
                let (report, replaced) = result!
                Trace.phase("table replaced")
                let handle = Self.handleAfterCommit(table)
                let summary = prefix + (replacedBecause.map { "\($0); " } ?? "") + replaced
                let record = staged ?? stage(ruleset, number: number, policyDirectory: policyDirectory)
                inDoubt = !self.record(record.value, system: system, policyDirectory: policyDirectory, handle: handle, summary: summary,
                                       kernelGeneration: connection.knownGeneration)
                Trace.phase("generation recorded")
                return ApplyOutcome(mode: .replaced, generation: number, summary: summary, messages: report.messages, bytes: report.bytes, queue: queue, transactionSeconds: report.seconds, kernelSeconds: report.kernelSeconds)
            } catch {
                if let staged { store.discard(staged.value) }
                throw error
            }
        } catch { throw .kernel(error) }
    }

    /// Whether nothing was committed since the record's generation was live as enforcer left
    /// it; else `because` says why the table is replaced whole.
    static func untouched(recorded: UInt32?, now: UInt32?, generation: Int, because: inout String?) -> Bool {
        if let recorded, let now, recorded == now { return true }
        if recorded != nil, now != nil {
            because = "nftables changed since generation \(generation) was applied (another program committed, and no enforcer daemon watched what)"
        } else {
            because = "enforcer cannot tell whether nftables changed since generation \(generation) was applied"
        }
        return false
    }

    /// The table's handle, read once its transaction is in. A failed read must not turn an
    /// applied change into a reported failure ("nothing was changed") or a second, whole
    /// replacement: the generation is recorded without a handle, which matches no live
    /// table, so the next apply replaces the table whole.
    private static func handleAfterCommit(_ table: KernelTable) -> UInt64? {
        (try? table.state())?.handle
    }

    /// Single sender addresses from which deltas use the recent table.
    public var recentFrom = 65_536
    /// Who applies and why, for the generation's record.
    public var actor: String?
    public var reason: String?

    struct DeltaPlan {
        var messages: [EncodedMessage]
        var summary: String
        /// Sender elements (by hosts map) that the recent table holds afterwards.
        var recent: [String: [SetElement]]
    }

    /// One transaction from `previous` (live, with `recent` in the recent table) to `ruleset`:
    /// a delta of the main table, and the recent table written anew (or removed).
    func deltaPlan(from previous: Ruleset, recent: [String: [SetElement]], to ruleset: Ruleset, next: consuming Snapshot,
                   encoder: RulesetEncoder, comment: String, timedMarks: [(mark: UInt32, milliseconds: UInt64)] = [],
                   recentCounts: [String: CounterValue] = [:]) throws(EncodeError) -> DeltaPlan? {
        let full = Snapshot(previous)
        var recentKernel: [String: [NFTElement]] = [:]
        for (name, elements) in recent {
            guard let set = previous.table.set(named: name) else { continue }
            recentKernel[name] = Array(RulesetEncoder.kernelElements(elements, of: set))
        }
        let liveMain = RecentTable.main(of: full, without: recentKernel)
        // Senders the main table does not hold as they are now go to the recent table.
        var moving: [String: [NFTElement]] = [:]
        var usesRecent = RecentTable.hostsCount(next) >= recentFrom
        if usesRecent {
            for map in next.table.sets(withRole: .senderHostsMap) {
                let added = Delta.difference(liveMain.elements[map.name] ?? [], next.elements[map.name] ?? []).added
                if !added.isEmpty { moving[map.name] = added }
            }
            if moving.values.reduce(0, { $0 + $1.count }) > RecentTable.foldLimit { moving = [:]; usesRecent = false }
        }
        // The model's elements for the kernel elements moving (hash maps: one each, in order).
        var recentModel: [String: [SetElement]] = [:]
        for (name, elements) in moving {
            guard let set = ruleset.table.set(named: name) else { continue }
            let kernel = next.elements[name] ?? []
            if let positions = kernel.positions(of: elements) {
                recentModel[name] = positions.map { set.elements[$0] }
            } else {
                let wanted = Set(elements)
                recentModel[name] = zip(set.elements, kernel).filter { wanted.contains($0.1) }.map(\.0)
            }
        }
        // Classes that would gain a jump in the main table move to the recent table whole.
        if usesRecent {
            for (name, elements) in RecentTable.movedClasses(from: previous.table, to: ruleset.table, recent: recentModel) {
                guard let set = ruleset.table.set(named: name) else { continue }
                recentModel[name] = ((recentModel[name] ?? []) + elements).sorted { $0.keyPrecedes($1) }
                moving[name, default: []] += Array(RulesetEncoder.kernelElements(elements, of: set))
            }
        }
        let nextMain = RecentTable.main(of: next, without: moving)
        guard var delta = try Delta.between(liveMain, nextMain, encoder: encoder) else { return nil }
        let recentName = RecentTable.name(of: ruleset.table.name)
        let family = ruleset.table.family.number
        var summary = delta.summary.isEmpty ? "main table unchanged" : delta.summary.description
        if !recent.isEmpty {
            delta.messages += [EncodedMessage(.deleteTable(family: family, name: recentName), origin: "table \(recentName)")]
        }
        if let recentRuleset = RecentTable.table(for: ruleset, recent: recentModel) {
            delta.messages += try encoder.create(recentRuleset, tableComment: RecentTable.comment, counts: recentCounts)
            delta.messages += KernelTable(family: ruleset.table.family, name: recentName, connection: connection)
                .timedMarkMessages(timedMarks, in: recentRuleset.table, encoder: encoder)
            let count = recentModel.values.reduce(0) { $0 + $1.count }
            summary += "; \(count) sender\(count == 1 ? "" : "s") in table \(ruleset.table.family.rawValue) \(recentName)"
        } else if !recent.isEmpty {
            summary += "; table \(ruleset.table.family.rawValue) \(recentName) folded in and removed"
        }
        return DeltaPlan(messages: delta.messages, summary: summary, recent: recentModel)
    }

    /// The current generation and its snapshot, when the kernel still holds exactly the table
    /// that generation left (same namespace, same table handle).
    public func liveGeneration(_ table: KernelTable) throws(ApplyError) -> (Int, Ruleset)? {
        let live: TableState?
        do { live = try table.state() } catch { throw .kernel(error) }
        guard let current = store.currentNumber(), let live, let info = try? store.info(current),
              info.tableHandle == live.handle, info.networkNamespace == GenerationInfo.currentNetworkNamespace() else { return nil }
        // The kernel's word on which generation it holds, not the record's alone.
        let mark: Int?
        do { mark = try table.generationMark() } catch { throw .kernel(error) }
        guard mark == current, let ruleset = try? store.ruleset(current) else { return nil }
        return (current, ruleset)
    }

    /// Makes an earlier generation live again (recorded as a new generation).
    public func rollback(to number: Int) throws(ApplyError) -> ApplyOutcome {
        let info: GenerationInfo, ruleset: Ruleset
        do {
            info = try store.info(number)
            ruleset = try store.ruleset(number)
        } catch { throw .state(error) }
        return try apply(ruleset, system: info.system, policyDirectory: nil, note: "rollback to generation \(number)")
    }

    /// `enforcer policy enable --for`: the marks of `grants` in the timed grants set of the
    /// live table `ruleset` describes, each running out in the kernel at its `until`; `revoked`
    /// marks are taken out now. Nothing when the ruleset has no timed grants set.
    public func setTimedGrants(_ grants: [(mark: UInt32, until: Date)], revoked: [UInt32], ruleset: Ruleset) throws(ApplyError) {
        guard let set = ruleset.table.sets(withRole: .timedGrants).first else { return }
        try setTimedGrants(grants, revoked: revoked, table: ruleset.table.name, set: set.name, family: ruleset.table.family)
    }

    private func setTimedGrants(_ grants: [(mark: UInt32, until: Date)], revoked: [UInt32], table: String, set: String,
                                family: TableFamily) throws(ApplyError) {
        let queue: QueueEncoding
        do { queue = try KernelTable.queueEncoding(connection: connection) } catch { throw .kernel(error) }
        let marks = Self.timedMarks(grants)
        // The table stays as its generation left it apart from the grants: if it was trusted
        // before (nothing committed since), it is after these commits of enforcer's own.
        let before = try? connection.followGeneration()
        defer {
            if let before, let after = connection.knownGeneration, after != before { store.advanceKernelGeneration(from: before, to: after) }
        }
        do {
            try KernelTable(family: family, name: table, connection: connection)
                .setTimedMarks(marks, removing: revoked, set: set, encoder: RulesetEncoder(queue: queue))
            // The recent table checks the same set before it classifies.
            let recent = KernelTable(family: family, name: RecentTable.name(of: table), connection: connection)
            if try recent.state() != nil {
                try recent.setTimedMarks(marks, removing: revoked, set: set, encoder: RulesetEncoder(queue: queue))
            }
        } catch { throw .kernel(error) }
    }

    /// Grants still running, each with the milliseconds it has left.
    static func timedMarks(_ grants: [(mark: UInt32, until: Date)], now: Date = Date()) -> [(mark: UInt32, milliseconds: UInt64)] {
        grants.filter { $0.until > now }.map { (mark: $0.mark, milliseconds: UInt64(($0.until.timeIntervalSince(now) * 1000).rounded(.down))) }
    }

    /// Removes enforcer's table; the generations stay on record, none is current.
    public func flush(family: TableFamily, name: String) throws(ApplyError) {
        do {
            try KernelTable(family: family, name: name, connection: connection).flush()
            try KernelTable(family: family, name: RecentTable.name(of: name), connection: connection).flush()
        } catch { throw .kernel(error) }
        do { try store.setCurrent(nil) } catch { throw .state(error) }
        // No table, no doubt about which generation it holds.
        store.endIntent()
    }

    /// The generation's record, written on another thread while the kernel takes the
    /// transaction: the JSON, element columns and source snapshot of a large table then
    /// cost no time of their own.
    private func stage(_ ruleset: Ruleset, number: Int, policyDirectory: String?) -> Concurrently<GenerationStore.Staged> {
        let store = store
        return Concurrently { store.stage(ruleset, number: number, policySource: policyDirectory) }
    }

    /// Whether the generation is on record.
    private func record(_ staged: GenerationStore.Staged, system: String, policyDirectory: String?, handle: UInt64?, summary: String,
                        recent: [String: [SetElement]] = [:], kernelGeneration: UInt32?) -> Bool {
        let info = GenerationInfo(number: staged.number, appliedAt: Date(), system: system, policyDirectory: policyDirectory ?? "",
                                  tableHandle: handle, networkNamespace: GenerationInfo.currentNetworkNamespace(), summary: summary,
                                  actor: actor, reason: reason)
        do {
            try store.record(staged, info: info, recent: recent, kernelGeneration: kernelGeneration)
            return true
        } catch {
            // The kernel has the new ruleset; without a record (and with the intent left in
            // place) the next apply replaces the table whole.
            FileHandle.standardError.write(Data("enforcer: warning: \(error)\n".utf8))
            return false
        }
    }
}
