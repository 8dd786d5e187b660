/// What changes between two rulesets: whole sets and chains, and set elements one by one,
/// so that an update can be sent as a delta.
public struct RulesetDiff: Sendable {
    public var addedSets: [NamedSet] = []
    public var removedSets: [String] = []
    /// Sets whose type or flags changed: they must be recreated.
    public var redefinedSets: [NamedSet] = []
    public var addedElements: [String: [SetElement]] = [:]
    public var removedElements: [String: [SetElement]] = [:]
    public var addedChains: [Chain] = []
    public var removedChains: [String] = []
    public var changedChains: [Chain] = []
    public var addedCounters: [String] = []
    public var removedCounters: [String] = []

    public init(from old: Ruleset?, to new: Ruleset) {
        guard let old else {
            addedSets = new.table.sets
            addedChains = new.table.chains
            addedCounters = new.table.counters
            return
        }
        let oldSets = Dictionary(old.table.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newNames = Set(new.table.sets.map(\.name))
        for set in new.table.sets {
            guard let before = oldSets[set.name] else { addedSets.append(set); continue }
            if before.key != set.key || before.data != set.data || before.flags != set.flags {
                redefinedSets.append(set)
                continue
            }
            let was = Set(before.elements), now = Set(set.elements)
            let added = set.elements.filter { !was.contains($0) }
            let removed = before.elements.filter { !now.contains($0) }
            if !added.isEmpty { addedElements[set.name] = added }
            if !removed.isEmpty { removedElements[set.name] = removed }
        }
        removedSets = old.table.sets.map(\.name).filter { !newNames.contains($0) }
        let oldChains = Dictionary(old.table.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newChains = Set(new.table.chains.map(\.name))
        for chain in new.table.chains {
            guard let before = oldChains[chain.name] else { addedChains.append(chain); continue }
            if before != chain { changedChains.append(chain) }
        }
        removedChains = old.table.chains.map(\.name).filter { !newChains.contains($0) }
        addedCounters = new.table.counters.filter { !old.table.counters.contains($0) }
        removedCounters = old.table.counters.filter { !new.table.counters.contains($0) }
    }

    public var isEmpty: Bool {
        addedSets.isEmpty && removedSets.isEmpty && redefinedSets.isEmpty && addedElements.isEmpty
            && removedElements.isEmpty && addedChains.isEmpty && removedChains.isEmpty && changedChains.isEmpty
            && addedCounters.isEmpty && removedCounters.isEmpty
    }

    /// One line per change, for the plan.
    public var lines: [String] {
        var out: [String] = []
        for set in addedSets { out.append("+ \(set.isMap ? "map" : "set") \(set.name) (\(set.elements.count) elements)") }
        for name in removedSets { out.append("- set \(name)") }
        for set in redefinedSets { out.append("~ \(set.isMap ? "map" : "set") \(set.name) redefined (\(set.elements.count) elements)") }
        for name in Set(addedElements.keys).union(removedElements.keys).sorted() {
            let added = addedElements[name] ?? [], removed = removedElements[name] ?? []
            var parts: [String] = []
            if !added.isEmpty { parts.append("+\(added.count)") }
            if !removed.isEmpty { parts.append("-\(removed.count)") }
            let sample = (added.prefix(3).map { "+ " + NFTText.elementText($0) } + removed.prefix(3).map { "- " + NFTText.elementText($0) })
            out.append("~ \(name): \(parts.joined(separator: " ")) elements" + (sample.isEmpty ? "" : " [\(sample.joined(separator: "; "))\(added.count + removed.count > sample.count ? "; …" : "")]"))
        }
        for chain in addedChains { out.append("+ chain \(chain.name) (\(chain.rules.count) rules)") }
        for name in removedChains { out.append("- chain \(name)") }
        for chain in changedChains { out.append("~ chain \(chain.name) (\(chain.rules.count) rules)") }
        for name in addedCounters { out.append("+ counter \(name)") }
        for name in removedCounters { out.append("- counter \(name)") }
        return out
    }
}

extension NFTText {
    public static func elementText(_ element: SetElement) -> String {
        var out = ""
        render(element, into: &out)
        return out
    }
}
