import Compiler

public struct DeltaSummary: Sendable, Equatable, CustomStringConvertible {
    public var elementsAdded = 0
    public var elementsRemoved = 0
    public var setsAdded = 0
    public var setsRemoved = 0
    public var chainsAdded = 0
    public var chainsRemoved = 0
    public var chainsRewritten = 0
    public var countersAdded = 0
    public var countersRemoved = 0

    public var isEmpty: Bool { self == DeltaSummary() }

    public var description: String {
        var parts: [String] = []
        func add(_ count: Int, _ what: String) { if count > 0 { parts.append("\(count) \(what)") } }
        add(elementsAdded, "elements added")
        add(elementsRemoved, "elements removed")
        add(setsAdded, "sets added")
        add(setsRemoved, "sets removed")
        add(chainsAdded, "chains added")
        add(chainsRemoved, "chains removed")
        add(chainsRewritten, "chains rewritten")
        add(countersAdded, "counters added")
        add(countersRemoved, "counters removed")
        return parts.isEmpty ? "no change" : parts.joined(separator: ", ")
    }
}

public struct Delta: Sendable {
    public var messages: [EncodedMessage]
    public var summary: DeltaSummary

    /// The messages that turn `old` (live) into `new`, or nil when only a whole-table
    /// replacement can do it (a base chain, a set's type or a chain's comment changed).
    public static func between(_ old: Snapshot, _ new: Ruleset, encoder: RulesetEncoder) throws(EncodeError) -> Delta? {
        try between(old, Snapshot(new), encoder: encoder)
    }

