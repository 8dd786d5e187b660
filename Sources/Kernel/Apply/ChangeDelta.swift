import Compiler

/// A delta built from what the incremental compile says changed (`RulesetChanges`), instead
/// of by encoding the live generation and the next one whole and comparing them: at a
/// million sender addresses that comparison costs hundreds of milliseconds, while an edit
/// of one system changes a handful of elements.
///
/// It sends what `deltaPlan` sends for the same two rulesets, the recent table included
/// (see `RecentTable`): while the hosts maps are large, the senders they gain go to the
/// recent table, and the main table only loses elements.
extension Applier {
    /// The plan from `previous` (live, with `recent` in the recent table) to `ruleset`, which
    /// `changes` leads to; nil when only the comparing path can say it (a redefined set or
    /// chain, or the recent table to be folded back into the main one).
    func changePlan(from previous: Ruleset, recent: [String: [SetElement]], to ruleset: Ruleset, changes: RulesetChanges,
                    encoder: RulesetEncoder, timedMarks: [(mark: UInt32, milliseconds: UInt64)] = [],
                    recentCounts: [String: CounterValue] = [:]) throws(EncodeError) -> DeltaPlan? {
        let table = ruleset.table
        guard changes.isDelta, previous.table.family == table.family, previous.table.name == table.name else { return nil }
        let hostsMaps = table.sets(withRole: .senderHostsMap)
        let hostsCount = hostsMaps.reduce(0) { $0 + $1.elements.count }

        // Which element changes reach the main table, and what the recent table holds after.
        var removed = changes.removedElements, added = changes.addedElements
        var nextRecent: [String: [SetElement]] = [:]
        let addedSets = Set(changes.addedSets.map(\.name))
        if hostsCount >= recentFrom {
            for map in hostsMaps {
                // Removed senders that were recent leave the recent table; the others, the main one.
                var leaving: [SetElement: Int] = [:]
                for element in removed[map.name] ?? [] { leaving[element, default: 0] += 1 }
                var kept: [SetElement] = []
                for element in recent[map.name] ?? [] {
                    if let count = leaving[element], count > 0 { leaving[element] = count - 1 } else { kept.append(element) }
                }
                removed[map.name] = (removed[map.name] ?? []).filter { element in
                    guard let count = leaving[element], count > 0 else { return false }
                    leaving[element] = count - 1
                    return true
                }
                if removed[map.name]?.isEmpty == true { removed[map.name] = nil }
                // A map that comes with this change is created empty in the main table.
                let coming = addedSets.contains(map.name) ? Array(map.elements) : added[map.name] ?? []
                added[map.name] = nil
                let all = (kept + coming).sorted { $0.keyPrecedes($1) }
                if !all.isEmpty { nextRecent[map.name] = all }
            }
            if nextRecent.values.reduce(0, { $0 + $1.count }) > RecentTable.foldLimit { return nil }
            // Classes that would gain a jump in the main table move to the recent table whole.
            let moved = RecentTable.mayMoveClasses(changes, in: table) ? RecentTable.movedClasses(from: previous.table, to: table, recent: nextRecent) : [:]
            for (map, elements) in moved {
                nextRecent[map] = ((nextRecent[map] ?? []) + elements).sorted { $0.keyPrecedes($1) }
                removed[map, default: []] += elements
            }
        } else if recent.values.contains(where: { !$0.isEmpty }) {
            return nil
        }

        // The main table leaves out the class chains (and their sets) only recent senders use.
        let before = RecentTable.leftOut(of: previous, recent: recent)
        let after = RecentTable.leftOut(of: ruleset, recent: nextRecent)
        let liveChains = Set(previous.table.chains.map(\.name)).subtracting(before.chains)
        let liveSets = Set(previous.table.sets.map(\.name)).subtracting(before.sets)
        let rewritten = Set(changes.rewrittenChains.map(\.name))
        let family = table.family.number

        var summary = DeltaSummary()
        var addChains: [EncodedMessage] = [], addSets: [EncodedMessage] = [], flush: [EncodedMessage] = []
        var removeElements: [EncodedMessage] = [], addElements: [EncodedMessage] = [], addRules: [EncodedMessage] = []
        var removeSets: [EncodedMessage] = [], removeChains: [EncodedMessage] = []
        var ids = SetIDs()

        var mainChains = Set<String>()
        for chain in table.chains where !after.chains.contains(chain.name) {
            mainChains.insert(chain.name)
            if !liveChains.contains(chain.name) {
                addChains.append(encoder.newChain(chain, in: table))
                addRules += try encoder.rules(of: chain, in: table, ids: &ids)
                summary.chainsAdded += 1
            } else if rewritten.contains(chain.name) {
                flush.append(EncodedMessage(.flushChain(family: family, table: table.name, name: chain.name), origin: "chain \(chain.name)"))
                addRules += try encoder.rules(of: chain, in: table, ids: &ids)
                summary.chainsRewritten += 1
            }
        }
        for chain in previous.table.chains where liveChains.contains(chain.name) && !mainChains.contains(chain.name) {
            if !chain.rules.isEmpty {
                flush.append(EncodedMessage(.flushChain(family: family, table: table.name, name: chain.name), origin: "chain \(chain.name)"))
            }
            removeChains.append(EncodedMessage(.deleteChain(family: family, table: table.name, name: chain.name), origin: "chain \(chain.name)"))
            summary.chainsRemoved += 1
        }

        var mainSets = Set<String>()
        for set in table.sets where !after.sets.contains(set.name) {
            mainSets.insert(set.name)
            if !liveSets.contains(set.name) {
                // New to the main table: whole, but for the senders the recent table holds.
                var elements = set.elements
                if let moved = nextRecent[set.name] {
                    let gone = Set(moved)
                    elements = SetElements(elements.filter { !gone.contains($0) })
                }
                let kernel = RulesetEncoder.kernelElements(elements, of: set)
                addSets.append(encoder.newSet(set, in: table, ids: &ids))
                addElements += encoder.chunks(kernel, of: set, in: table, delete: false)
                summary.setsAdded += 1
                summary.elementsAdded += kernel.count
                continue
            }
            let gone = removed[set.name] ?? [], coming = added[set.name] ?? []
            guard !gone.isEmpty || !coming.isEmpty else { continue }
            let kernelGone: [NFTElement], kernelComing: [NFTElement]
            if set.flags.contains(.interval), let old = previous.table.set(named: set.name) {
                // An interval's kernel elements are its two ends, and neighbouring intervals
                // share a point: compared as the kernel holds them (these sets are small).
                (kernelGone, kernelComing) = Delta.difference(RulesetEncoder.kernelElements(old.elements, of: old),
                                                              RulesetEncoder.kernelElements(set.elements, of: set))
            } else {
                kernelGone = Array(RulesetEncoder.kernelElements(gone, of: set))
                kernelComing = Array(RulesetEncoder.kernelElements(coming, of: set))
            }
            removeElements += encoder.chunks(kernelGone.map(\.identity), of: set, in: table, delete: true)
            addElements += encoder.chunks(kernelComing, of: set, in: table, delete: false)
            summary.elementsRemoved += kernelGone.count
            summary.elementsAdded += kernelComing.count
        }
        for set in previous.table.sets where liveSets.contains(set.name) && !mainSets.contains(set.name) {
            removeSets.append(EncodedMessage(.deleteSet(family: family, table: table.name, name: set.name), origin: "set \(set.name)"))
            summary.setsRemoved += 1
        }
        let addCounters = changes.addedCounters.map { encoder.newCounter($0, in: table) }
        let removeCounters = changes.removedCounters.map { encoder.deleteCounter($0, in: table) }
        summary.countersAdded += addCounters.count
        summary.countersRemoved += removeCounters.count
        // In the order `Delta.between` explains.
        var messages = addCounters + addChains + addSets + flush + removeElements + addElements + addRules + removeSets + removeChains + removeCounters

        let recentName = RecentTable.name(of: table.name)
        var line = summary.isEmpty ? "main table unchanged" : summary.description
        if !recent.isEmpty {
            messages.append(EncodedMessage(.deleteTable(family: family, name: recentName), origin: "table \(recentName)"))
        }
        if let recentRuleset = RecentTable.table(for: ruleset, recent: nextRecent) {
            messages += try encoder.create(recentRuleset, tableComment: RecentTable.comment, counts: recentCounts)
            messages += KernelTable(family: table.family, name: recentName, connection: connection)
                .timedMarkMessages(timedMarks, in: recentRuleset.table, encoder: encoder)
            let count = nextRecent.values.reduce(0) { $0 + $1.count }
            line += "; \(count) sender\(count == 1 ? "" : "s") in table \(table.family.rawValue) \(recentName)"
        } else if !recent.isEmpty {
            line += "; table \(table.family.rawValue) \(recentName) folded in and removed"
        }
        return DeltaPlan(messages: messages, summary: line, recent: nextRecent)
    }
}
