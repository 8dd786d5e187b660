/// One hook's sender classes, kept between edits so that an edit re-sweeps only the
/// addresses it touches.
///
/// The full compile's sweep gives every address the set of policies whose senders cover it,
/// then cuts the address space into maximal runs of one non-empty set ("pieces"): a run of
/// one address goes to the hosts map, a longer one to the ranges map. That result depends
/// only on which set each address has, so it can be kept and patched: an edit names the
/// addresses whose set may have changed (a system's old and new addresses, or all of them
/// when its policies changed), each such span is widened to the pieces it touches, swept
/// again from the contributions that cover it, and spliced back. Widening to whole pieces
/// is what keeps the runs maximal: a changed address can join its neighbours' piece or
/// split it in two, and neither reaches past the pieces beside it.
///
/// A contribution is one address block of one system (its "slot"), labelled with that
/// system's policies here; a system that sends under none of this host's policies adds none.
struct SenderClasses {
    let prefix: String
    /// Which blocks of a system count here (the input hook leaves out the host's own).
    let counts: (AddressBlock) -> Bool

    private var labels = SlotLabels()
    private(set) var classNames: [[Int]: String] = [:]
    /// Each label set's class chain, as a verdict, once asked for.
    private var verdicts: [Int32: Verdict] = [:]
    /// Each slot's system (nil: a free slot).
    private var systems: [SystemDefinition?] = []
    private var slotNumbers: [String: Int32] = [:]
    private var freeSlots: [Int32] = []

    private var v4 = FamilyPieces<UInt32>()
    private var v6 = FamilyPieces<UInt128>()
    private var hosts: (v4: HostColumns, v6: HostColumns) = (HostColumns(family: .v4), HostColumns(family: .v6))
    private var ranges: (v4: [SetElement], v6: [SetElement]) = ([], [])

    /// What a system is in this hook: the policies it sends under here (sorted ids) and its
    /// definition (nil: gone).
    struct Member {
        var name: String
        var system: SystemDefinition?
        var labels: [Int]
    }

    /// Element changes of the four sender maps, by map name.
    struct MapChanges {
        var removed: [String: [SetElement]] = [:]
        var added: [String: [SetElement]] = [:]
    }

    /// A verdict table outgrew its 65,536 entries: the caller compiles in full instead.
    struct Overflow: Error {}

    init(prefix: String, members: [Member], counts: @escaping (AddressBlock) -> Bool) throws(Overflow) {
        self.prefix = prefix
        self.counts = counts
        var dirty4: [(UInt32, UInt32)] = [], dirty6: [(UInt128, UInt128)] = []
        for member in members { place(member, dirty4: &dirty4, dirty6: &dirty6) }
        v4.points.sort { ($0.key, $0.slot) < ($1.key, $1.slot) }
        v6.points.sort { ($0.key, $0.slot) < ($1.key, $1.slot) }
        v4.ranges.sort { ($0.first, $0.last, $0.slot) < ($1.first, $1.last, $1.slot) }
        v6.ranges.sort { ($0.first, $0.last, $0.slot) < ($1.first, $1.last, $1.slot) }
        // Everything is new: one sweep of the whole space per family, and the maps built
        // from its pieces without a list of changes.
        _ = v4.resweep([(0, .max)], labels: &labels)
        _ = v6.resweep([(0, .max)], labels: &labels)
        var ranges4: [SetElement] = [], ranges6: [SetElement] = []
        hosts.v4 = try fill(v4.pieces, ranges: &ranges4, family: .v4)
        hosts.v6 = try fill(v6.pieces, ranges: &ranges6, family: .v6)
        ranges = (ranges4, ranges6)
    }

    /// A family's maps from all its pieces (counting each set's pieces as it goes).
    private mutating func fill<Key: SweepKey>(_ pieces: [Piece<Key>], ranges: inout [SetElement], family: IPFamily) throws(Overflow) -> HostColumns {
        var columns = HostColumns(family: family)
        var numbers = [Int32](repeating: -1, count: labels.sets.count)
        for piece in pieces {
            let set = Int(piece.set)
            if labels.pieceCounts[set] == 0 { classNames[labels.sets[set]] = ClassifiedSenders.className(prefix: prefix, labels.sets[set]) }
            labels.pieceCounts[set] += 1
            if piece.first == piece.last {
                if numbers[set] < 0 {
                    guard let number = columns.number(for: verdict(piece.set)) else { throw Overflow() }
                    numbers[set] = Int32(number)
                }
                columns.append(IPAddress(family: family, value: UInt128(piece.first)), number: UInt16(numbers[set]))
            } else {
                ranges.append(SetElement([.addresses(Key.range(piece.first, piece.last))], verdict: verdict(piece.set)))
            }
        }
        return columns
    }