    public static func between(_ old: Snapshot, _ next: Snapshot, encoder: RulesetEncoder) throws(EncodeError) -> Delta? {
        let oldTable = old.table, newTable = next.table
        guard oldTable.family == newTable.family, oldTable.name == newTable.name else { return nil }
        let oldSets = Dictionary(oldTable.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let oldChains = Dictionary(oldTable.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newSetNames = Set(newTable.sets.map(\.name)), newChainNames = Set(newTable.chains.map(\.name))

        var summary = DeltaSummary()
        var addChains: [EncodedMessage] = [], addSets: [EncodedMessage] = [], flush: [EncodedMessage] = []
        var removeElements: [EncodedMessage] = [], addElements: [EncodedMessage] = [], addRules: [EncodedMessage] = []
        var removeSets: [EncodedMessage] = [], removeChains: [EncodedMessage] = []
        var ids = SetIDs()
        let family = newTable.family.number

        for chain in newTable.chains {
            guard let previous = oldChains[chain.name] else {
                addChains.append(encoder.newChain(chain, in: newTable))
                addRules += try encoder.rules(of: chain, in: newTable, ids: &ids)
                summary.chainsAdded += 1
                continue
            }
            guard previous.base == chain.base, previous.comment == chain.comment else { return nil }
            if previous.rules != chain.rules {
                flush.append(EncodedMessage(.flushChain(family: family, table: newTable.name, name: chain.name), origin: "chain \(chain.name)"))
                addRules += try encoder.rules(of: chain, in: newTable, ids: &ids)
                summary.chainsRewritten += 1
            }
        }
        for chain in oldTable.chains where !newChainNames.contains(chain.name) {
            if !chain.rules.isEmpty {
                flush.append(EncodedMessage(.flushChain(family: family, table: newTable.name, name: chain.name), origin: "chain \(chain.name)"))
            }
            removeChains.append(EncodedMessage(.deleteChain(family: family, table: newTable.name, name: chain.name), origin: "chain \(chain.name)"))
            summary.chainsRemoved += 1
        }
        for set in newTable.sets {
            let elements = next.elements[set.name] ?? []
            guard let previous = oldSets[set.name] else {
                addSets.append(encoder.newSet(set, in: newTable, ids: &ids))
                addElements += encoder.chunks(elements, of: set, in: newTable, delete: false)
                summary.setsAdded += 1
                summary.elementsAdded += elements.count
                continue
            }
            guard previous == set else { return nil }
            let before = old.elements[set.name] ?? []
            guard before != elements else { continue }
            let (removed, added) = Self.difference(before, elements)
            removeElements += encoder.chunks(removed.map(\.identity), of: set, in: newTable, delete: true)
            addElements += encoder.chunks(added, of: set, in: newTable, delete: false)
            summary.elementsRemoved += removed.count
            summary.elementsAdded += added.count
        }
        for set in oldTable.sets where !newSetNames.contains(set.name) {
            removeSets.append(EncodedMessage(.deleteSet(family: family, table: newTable.name, name: set.name), origin: "set \(set.name)"))
            summary.setsRemoved += 1
        }
        let (addCounters, removeCounters) = counterMessages(from: oldTable, to: newTable, encoder: encoder, summary: &summary)
        // Chains, sets and counters first (elements and rules refer to them), references
        // dropped before what they refer to is deleted; removals before additions so a
        // changed element can come back under the same key. A counter that stays is not
        // named at all: it keeps counting through the rewrite of the chains that use it.
        let messages = addCounters + addChains + addSets + flush + removeElements + addElements + addRules + removeSets + removeChains + removeCounters
        return Delta(messages: messages, summary: summary)
    }
}

extension Delta {
    /// Counter objects to create (new in `newTable`) and to delete (gone from it).
    static func counterMessages(from oldTable: Table, to newTable: Table, encoder: RulesetEncoder,
                                summary: inout DeltaSummary) -> (add: [EncodedMessage], remove: [EncodedMessage]) {
        let before = Set(oldTable.counters), after = Set(newTable.counters)
        let add = newTable.counters.filter { !before.contains($0) }.map { encoder.newCounter($0, in: newTable) }
        let remove = oldTable.counters.filter { !after.contains($0) }.map { encoder.deleteCounter($0, in: newTable) }
        summary.countersAdded += add.count
        summary.countersRemoved += remove.count
        return (add, remove)
    }

    /// Elements only in `before` and only in `after`. An element whose key stays but whose
    /// data changes is in both. Sets are compiled in key order, so this is one merge pass
    /// without hashing; unsorted input (never produced, but possible in an old record) is
    /// compared by hashing.
    static func difference(_ before: KernelElements, _ after: KernelElements) -> (removed: [NFTElement], added: [NFTElement]) {
        if let packed = before.packedDifference(to: after) { return packed }
        guard isSortedByKey(before), isSortedByKey(after) else {
            let kept = Set(before).intersection(after)
            return (before.filter { !kept.contains($0) }, after.filter { !kept.contains($0) })
        }
        var removed: [NFTElement] = [], added: [NFTElement] = []
        var i = 0, j = 0
        while i < before.count && j < after.count {
            if before.element(at: i, equals: after, at: j) {
                i += 1; j += 1
            } else if keyPrecedes(before, i, after, j) {
                removed.append(before[i]); i += 1
            } else if keyPrecedes(after, j, before, i) {
                added.append(after[j]); j += 1
            } else {
                removed.append(before[i]); added.append(after[j])
                i += 1; j += 1
            }
        }
        removed += before[i...]
        added += after[j...]
        return (removed, added)
    }

    /// Whether `a`'s element at `i` sorts before `b`'s at `j`: by key, key end, then flags.
    static func keyPrecedes(_ a: KernelElements, _ i: Int, _ b: KernelElements, _ j: Int) -> Bool {
        let aKey = a.key(at: i), bKey = b.key(at: j)
        if aKey != bKey { return aKey.lexicographicallyPrecedes(bKey) }
        let aEnd = a.keyEnd(at: i) ?? [], bEnd = b.keyEnd(at: j) ?? []
        if aEnd != bEnd { return aEnd.lexicographicallyPrecedes(bEnd) }
        return a.flags(at: i) < b.flags(at: j)
    }

    static func isSortedByKey(_ elements: KernelElements) -> Bool {
        elements.indices.dropLast().allSatisfy { keyPrecedes(elements, $0, elements, $0 + 1) }
    }
}

extension NFTElement {
    /// What the kernel needs to find an element to delete: its key(s) and flags.
    var identity: NFTElement { NFTElement(key: key, keyEnd: keyEnd, flags: flags) }
}
