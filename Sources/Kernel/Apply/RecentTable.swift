import Compiler

/// Where a delta of a large table puts the sender addresses it adds.
///
/// Adding one set element that jumps to a chain makes the kernel re-validate every jump
/// element of the table, whoever sends the element, so its cost grows with the table
/// (`bench/apply-bench.sh` measures it with `nft` itself). Validation is per table, so the
/// added senders go to a small second table, `<table>_recent`, with copies of the class
/// chains they jump to. Its input and forward chains run just before the main table's and
/// only record the granting policy in the conntrack mark, exactly as the main table's class
/// chains would; the main table then lets the flow through as granted. The main table
/// meanwhile only loses elements, which costs the kernel nothing to validate.
///
/// The next whole-table apply (`apply --replace`, or a delta that would put more than
/// `foldLimit` senders there) folds them back and removes the recent table.
public enum RecentTable {
    public static let foldLimit = 4096
    /// The most senders a class may have to move to the recent table (`movedClasses`).
    public static let classMoveLimit = 512
    static let comment = "managed by enforcer: senders added since the last full load (`enforcer apply --replace` folds them in)"

    public static func name(of table: String) -> String { table + "_recent" }

    /// How many single sender addresses `snapshot` holds.
    static func hostsCount(_ snapshot: Snapshot) -> Int {
        snapshot.table.sets(withRole: .senderHostsMap).reduce(0) { $0 + (snapshot.elements[$1.name]?.count ?? 0) }
    }

