/// What an edit changed between two rulesets of one host, in the terms the kernel takes:
/// whole sets and chains, and set elements one by one.
///
/// The incremental compile (`IncrementalHost`) says what it changed instead of leaving the
/// kernel side to find out by comparing a million elements: the sender maps' elements come
/// from the addresses it swept again, everything else (a few thousand elements at most)
/// from comparing the small sets and chains.
///
/// Element lists are in key order. An element whose key stays but whose verdict changes is
/// both removed and added, as in the kernel's own delta (deletions are sent first).
public struct RulesetChanges: Sendable {
    /// New sets, with all their elements.
    public var addedSets: [NamedSet] = []
    public var removedSets: [String] = []
    /// Sets whose definition changed (key, data, flags, size, timeout, comment or role):
    /// the kernel cannot change those in place, so they are created again with all their
    /// elements (the kernel's delta today gives up and replaces the whole table for these).
    public var redefinedSets: [NamedSet] = []
    /// Elements to delete from, and to add to, sets that stay; by set name.
    public var removedElements: [String: [SetElement]] = [:]
    public var addedElements: [String: [SetElement]] = [:]
    public var addedChains: [Chain] = []
    public var removedChains: [String] = []
    /// Chains whose rules changed: flushed and filled again.
    public var rewrittenChains: [Chain] = []
    /// Chains whose hook, priority, policy or comment changed: like redefined sets, beyond
    /// what a delta can do.
    public var redefinedChains: [Chain] = []
    /// Counter objects that come and go. A counter that stays is left alone, counts and all.
    public var addedCounters: [String] = []
    public var removedCounters: [String] = []
    /// Set when the edit was compiled in full (see `IncrementalHost.fallbacks`); the
    /// changes are then found by comparing the two rulesets whole.
    public var compiledInFull = false

    public init() {}

    public var isEmpty: Bool {
        addedSets.isEmpty && removedSets.isEmpty && redefinedSets.isEmpty && removedElements.isEmpty && addedElements.isEmpty
            && addedChains.isEmpty && removedChains.isEmpty && rewrittenChains.isEmpty && redefinedChains.isEmpty
            && addedCounters.isEmpty && removedCounters.isEmpty
    }

    /// Whether the kernel can take these as a delta of the live table (else it replaces the table).
    public var isDelta: Bool { redefinedSets.isEmpty && redefinedChains.isEmpty }

    public var elementsAdded: Int { addedElements.values.reduce(0) { $0 + $1.count } }
    public var elementsRemoved: Int { removedElements.values.reduce(0) { $0 + $1.count } }

    /// One line, for logs: "3 elements added, 1 removed, 1 chain rewritten".
    public var summary: String {
        var parts: [String] = []
        func add(_ count: Int, _ what: String) { if count > 0 { parts.append("\(count) \(what)") } }
        add(elementsAdded, "elements added")
        add(elementsRemoved, "elements removed")
        add(addedSets.count, "sets added")
        add(removedSets.count, "sets removed")
        add(redefinedSets.count, "sets redefined")
        add(addedChains.count, "chains added")
        add(removedChains.count, "chains removed")
        add(rewrittenChains.count, "chains rewritten")
        add(redefinedChains.count, "chains redefined")
        add(addedCounters.count, "counters added")
        add(removedCounters.count, "counters removed")
        return parts.isEmpty ? "no change" : parts.joined(separator: ", ")
    }

    /// The changes from `old` to `new` by comparing them; `known` gives, for sets whose
    /// element changes are known already (the sender maps), those changes, and their
    /// elements are then not compared.
    public init(from old: Ruleset, to new: Ruleset, known: [String: (removed: [SetElement], added: [SetElement])] = [:]) {
        let oldSets = old.table.sets, newSets = new.table.sets
        let (setPairs, goneSets) = Self.pairs(oldSets.count, newSets.count, oldName: { oldSets[$0].name }, newName: { newSets[$0].name })
        for (index, set) in newSets.enumerated() {
            guard let position = setPairs[index] else { addedSets.append(set); continue }
            if !oldSets[position].sameDefinition(as: set) {
                redefinedSets.append(set)
                continue
            }
            let (removed, added) = known[set.name] ?? Self.elementChanges(oldSets[position].elements, set.elements)
            if !removed.isEmpty { removedElements[set.name] = removed }
            if !added.isEmpty { addedElements[set.name] = added }
        }
        removedSets = goneSets.map { oldSets[$0].name }
        let oldChains = old.table.chains, newChains = new.table.chains
        let (chainPairs, goneChains) = Self.pairs(oldChains.count, newChains.count, oldName: { oldChains[$0].name }, newName: { newChains[$0].name })
        for (index, chain) in newChains.enumerated() {
            guard let position = chainPairs[index] else { addedChains.append(chain); continue }
            if oldChains[position].base != chain.base || oldChains[position].comment != chain.comment {
                redefinedChains.append(chain)
            } else if oldChains[position].rules != chain.rules {
                rewrittenChains.append(chain)
            }
        }
        removedChains = goneChains.map { oldChains[$0].name }
        if old.table.counters != new.table.counters {
            let oldCounters = Set(old.table.counters), newCounters = Set(new.table.counters)
            addedCounters = new.table.counters.filter { !oldCounters.contains($0) }
            removedCounters = old.table.counters.filter { !newCounters.contains($0) }
        }
    }

