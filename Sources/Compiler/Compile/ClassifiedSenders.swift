/// One hook's senders sorted into classes: the elements of its four sender maps (single
/// addresses and ranges, per family) and the chain name of each class in use.
///
/// A full compile builds it from the sweep of every sender address (`init(prefix:sweep:)`);
/// the incremental compile (`SenderClasses`) keeps its own and updates it in place. Either
/// way `RulesetBuilder` turns it into the same sets and class chains.
struct ClassifiedSenders {
    /// `in` for the input hook, `fwd` for forward: the first part of every name.
    var prefix: String
    var hosts: (v4: SetElements, v6: SetElements)
    var ranges: (v4: [SetElement], v6: [SetElement])
    /// Each class in use: its policy ids (sorted) and its chain's name.
    var classNames: [[Int]: String]

    /// The chain of the class of `ids`: named by a hash of the ids, so a class keeps its
    /// name when unrelated policies change.
    static func className(prefix: String, _ ids: [Int]) -> String { "\(prefix)_\(RulesetBuilder.classTag(ids))" }

    /// Empties `sweep`.
    init(prefix: String, sweep: inout AddressSweep<Int>) {
        self.prefix = prefix
        let (pieces4, pieces6, labelSets) = sweep.partition()
        var classNames: [[Int]: String] = [:]
        // Each label set's class chain, found once per set rather than once per piece.
        var verdicts = [Verdict?](repeating: nil, count: labelSets.count)
        // Single addresses (most senders) go to hash maps, one kernel element each and O(1)
        // to add or remove; ranges and CIDRs to interval maps. Segments are disjoint, so an
        // address is in at most one of them and the order of the two lookups does not matter.
        var v4: [SetElement] = [], v6: [SetElement] = []
        // The hosts maps are built by column: each label set's verdict gets its number in
        // a map's verdict table once, and each address is then a word and that number.
        var v4Columns = HostColumnsBuilder(family: .v4, sets: labelSets.count)
        var v6Columns = HostColumnsBuilder(family: .v6, sets: labelSets.count)
        func verdict(_ set: Int) -> Verdict {
            if let known = verdicts[set] { return known }
            let ids = labelSets[set]
            let name: String
            if let known = classNames[ids] { name = known } else {
                name = Self.className(prefix: prefix, ids)
                classNames[ids] = name
            }
            verdicts[set] = .jump(name)
            return .jump(name)
        }
        for piece in pieces4 {
            let set = Int(piece.set)
            if piece.first == piece.last {
                v4Columns.append(IPAddress(v4: piece.first), set: set) { verdict(set) }
            } else {
                v4.append(SetElement([.addresses(AddressRange(v4: piece.first, piece.last))], verdict: verdict(set)))
            }
        }
        for piece in pieces6 {
            let set = Int(piece.set)
            if piece.first == piece.last {
                v6Columns.append(IPAddress(v6: piece.first), set: set) { verdict(set) }
            } else {
                v6.append(SetElement([.addresses(AddressRange(v6: piece.first, piece.last))], verdict: verdict(set)))
            }
        }
        hosts = (v4Columns.elements, v6Columns.elements)
        ranges = (v4, v6)
        self.classNames = classNames
    }

    init(prefix: String, hosts: (v4: SetElements, v6: SetElements), ranges: (v4: [SetElement], v6: [SetElement]), classNames: [[Int]: String]) {
        self.prefix = prefix
        self.hosts = hosts
        self.ranges = ranges
        self.classNames = classNames
    }

    /// A hosts map's columns as the sweep fills them: each label set's verdict numbered in
    /// the columns once, then each address is its word and that number. The same elements
    /// as `SetElements.appendHost` for each address; past 65,536 verdicts (which columns
    /// cannot number) it is that.
    private struct HostColumnsBuilder {
        var columns: HostColumns
        /// Each label set's verdict number in `columns`, -1 before its first address.
        var numbers: [Int32]
        /// Set once the verdicts outgrow the columns: the elements built one by one.
        var overflow: SetElements?

        init(family: IPFamily, sets: Int) {
            columns = HostColumns(family: family)
            numbers = Array(repeating: -1, count: sets)
        }

        /// `verdict` is asked for only at a label set's first address (and past the columns).
        mutating func append(_ address: IPAddress, set: Int, verdict: () -> Verdict) {
            if overflow != nil {
                overflow!.appendHost(address, verdict: verdict())
                return
            }
            if numbers[set] < 0 {
                let verdict = verdict()
                guard let number = columns.number(for: verdict) else {
                    var elements = self.elements
                    elements.appendHost(address, verdict: verdict)
                    overflow = elements
                    return
                }
                numbers[set] = Int32(number)
            }
            columns.append(address, number: UInt16(numbers[set]))
        }

        var elements: SetElements { overflow ?? SetElements(columns) }
    }
}

/// An input class's chain and maps from the previous compile of the same host, by
/// everything they are built from: an edit changes a few of a host's hundreds of classes,
/// and the incremental compile builds only those again.
final class ClassCache {
    struct Policy: Hashable {
        var id: Int
        var name: String?
        var allow: [Service]?
        var active: Bool
    }

    struct Key: Hashable {
        var name: String
        var policies: [Policy]
    }

    private var built: [Key: (sets: [NamedSet], chain: Chain)] = [:]
    /// What this compile used or built: the next compile's cache.
    private var current: [Key: (sets: [NamedSet], chain: Chain)] = [:]

    func lookUp(_ key: Key) -> (sets: [NamedSet], chain: Chain)? {
        guard let known = built[key] ?? current[key] else { return nil }
        current[key] = known
        return known
    }

    func store(_ key: Key, sets: [NamedSet], chain: Chain) { current[key] = (sets, chain) }

    /// Classes no longer in use are forgotten.
    func finishBuild() {
        built = current
        current = [:]
    }
}