    /// Senders of the main table to move into the recent table with their class, for a
    /// delta from `previous` to `next` in which `recent` are the senders the recent table
    /// holds already: every sender of each class whose chain is rewritten or whose maps gain
    /// a jump (a policy's new port, a time window opening). Such a change would add a jump
    /// element to the main table, and the kernel would then validate all of its million
    /// sender elements; moved, the class's new chain and maps go to the small recent table
    /// and the main table only loses elements. A class is moved only whole, only when none
    /// of its senders is a range (the recent table holds single addresses), and only while
    /// the recent table stays within `foldLimit`; otherwise the main table is changed.
    /// A class of more than `classMoveLimit` senders stays too: every later delta writes the
    /// recent table anew, so a large class moved there makes each of them dearer, and the
    /// table reaches `foldLimit`, whose fold replaces the main table whole, after a few such
    /// moves (bench/README.md, "The kernel's structure for a policy's change").
    /// By hosts map, in class order then map order.
    static func movedClasses(from previous: Table, to next: Table, recent: [String: [SetElement]]) -> [String: [SetElement]] {
        // Chains changed or whose maps gain a jump first: most deltas have none, and then the
        // sender maps (a million elements) are not looked at.
        let previousChains = Dictionary(previous.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let previousSets = Dictionary(previous.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let nextSets = Dictionary(next.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func gainsJump(_ name: String) -> Bool {
            guard let now = nextSets[name], !now.role.isSenderMap, let before = previousSets[name], before.elements != now.elements else { return false }
            let had = Set(before.elements)
            return now.elements.contains { $0.verdict?.chain != nil && !had.contains($0) }
        }
        var touched = Set(next.chains.filter { chain in
            guard chain.base == nil, let before = previousChains[chain.name] else { return false }
            return before != chain || referencedSets(chain).contains(where: gainsJump)
        }.map(\.name))
        guard !touched.isEmpty else { return [:] }
        // Of those, the classes: chains a single sender jumps to, and no range.
        let hostsMaps = next.sets(withRole: .senderHostsMap)
        var classes = Set<String>()
        for map in hostsMaps { for verdict in map.elements.distinctVerdicts { if let chain = verdict?.chain { classes.insert(chain) } } }
        for map in next.sets(withRole: .senderRangesMap) {
            for verdict in map.elements.distinctVerdicts { if let chain = verdict?.chain { classes.remove(chain) } }
        }
        touched.formIntersection(classes)
        guard !touched.isEmpty else { return [:] }

        let already = recent.mapValues { Set($0) }
        var budget = foldLimit - recent.values.reduce(0) { $0 + $1.count }
        var moved: [String: [SetElement]] = [:]
        for chain in touched.sorted() {
            let wanted: Set<Verdict?> = [.jump(chain), .goto(chain)]
            let senders = hostsMaps.map { map in (map.name, map.elements.elements(withVerdictIn: wanted).filter { already[map.name]?.contains($0) != true }) }
            let count = senders.reduce(0) { $0 + $1.1.count }
            guard count > 0, count <= min(budget, classMoveLimit) else { continue }
            budget -= count
            for (map, elements) in senders where !elements.isEmpty { moved[map, default: []] += elements }
        }
        return moved
    }

    /// Whether `movedClasses` can find a class to move in a delta that `changes` describe
    /// (leading to `table`): only a class chain rewritten, or a set other than the sender maps
    /// gaining an element that jumps, moves one. Asked first from the compile's changes, so
    /// that most deltas (a system's edit does neither) do not look through every set and chain.
    static func mayMoveClasses(_ changes: RulesetChanges, in table: Table) -> Bool {
        changes.rewrittenChains.contains { $0.base == nil } || changes.addedElements.contains { name, elements in
            table.set(named: name).map { !$0.role.isSenderMap } == true && elements.contains { $0.verdict?.chain != nil }
        }
    }

    /// What the main table holds when the kernel elements `recent` are in the recent table:
    /// `full` without them, and without the class chains no sender element jumps to any
    /// more (with the maps only those chains use).
    static func main(of full: consuming Snapshot, without recent: [String: [NFTElement]]) -> Snapshot {
        guard recent.values.contains(where: { !$0.isEmpty }) else { return full }
        // Trimmed in place: a caller that hands over its only copy pays for no second one.
        var snapshot = full
        var candidates = Set<String>()
        for (name, elements) in recent where !elements.isEmpty {
            snapshot.elements[name]?.remove(elements)
            candidates.formUnion(elements.compactMap { $0.verdict?.chain })
        }
        // A class chain stays while any sender element of the main table still jumps to it.
        for set in snapshot.table.sets where set.role.isSenderMap && !candidates.isEmpty {
            for verdict in (snapshot.elements[set.name] ?? []).distinctVerdicts {
                if let chain = verdict?.chain, candidates.contains(chain) { candidates.remove(chain) }
            }
        }
        guard !candidates.isEmpty else { return snapshot }
        let dropped = snapshot.table.chains.filter { candidates.contains($0.name) }
        snapshot.table.chains.removeAll { candidates.contains($0.name) }
        let stillUsed = Set(snapshot.table.chains.flatMap(referencedSets))
        let orphaned = Set(dropped.flatMap(referencedSets)).subtracting(stillUsed)
        snapshot.table.sets.removeAll { orphaned.contains($0.name) }
        for name in orphaned { snapshot.elements[name] = nil }
        return snapshot
    }

    /// What `main(of:without:)` leaves out of the main table, worked out on the model instead
    /// of on kernel elements: the class chains that only the senders in `recent` jump to,
    /// and the sets only those chains use. `recent` are elements of `model`'s hosts maps.
    /// One pass over each sender map's two-byte verdict numbers, no element built.
    static func leftOut(of model: Ruleset, recent: [String: [SetElement]]) -> (chains: Set<String>, sets: Set<String>) {
        var candidates = Set<String>()
        var inRecent: [String: [Verdict?: Int]] = [:]
        for (name, elements) in recent {
            for element in elements {
                guard let chain = element.verdict?.chain else { continue }
                candidates.insert(chain)
                inRecent[name, default: [:]][element.verdict, default: 0] += 1
            }
        }
        guard !candidates.isEmpty else { return ([], []) }
        let wanted = Set(candidates.flatMap { [Verdict?.some(.jump($0)), .some(.goto($0))] })
        for set in model.table.sets where set.role.isSenderMap {
            for (verdict, count) in set.elements.counts(of: wanted) where count > (inRecent[set.name]?[verdict] ?? 0) {
                if let chain = verdict?.chain { candidates.remove(chain) }
            }
        }
        let dropped = model.table.chains.filter { candidates.contains($0.name) }
        guard !dropped.isEmpty else { return ([], []) }
        let stillUsed = Set(model.table.chains.filter { !candidates.contains($0.name) }.flatMap(referencedSets))
        return (Set(dropped.map(\.name)), Set(dropped.flatMap(referencedSets)).subtracting(stillUsed))
    }

    static func referencedSets(_ chain: Chain) -> [String] {
        chain.rules.flatMap(\.expressions).compactMap { expression in
            switch expression {
            case .verdictMap(_, let map): map
            case .lookup(_, _, let set): set
            default: nil
            }
        }
    }

    /// The recent table for `model` when its hosts maps' elements `recent` live there: those
    /// elements, every chain and set they reach (copied from the model), and a base chain per
    /// hook that skips replies, related flows and flows of a policy in force, then classifies.
    static func table(for model: Ruleset, recent: [String: [SetElement]]) -> Ruleset? {
        guard recent.values.contains(where: { !$0.isEmpty }) else { return nil }
        let main = model.table
        // Positions, not copies: the main table has thousands of sets and chains, of which the
        // recent senders reach a few.
        let chainsByName = Dictionary(main.chains.indices.map { (main.chains[$0].name, $0) }, uniquingKeysWith: { a, _ in a })
        let setsByName = Dictionary(main.sets.indices.map { (main.sets[$0].name, $0) }, uniquingKeysWith: { a, _ in a })
        var keptChains = Set<String>(), keptSets = Set<String>()

        func visit(chain name: String) {
            guard keptChains.insert(name).inserted, let position = chainsByName[name] else { return }
            for expression in main.chains[position].rules.flatMap(\.expressions) {
                switch expression {
                case .verdictMap(_, let map): visit(set: map)
                case .lookup(_, _, let set): visit(set: set)
                case .verdict(.jump(let target)), .verdict(.goto(let target)): visit(chain: target)
                default: break
                }
            }
        }
        func visit(set name: String) {
            guard keptSets.insert(name).inserted, let position = setsByName[name] else { return }
            for verdict in main.sets[position].elements.distinctVerdicts { visit(verdict: verdict) }
        }
        func visit(verdict: Verdict?) {
            if let target = verdict?.chain { visit(chain: target) }
        }

        var baseChains: [Chain] = []
        let hostsMaps = Set(main.sets(withRole: .senderHostsMap).map(\.name))
        for hook in [Hook.input, .forward] {
            guard let mainBase = main.chains.first(where: { $0.base?.hook == hook }), let base = mainBase.base else { continue }
            // The hosts maps this hook classifies by that hold recent senders.
            let maps = mainBase.rules.compactMap { rule -> String? in
                guard rule.expressions.count == 1, case .verdictMap(_, let map) = rule.expressions[0], hostsMaps.contains(map),
                      !(recent[map] ?? []).isEmpty else { return nil }
                return map
            }
            guard !maps.isEmpty else { continue }
            var rules: [Rule] = [
                Rule([.compare(.conntrackDirection, .equal, .direction(.reply)), .verdict(.accept)]),
                Rule([.conntrackState([.related]), .verdict(.accept)]),
            ]
            // The main table's "policy still in force" checks, each once.
            var seen = Set<String>()
            for rule in mainBase.rules {
                guard rule.expressions.count == 2, case let .lookup(fields, mask, set) = rule.expressions[0], fields == [.conntrackMark],
                      case .verdict = rule.expressions[1], seen.insert(set).inserted else { continue }
                rules.append(Rule([.lookup(fields, mask: mask, set: set), .verdict(.accept)], comment: "granted by a policy in force"))
                visit(set: set)
            }
            for rule in mainBase.rules {
                guard rule.expressions.count == 1, case .verdictMap(_, let map) = rule.expressions[0], maps.contains(map) else { continue }
                rules.append(rule)
            }
            for map in maps { for element in recent[map] ?? [] { visit(verdict: element.verdict) } }
            baseChains.append(Chain(name: mainBase.name,
                                    base: BaseChain(hook: hook, priority: base.priority - 1, policy: .accept), rules: rules,
                                    comment: "senders added since the last full load: their grants, recorded just before table \(main.name) looks"))
        }
        guard !baseChains.isEmpty else { return nil }
        var sets: [NamedSet] = []
        for set in main.sets {
            if set.role == .senderHostsMap {
                guard let elements = recent[set.name], !elements.isEmpty else { continue }
                sets.append(NamedSet(name: set.name, key: set.key, data: set.data, flags: set.flags, elements: elements, comment: set.comment,
                                     role: set.role))
            } else if keptSets.contains(set.name) {
                sets.append(set)
            }
        }
        let chains = baseChains + main.chains.filter { $0.base == nil && keptChains.contains($0.name) }
        // The copied grant chains count into counters of this table's own (a rule names an
        // object of its table); `enforcer status` adds them to the main table's.
        let used = Set(chains.flatMap(\.rules).flatMap(\.expressions).compactMap { expression -> String? in
            if case .namedCounter(let name) = expression { name } else { nil }
        })
        return Ruleset(table: Table(family: main.family, name: name(of: main.name), sets: sets, chains: chains,
                                    counters: main.counters.filter(used.contains)))
    }
}