    /// The jump to the class chain of label set `set`.
    private mutating func verdict(_ set: Int32) -> Verdict {
        if let known = verdicts[set] { return known }
        let verdict = Verdict.jump(ClassifiedSenders.className(prefix: prefix, labels.sets[Int(set)]))
        verdicts[set] = verdict
        return verdict
    }

    /// The maps and classes as `RulesetBuilder` takes them.
    var classified: ClassifiedSenders {
        ClassifiedSenders(prefix: prefix, hosts: (SetElements(hosts.v4), SetElements(hosts.v6)), ranges: ranges, classNames: classNames)
    }

    /// Puts each member in: its old contributions out, its new ones in, and the addresses
    /// whose label set may have changed swept again.
    mutating func update(_ members: [Member]) throws(Overflow) -> MapChanges {
        var dirty4: [(UInt32, UInt32)] = [], dirty6: [(UInt128, UInt128)] = []
        var removed4: [(key: UInt32, slot: Int32)] = [], added4: [(key: UInt32, slot: Int32)] = []
        var removed6: [(key: UInt128, slot: Int32)] = [], added6: [(key: UInt128, slot: Int32)] = []
        for member in members {
            let newLabels = labels.intern(member.labels)
            let slotNumber = slotNumbers[member.name]
            let oldLabels = slotNumber.map { labels.ofSlot[Int($0)] } ?? 0
            let oldBlocks = slotNumber.flatMap { oldLabels == 0 ? nil : systems[Int($0)]?.addresses.filter(counts) } ?? []
            let newBlocks = newLabels == 0 ? [] : (member.system?.addresses.filter(counts) ?? [])
            let sameLabels = oldLabels == newLabels
            if sameLabels && oldBlocks == newBlocks {
                if let slotNumber { systems[Int(slotNumber)] = member.system }
                if let slotNumber, member.system == nil {
                    slotNumbers[member.name] = nil
                    freeSlots.append(slotNumber)
                }
                continue
            }
            let slot: Int32
            if let slotNumber { slot = slotNumber } else if let free = freeSlots.popLast() {
                slot = free
                slotNumbers[member.name] = slot
            } else {
                slot = Int32(systems.count)
                systems.append(nil)
                labels.ofSlot.append(0)
                slotNumbers[member.name] = slot
            }
            // Contributions change only by the blocks that come or go; the addresses to
            // sweep again are those, or all of them when the labels changed.
            var counted: [AddressBlock: Int] = [:]
            for block in oldBlocks { counted[block, default: 0] += 1 }
            var come: [AddressBlock] = []
            for block in newBlocks {
                if let n = counted[block], n > 0 { counted[block] = n - 1 } else { come.append(block) }
            }
            var gone: [AddressBlock] = []
            for block in oldBlocks where (counted[block] ?? 0) > 0 {
                counted[block]! -= 1
                gone.append(block)
            }
            if !sameLabels {
                for block in oldBlocks + newBlocks { markDirty(block.range, &dirty4, &dirty6) }
            }
            for (blocks, isRemoval) in [(gone, true), (come, false)] {
                for block in blocks {
                    let range = block.range
                    if sameLabels { markDirty(range, &dirty4, &dirty6) }
                    switch range.family {
                    case .v4:
                        let first = UInt32(truncatingIfNeeded: range.first.value), last = UInt32(truncatingIfNeeded: range.last.value)
                        if first == last {
                            if isRemoval { removed4.append((first, slot)) } else { added4.append((first, slot)) }
                        } else {
                            v4.changeRange(first, last, slot: slot, adding: !isRemoval)
                        }
                    case .v6:
                        let first = range.first.value, last = range.last.value
                        if first == last {
                            if isRemoval { removed6.append((first, slot)) } else { added6.append((first, slot)) }
                        } else {
                            v6.changeRange(first, last, slot: slot, adding: !isRemoval)
                        }
                    }
                }
            }
            systems[Int(slot)] = member.system
            labels.ofSlot[Int(slot)] = newLabels
            if member.system == nil {
                slotNumbers[member.name] = nil
                freeSlots.append(slot)
            }
        }
        splice(&v4.points, removing: removed4, adding: added4)
        splice(&v6.points, removing: removed6, adding: added6)
        return try resweep(dirty4: dirty4, dirty6: dirty6)
    }