    /// For each of `newCount` named things, the position of the old one of its name (nil:
    /// new), and the positions of old ones whose name is gone. An edit mostly keeps every
    /// set and chain where it was: then the names are compared pair by pair, without
    /// hashing thousands of them.
    private static func pairs(_ oldCount: Int, _ newCount: Int, oldName: (Int) -> String, newName: (Int) -> String) -> (old: [Int?], gone: [Int]) {
        if oldCount == newCount, (0..<newCount).allSatisfy({ oldName($0) == newName($0) }) { return ((0..<newCount).map { Optional($0) }, []) }
        var positions: [String: Int] = [:]
        for index in 0..<oldCount where positions[oldName(index)] == nil { positions[oldName(index)] = index }
        let newNames = Set((0..<newCount).map(newName))
        return ((0..<newCount).map { positions[newName($0)] }, (0..<oldCount).filter { !newNames.contains(oldName($0)) })
    }

    /// Elements only in `before` and only in `after`, each list in the order of its side.
    /// Sorted single-address columns (the hosts maps) are merged in one pass.
    static func elementChanges(_ before: SetElements, _ after: SetElements) -> (removed: [SetElement], added: [SetElement]) {
        if before == after { return ([], []) }
        if let x = before.hostColumns, let y = after.hostColumns, x.family == y.family {
            var removed: [SetElement] = [], added: [SetElement] = []
            var i = 0, j = 0
            while i < x.count || j < y.count {
                if i < x.count, j < y.count, x.value(at: i) == y.value(at: j) {
                    if x.verdict(at: i) != y.verdict(at: j) { removed.append(x[i]); added.append(y[j]) }
                    i += 1; j += 1
                } else if j == y.count || (i < x.count && x.value(at: i) < y.value(at: j)) {
                    removed.append(x[i]); i += 1
                } else {
                    added.append(y[j]); j += 1
                }
            }
            return (removed, added)
        }
        // Counted, not as sets: a compile can list an element twice (two senders sharing an
        // address in `revoked_v4`), and one of the two may go.
        func without(_ elements: SetElements, _ other: SetElements) -> [SetElement] {
            var counts: [SetElement: Int] = [:]
            for element in other { counts[element, default: 0] += 1 }
            return elements.filter { element in
                guard let n = counts[element], n > 0 else { return true }
                counts[element] = n - 1
                return false
            }
        }
        return (without(before, after), without(after, before))
    }

    /// `old` with these changes made: what the kernel holds after it took them. Sets and
    /// chains that come are put at the end (the kernel keeps no order of its own among them);
    /// elements that come go where their key sorts.
    public func applied(to old: Ruleset) -> Ruleset {
        var table = old.table
        let removedSetNames = Set(removedSets).union(redefinedSets.map(\.name))
        table.sets.removeAll { removedSetNames.contains($0.name) }
        for index in table.sets.indices {
            let name = table.sets[index].name
            let removed = removedElements[name] ?? [], added = addedElements[name] ?? []
            guard !removed.isEmpty || !added.isEmpty else { continue }
            var counts: [SetElement: Int] = [:]
            for element in removed { counts[element, default: 0] += 1 }
            var kept: [SetElement] = []
            kept.reserveCapacity(table.sets[index].elements.count)
            for element in table.sets[index].elements {
                if let n = counts[element], n > 0 { counts[element] = n - 1 } else { kept.append(element) }
            }
            let coming = added.sorted { $0.keyPrecedes($1) }
            var merged: [SetElement] = []
            merged.reserveCapacity(kept.count + coming.count)
            var i = 0, j = 0
            while i < kept.count || j < coming.count {
                if j == coming.count || (i < kept.count && !coming[j].keyPrecedes(kept[i])) { merged.append(kept[i]); i += 1 } else { merged.append(coming[j]); j += 1 }
            }
            table.sets[index].elements = SetElements(merged)
        }
        table.sets += redefinedSets + addedSets
        let removedChainNames = Set(removedChains).union(redefinedChains.map(\.name))
        table.chains.removeAll { removedChainNames.contains($0.name) }
        let rewritten = Dictionary(rewrittenChains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for index in table.chains.indices {
            if let chain = rewritten[table.chains[index].name] { table.chains[index] = chain }
        }
        table.chains += redefinedChains + addedChains
        let removedCounterNames = Set(removedCounters)
        table.counters.removeAll { removedCounterNames.contains($0) }
        table.counters += addedCounters
        return Ruleset(table: table)
    }
}

extension NamedSet {
    /// Equal but for the elements.
    func sameDefinition(as other: NamedSet) -> Bool {
        name == other.name && key == other.key && data == other.data && flags == other.flags && comment == other.comment
            && size == other.size && timeout == other.timeout && role == other.role
    }
}

extension SetElement {
    /// Whether this element's key sorts before `other`'s: part by part, addresses by first
    /// then last address.
    public func keyPrecedes(_ other: SetElement) -> Bool {
        for (a, b) in zip(key, other.key) where a != b {
            switch (a, b) {
            case let (.addresses(x), .addresses(y)): return x.first != y.first ? x.first < y.first : x.last < y.last
            case let (.proto(x), .proto(y)): return x < y
            case let (.ports(x), .ports(y)): return x.first != y.first ? x.first < y.first : x.last < y.last
            case let (.mark(x), .mark(y)): return x < y
            default: return false
            }
        }
        return key.count < other.key.count
    }
}