    // MARK: -

    private func markDirty(_ range: AddressRange, _ dirty4: inout [(UInt32, UInt32)], _ dirty6: inout [(UInt128, UInt128)]) {
        switch range.family {
        case .v4: dirty4.append((UInt32(truncatingIfNeeded: range.first.value), UInt32(truncatingIfNeeded: range.last.value)))
        case .v6: dirty6.append((range.first.value, range.last.value))
        }
    }

    /// Files a member's contributions (at start, before the sort).
    private mutating func place(_ member: Member, dirty4: inout [(UInt32, UInt32)], dirty6: inout [(UInt128, UInt128)]) {
        let set = labels.intern(member.labels)
        let slot = Int32(systems.count)
        systems.append(member.system)
        labels.ofSlot.append(set)
        slotNumbers[member.name] = slot
        guard set != 0, let system = member.system else { return }
        for block in system.addresses where counts(block) {
            let range = block.range
            switch range.family {
            case .v4:
                let first = UInt32(truncatingIfNeeded: range.first.value), last = UInt32(truncatingIfNeeded: range.last.value)
                if first == last { v4.points.append((first, slot)) } else { v4.ranges.append((first, last, slot)); v4.widest = max(v4.widest, last - first) }
            case .v6:
                let first = range.first.value, last = range.last.value
                if first == last { v6.points.append((first, slot)) } else { v6.ranges.append((first, last, slot)); v6.widest = max(v6.widest, last - first) }
            }
        }
    }

    private mutating func resweep(dirty4: [(UInt32, UInt32)], dirty6: [(UInt128, UInt128)]) throws(Overflow) -> MapChanges {
        var changes = MapChanges()
        let (gone4, come4) = v4.resweep(dirty4, labels: &labels)
        let (gone6, come6) = v6.resweep(dirty6, labels: &labels)
        try record(gone4, come4, family: .v4, into: &changes)
        try record(gone6, come6, family: .v6, into: &changes)
        return changes
    }

    /// Counts the pieces that went and came, and turns them into map elements.
    private mutating func record<Key: SweepKey>(_ gone: [Piece<Key>], _ come: [Piece<Key>], family: IPFamily, into changes: inout MapChanges) throws(Overflow) {
        guard !gone.isEmpty || !come.isEmpty else { return }
        for piece in gone {
            labels.pieceCounts[Int(piece.set)] -= 1
            if labels.pieceCounts[Int(piece.set)] == 0 { classNames[labels.sets[Int(piece.set)]] = nil }
        }
        for piece in come {
            if labels.pieceCounts[Int(piece.set)] == 0 {
                let ids = labels.sets[Int(piece.set)]
                classNames[ids] = ClassifiedSenders.className(prefix: prefix, ids)
            }
            labels.pieceCounts[Int(piece.set)] += 1
        }
        var removedHosts: [SetElement] = [], addedHosts: [SetElement] = []
        var removedValues: [UInt128] = [], addedValues: [(value: UInt128, verdict: Verdict?)] = []
        var removedRanges: [SetElement] = [], addedRanges: [SetElement] = []
        for piece in gone {
            let element = SetElement([.addresses(Key.range(piece.first, piece.last))], verdict: verdict(piece.set))
            if piece.first == piece.last {
                removedHosts.append(element)
                removedValues.append(UInt128(piece.first))
            } else {
                removedRanges.append(element)
            }
        }
        for piece in come {
            let v = verdict(piece.set)
            let element = SetElement([.addresses(Key.range(piece.first, piece.last))], verdict: v)
            if piece.first == piece.last {
                addedHosts.append(element)
                addedValues.append((UInt128(piece.first), v))
            } else {
                addedRanges.append(element)
            }
        }
        let hostsName = SenderMaps.hosts(prefix, family), rangesName = SenderMaps.ranges(prefix, family)
        if !removedHosts.isEmpty || !addedHosts.isEmpty {
            let old = family == .v4 ? hosts.v4 : hosts.v6
            guard var new = old.replacing(removed: removedValues, added: addedValues) else { throw Overflow() }
            // Classes that went leave their verdicts in the table: drop them now and then.
            if new.verdictTableCount > 2 * classNames.count + 64 { new = new.compacted() }
            if family == .v4 { hosts.v4 = new } else { hosts.v6 = new }
            if !removedHosts.isEmpty { changes.removed[hostsName] = removedHosts }
            if !addedHosts.isEmpty { changes.added[hostsName] = addedHosts }
        }
        if !removedRanges.isEmpty || !addedRanges.isEmpty {
            let goneSet = Set(removedRanges)
            var list = (family == .v4 ? ranges.v4 : ranges.v6).filter { !goneSet.contains($0) }
            list += addedRanges
            list.sort { $0.key[0].addressRange!.first < $1.key[0].addressRange!.first }
            if family == .v4 { ranges.v4 = list } else { ranges.v6 = list }
            if !removedRanges.isEmpty { changes.removed[rangesName] = removedRanges }
            if !addedRanges.isEmpty { changes.added[rangesName] = addedRanges }
        }
    }
}

/// The label sets of a hook's senders: each slot's (the policies its system sends under
/// here), and the sets of addresses covered by several slots, interned by number.
struct SlotLabels {
    /// Label sets (policy ids, sorted) by number; number 0 is the empty set.
    private(set) var sets: [[Int]] = [[]]
    private var numbers: [[Int]: Int32] = [[]: 0]
    /// How many pieces of either family carry each set: its class is in use while positive.
    var pieceCounts: [Int] = [0]
    /// Each slot's label set.
    var ofSlot: [Int32] = []

    mutating func intern(_ labels: [Int]) -> Int32 {
        if let known = numbers[labels] { return known }
        let number = Int32(sets.count)
        sets.append(labels)
        numbers[labels] = number
        pieceCounts.append(0)
        return number
    }

    /// The label set of an address covered by `slots` (repeats allowed): the union of theirs.
    mutating func union(of slots: some Sequence<Int32>) -> Int32 {
        var only: Int32 = 0
        var merged: Set<Int>?
        for slot in slots {
            let set = ofSlot[Int(slot)]
            if set == 0 || set == only { continue }
            if only == 0 && merged == nil { only = set; continue }
            if merged == nil { merged = Set(sets[Int(only)]) }
            merged!.formUnion(sets[Int(set)])
        }
        guard let merged else { return only }
        return intern(merged.sorted())
    }
}

extension KeyPart {
    var addressRange: AddressRange? { if case .addresses(let range) = self { range } else { nil } }
}

/// An address family's integers, as the sweep keeps them.
protocol SweepKey: FixedWidthInteger & UnsignedInteger & Sendable {
    static func range(_ first: Self, _ last: Self) -> AddressRange
}

extension UInt32: SweepKey {
    static func range(_ first: UInt32, _ last: UInt32) -> AddressRange { AddressRange(v4: first, last) }
}

extension UInt128: SweepKey {
    static func range(_ first: UInt128, _ last: UInt128) -> AddressRange { AddressRange(v6: first, last) }
}

typealias Piece<Key> = (first: Key, last: Key, set: Int32)

/// One family's contributions and pieces, each sorted by address.
struct FamilyPieces<Key: SweepKey> {
    /// Single addresses, with the slot of the system they belong to (repeats allowed).
    var points: [(key: Key, slot: Int32)] = []
    /// Blocks of more than one address, sorted by first address.
    var ranges: [(first: Key, last: Key, slot: Int32)] = []
    /// The largest `last - first` of any range ever added: a range ending at or after an
    /// address starts at most this far before it, which bounds the search for ranges
    /// covering a span. Never lowered (it only widens searches).
    var widest: Key = 0
    /// Disjoint, sorted, maximal runs of one non-empty label set.
    var pieces: [Piece<Key>] = []

    mutating func changeRange(_ first: Key, _ last: Key, slot: Int32, adding: Bool) {
        let item = (first: first, last: last, slot: slot)
        let position = ranges.partitionPoint { ($0.first, $0.last, $0.slot) >= (first, last, slot) }
        if adding {
            ranges.insert(item, at: position)
            widest = max(widest, last - first)
        } else if position < ranges.count, ranges[position] == item {
            ranges.remove(at: position)
        }
    }

    /// Sweeps the spans `dirty` (and the pieces they touch) again; returns the pieces that
    /// went and the ones that came, without those that stayed as they were.
    mutating func resweep(_ dirty: [(Key, Key)], labels: inout SlotLabels) -> (gone: [Piece<Key>], come: [Piece<Key>]) {
        guard !dirty.isEmpty else { return ([], []) }
        let spans = dirty.sorted { $0.0 < $1.0 }
        // Regions: dirty spans widened to the pieces they touch (or abut), merged.
        var regions: [(first: Key, last: Key, low: Int, high: Int)] = []
        for (first, last) in spans {
            let before = first == 0 ? first : first - 1, after = last == .max ? last : last + 1
            let low = pieces.partitionPoint { $0.last >= before }
            let high = pieces.partitionPoint { $0.first > after }  // pieces low..<high touch the span
            var region = (first: first, last: last, low: low, high: high)
            if low < high {
                region.first = min(first, pieces[low].first)
                region.last = max(last, pieces[high - 1].last)
            }
            if let previous = regions.last, region.low < previous.high || (previous.last != .max && region.first <= previous.last + 1) {
                regions[regions.count - 1] = (min(previous.first, region.first), max(previous.last, region.last), previous.low, max(previous.high, region.high))
            } else {
                regions.append(region)
            }
        }
        var gone: [Piece<Key>] = [], come: [Piece<Key>] = []
        var swept: [[Piece<Key>]] = []
        for region in regions {
            let old = pieces[region.low..<region.high]
            let new = sweep(region.first, region.last, labels: &labels)
            // Pieces that stayed as they were are no change.
            var i = old.startIndex, j = 0
            while i < old.endIndex || j < new.count {
                if i < old.endIndex, j < new.count, old[i] == new[j] { i += 1; j += 1; continue }
                if j == new.count || (i < old.endIndex && old[i].first <= new[j].first) { gone.append(old[i]); i += 1 } else { come.append(new[j]); j += 1 }
            }
            swept.append(new)
        }
        if regions.count <= 32 {
            // A few regions: replaced in place, from the last so the earlier indices hold
            // (a region as long as before moves nothing else).
            for (region, new) in zip(regions, swept).reversed() { pieces.replaceSubrange(region.low..<region.high, with: new) }
        } else {
            var out: [Piece<Key>] = []
            out.reserveCapacity(pieces.count + come.count)
            var next = 0
            for (region, new) in zip(regions, swept) {
                out.append(contentsOf: pieces[next..<region.low])
                out.append(contentsOf: new)
                next = region.high
            }
            out.append(contentsOf: pieces[next...])
            pieces = out
        }
        return (gone, come)
    }

    /// The pieces of `first...last` from the contributions covering it.
    private func sweep(_ first: Key, _ last: Key, labels: inout SlotLabels) -> [Piece<Key>] {
        var pieces: [Piece<Key>] = []
        func append(_ low: Key, _ high: Key, _ set: Int32) {
            guard set != 0 else { return }
            if let before = pieces.last, before.set == set, before.last != .max, before.last + 1 == low {
                pieces[pieces.count - 1].last = high
            } else {
                pieces.append((low, high, set))
            }
        }
        let pointsStart = points.partitionPoint { $0.key >= first }
        let pointsEnd = points.partitionPoint { $0.key > last }
        let reach = first >= widest ? first - widest : 0
        var covering: [(first: Key, last: Key, slot: Int32)] = []
        var index = ranges.partitionPoint { $0.first >= reach }
        while index < ranges.count && ranges[index].first <= last {
            let range = ranges[index]
            if range.last >= first { covering.append((max(range.first, first), min(range.last, last), range.slot)) }
            index += 1
        }
        if covering.isEmpty {
            // Single addresses only (the usual case): each run of equal addresses is one piece.
            var i = pointsStart
            var slotsHere: [Int32] = []
            while i < pointsEnd {
                let key = points[i].key
                var j = i + 1
                while j < pointsEnd && points[j].key == key { j += 1 }
                let set: Int32
                if j == i + 1 {
                    set = labels.ofSlot[Int(points[i].slot)]
                } else {
                    slotsHere.removeAll(keepingCapacity: true)
                    for k in i..<j { slotsHere.append(points[k].slot) }
                    set = labels.union(of: slotsHere)
                }
                append(key, key, set)
                i = j
            }
            return pieces
        }
        // Ranges too: a sweep over the starts and ends, as the full compile's.
        var starts: [(key: Key, slot: Int32)] = covering.map { ($0.first, $0.slot) }
        var ends: [(key: Key, slot: Int32)] = covering.map { ($0.last, $0.slot) }
        for i in pointsStart..<pointsEnd {
            starts.append(points[i])
            ends.append(points[i])
        }
        starts.sort { $0.key < $1.key }
        ends.sort { $0.key < $1.key }
        var active: [Int32: Int] = [:]
        var state: Int32 = 0
        var previous: (point: Key, after: Bool) = (0, false)
        var s = 0, e = 0
        while e < ends.count {
            let position: (point: Key, after: Bool) = s < starts.count && starts[s].key <= ends[e].key ? (starts[s].key, false) : (ends[e].key, true)
            if state != 0 {
                let low: Key? = previous.after ? (previous.point == .max ? nil : previous.point + 1) : previous.point
                let high: Key? = position.after ? position.point : (position.point == 0 ? nil : position.point - 1)
                if let low, let high, low <= high { append(low, high, state) }
            }
            if position.after {
                while e < ends.count && ends[e].key == position.point {
                    let slot = ends[e].slot
                    active[slot]! -= 1
                    if active[slot] == 0 { active[slot] = nil }
                    e += 1
                }
            } else {
                while s < starts.count && starts[s].key == position.point {
                    active[starts[s].slot, default: 0] += 1
                    s += 1
                }
            }
            state = labels.union(of: active.keys)
            previous = position
        }
        return pieces
    }
}

/// `points` (sorted by key, then slot) without `removing` and with `adding`. A few changes
/// (one system's addresses) are made in place, each moving the points after it along the
/// array's own memory; more are made by `spliced`, in one pass into a new array, which
/// costs a fresh allocation of the whole (a million points) and its pages.
func splice<Key: Comparable>(_ points: inout [(key: Key, slot: Int32)], removing: [(key: Key, slot: Int32)], adding: [(key: Key, slot: Int32)]) {
    if removing.count + adding.count <= 16 {
        for item in removing {
            let position = points.partitionPoint { ($0.key, $0.slot) >= (item.key, item.slot) }
            // The contribution is there (it was filed when its system was); if not, nothing to take out.
            if position < points.count && points[position] == item { points.remove(at: position) }
        }
        for item in adding {
            points.insert(item, at: points.partitionPoint { ($0.key, $0.slot) >= (item.key, item.slot) })
        }
        return
    }
    points = spliced(points, removing: removing, adding: adding)
}

/// `old` (sorted by key, then slot) without `removing` and with `adding`, in one pass that
/// copies the unchanged runs whole.
func spliced<Key: Comparable>(_ old: [(key: Key, slot: Int32)], removing: [(key: Key, slot: Int32)], adding: [(key: Key, slot: Int32)]) -> [(key: Key, slot: Int32)] {
    guard !removing.isEmpty || !adding.isEmpty else { return old }
    let removing = removing.sorted { ($0.key, $0.slot) < ($1.key, $1.slot) }
    let adding = adding.sorted { ($0.key, $0.slot) < ($1.key, $1.slot) }
    var out: [(key: Key, slot: Int32)] = []
    out.reserveCapacity(old.count - removing.count + adding.count)
    var next = 0, r = 0, a = 0
    func lowerBound(_ item: (key: Key, slot: Int32)) -> Int {
        var low = next, high = old.count
        while low < high {
            let middle = (low + high) / 2
            if (old[middle].key, old[middle].slot) < (item.key, item.slot) { low = middle + 1 } else { high = middle }
        }
        return low
    }
    while r < removing.count || a < adding.count {
        if r < removing.count && (a == adding.count || (removing[r].key, removing[r].slot) <= (adding[a].key, adding[a].slot)) {
            let position = lowerBound(removing[r])
            out.append(contentsOf: old[next..<position])
            // The contribution is there (it was filed when its system was); skip it.
            next = position < old.count && old[position] == removing[r] ? position + 1 : position
            r += 1
        } else {
            let position = lowerBound(adding[a])
            out.append(contentsOf: old[next..<position])
            next = position
            out.append(adding[a])
            a += 1
        }
    }
    out.append(contentsOf: old[next...])
    return out
}

extension Array {
    /// The first index whose element satisfies `belongs` (which must be false, then true,
    /// along the array).
    func partitionPoint(_ belongs: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if belongs(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
