// Interval arithmetic over closed ranges of addresses and ports: merging, CIDR splitting,
// and the labelled sweep (`partition`) that turns overlapping rule matches into disjoint
// set elements.
//
// The algorithms live once, in `IntervalSweep`, generic over an unsigned integer key whose
// whole width is one domain (UInt16 ports, UInt32 IPv4, UInt128 IPv6; a time-of-week in
// minutes would fit too). Address ranges are split by family first: the families never
// overlap or join, and integer keys sort much faster than (family, value) pairs.

extension IPAddress {
    /// The next address of the same family, or nil at the family's last address.
    public var successor: IPAddress? {
        value == family.maxValue ? nil : IPAddress(family: family, value: value + 1)
    }

    /// The previous address of the same family, or nil at the family's first address.
    public var predecessor: IPAddress? {
        value == 0 ? nil : IPAddress(family: family, value: value - 1)
    }
}

// MARK: - Public entry points

/// Splits labelled address ranges (any order, overlapping, both families mixed) into
/// disjoint ranges sorted IPv4 first, each with the set of labels whose ranges cover it.
/// Adjacent pieces with equal label sets are merged; uncovered gaps are left out.
///
/// Pieces with the same label set share one `Set` instance.
///
/// A caller that hands over its only copy of `items` (`consume`) lets them be freed before
/// the pieces are built: with a million senders that is most of the compiler's peak memory.
@inlinable
public func partition<Label: Hashable & Sendable>(
    _ items: consuming [(AddressRange, Label)]
) -> [(range: AddressRange, labels: Set<Label>)] {
    partitionInterningLabels(items, sweep: partitionAddressRanges)
}

/// `partition` for port ranges.
@inlinable
public func partition<Label: Hashable & Sendable>(
    _ items: consuming [(PortRange, Label)]
) -> [(range: PortRange, labels: Set<Label>)] {
    partitionInterningLabels(items, sweep: partitionPortRanges)
}

/// Turns labels into dense ids for a non-generic sweep, then builds one `Set` per distinct
/// label set. Inlinable so that `Label` is specialized in callers in other modules too;
/// the sweep itself is compiled once, here. The sweep empties `ranges` once it holds them.
@inlinable
func partitionInterningLabels<R, Label: Hashable>(
    _ items: consuming [(R, Label)],
    sweep: (_ ranges: inout [R], _ labels: [Int32], _ labelCount: Int)
        -> (pieces: [(range: R, set: Int32)], sets: (members: [Int32], bounds: [Int]))
) -> [(range: R, labels: Set<Label>)] {
    let (labels, pieces, sets) = partitionIntoLabelSets(items, sweep: sweep)
    var materialized = [Set<Label>?](repeating: nil, count: sets.bounds.count - 1)
    return pieces.map { piece in
        let set = Int(piece.set)
        if let known = materialized[set] { return (piece.range, known) }
        let members = sets.members[sets.bounds[set]..<sets.bounds[set + 1]]
        var labelSet = Set<Label>(minimumCapacity: members.count)
        for member in members { labelSet.insert(labels[Int(member)]) }
        materialized[set] = labelSet
        return (piece.range, labelSet)
    }
}

/// `partition` for addresses without a `Set` per piece: each piece names its label set by
/// number, and `sets[number]` holds that set's labels, sorted. For a million senders the
/// compiler asks each label set its questions (its class name) once, not once per piece.
public func partitionByLabelSet<Label: Hashable & Comparable>(
    _ items: consuming [(AddressRange, Label)], concurrentFrom: Int = AddressSweep<Label>.concurrentFrom
) -> (pieces: [(range: AddressRange, set: Int32)], sets: [[Label]]) {
    var sweep = AddressSweep<Label>()
    sweep.reserveCapacity(items.count)
    for (range, label) in items { sweep.add(range, id: sweep.id(of: label)) }
    items = []
    let swept = sweep.partition(concurrentFrom: concurrentFrom)
    var pieces: [(range: AddressRange, set: Int32)] = []
    pieces.reserveCapacity(swept.v4.count + swept.v6.count)
    for piece in swept.v4 { pieces.append((AddressRange(v4: piece.first, piece.last), piece.set)) }
    for piece in swept.v6 { pieces.append((AddressRange(v6: piece.first, piece.last), piece.set)) }
    return (pieces, swept.sets)
}

/// Labelled address ranges gathered straight into each family's sweep: what
/// `partitionByLabelSet` does, for a caller with a million of them (a receiver's senders)
/// and no need of an array of (range, label) items in between. The pieces come out by
/// family, in the sweep's own integers.
public struct AddressSweep<Label: Hashable & Comparable> {
    /// From how many ranges in each family the two families are swept at once, on two cores.
    public static var concurrentFrom: Int { 65_536 }

    private var labels: [Label] = []
    private var ids: [Label: Int32] = [:]
    private var latest: (label: Label, id: Int32)?
    private var v4 = IntervalSweep<UInt32>()
    private var v6 = IntervalSweep<UInt128>()

    public init() {}

    /// Room for `count` ranges of either family (pages not written cost nothing).
    public mutating func reserveCapacity(_ count: Int) {
        v4.reserveCapacity(count)
        v6.reserveCapacity(count)
    }

    /// The dense id under which `add` takes ranges labelled `label`.
    public mutating func id(of label: Label) -> Int32 {
        // Consecutive ranges often share a label; equality is cheaper than hashing.
        if let latest, latest.label == label { return latest.id }
        let id: Int32
        if let known = ids[label] { id = known } else {
            id = Int32(labels.count)
            labels.append(label)
            ids[label] = id
        }
        latest = (label, id)
        return id
    }

    public mutating func add(_ range: AddressRange, id: Int32) {
        switch range.family {
        case .v4: v4.add(first: UInt32(truncatingIfNeeded: range.first.value), last: UInt32(truncatingIfNeeded: range.last.value), label: id)
        case .v6: v6.add(first: range.first.value, last: range.last.value, label: id)
        }
    }

    public typealias Piece<Key> = (first: Key, last: Key, set: Int32)

    /// Disjoint, sorted pieces of each family, each with the number of its label set in
    /// `sets` (labels sorted); adjacent pieces with equal sets joined, gaps left out.
    /// Leaves the sweep empty.
    public mutating func partition(concurrentFrom: Int = concurrentFrom) -> (v4: [Piece<UInt32>], v6: [Piece<UInt128>], sets: [[Label]]) {
        var v4 = IntervalSweep<UInt32>(), v6 = IntervalSweep<UInt128>()
        swap(&v4, &self.v4)
        swap(&v6, &self.v6)
        let (pieces4, pieces6, sets) = sweepFamilies(v4: consume v4, v6: consume v6, labelCount: labels.count, concurrentFrom: concurrentFrom)
        let sorted = (0..<(sets.bounds.count - 1)).map { set in
            sets.members[sets.bounds[set]..<sets.bounds[set + 1]].map { labels[Int($0)] }.sorted()
        }
        return (pieces4, pieces6, sorted)
    }
}

extension AddressRange {
    init(v4 first: UInt32, _ last: UInt32) { self.init(unchecked: IPAddress(v4: first), IPAddress(v4: last)) }
    init(v6 first: UInt128, _ last: UInt128) { self.init(unchecked: IPAddress(v6: first), IPAddress(v6: last)) }
}

/// Both families swept, the IPv6 one on another core when both have at least
/// `concurrentFrom` ranges; its label sets are then interned into the IPv4 sweep's table
/// afterwards, so the set numbers are one table's.
func sweepFamilies(
    v4: consuming IntervalSweep<UInt32>, v6: consuming IntervalSweep<UInt128>, labelCount: Int, concurrentFrom: Int
) -> (v4: [IntervalSweep<UInt32>.Piece], v6: [IntervalSweep<UInt128>.Piece], sets: (members: [Int32], bounds: [Int])) {
    var table = LabelSetTable(labelCount: labelCount)
    guard min(v4.count, v6.count) >= concurrentFrom else {
        let pieces4 = v4.partition(&table)
        let pieces6 = v6.partition(&table)
        return (pieces4, pieces6, table.sets)
    }
    let other = Concurrently(handing: consume v6) { sweep in
        var sweep = sweep
        var table = LabelSetTable(labelCount: labelCount)
        let pieces = sweep.partition(&table)
        return (pieces: pieces, sets: table.sets)
    }
    let pieces4 = v4.partition(&table)
    var (pieces6, sets6) = other.value
    // Set 0 is the empty set in both tables.
    var renumbered: [Int32] = [LabelSetTable.empty]
    for set in 1..<(sets6.bounds.count - 1) {
        renumbered.append(table.intern(sets6.members[sets6.bounds[set]..<sets6.bounds[set + 1]]))
    }
    for index in pieces6.indices { pieces6[index].set = renumbered[Int(pieces6[index].set)] }
    return (pieces4, pieces6, table.sets)
}

/// Labels interned as dense ids, swept: the labels by id, the pieces with their set
/// numbers, and each set's member ids (`members[bounds[n] ..< bounds[n + 1]]`).
@inlinable
func partitionIntoLabelSets<R, Label: Hashable>(
    _ items: consuming [(R, Label)],
    sweep: (_ ranges: inout [R], _ labels: [Int32], _ labelCount: Int)
        -> (pieces: [(range: R, set: Int32)], sets: (members: [Int32], bounds: [Int]))
) -> (labels: [Label], pieces: [(range: R, set: Int32)], sets: (members: [Int32], bounds: [Int])) {
    var labels: [Label] = []
    var idsByLabel: [Label: Int32] = [:]
    var previous: (label: Label, id: Int32)?
    var ranges: [R] = []
    var ids: [Int32] = []
    ranges.reserveCapacity(items.count)
    ids.reserveCapacity(items.count)
    for (range, label) in items {
        let id: Int32
        if let previous, previous.label == label {
            // Consecutive items often share a label; equality is cheaper than hashing.
            id = previous.id
        } else if let known = idsByLabel[label] {
            id = known
        } else {
            id = Int32(labels.count)
            labels.append(label)
            idsByLabel[label] = id
        }
        previous = (label, id)
        ranges.append(range)
        ids.append(id)
    }
    items = []
    let (pieces, sets) = sweep(&ranges, ids, labels.count)
    return (labels, pieces, sets)
}

/// The sweep behind `partition` for addresses: the families are swept separately.
@usableFromInline
func partitionAddressRanges(
    _ ranges: inout [AddressRange], _ labels: [Int32], _ labelCount: Int
) -> (pieces: [(range: AddressRange, set: Int32)], sets: (members: [Int32], bounds: [Int])) {
    var v4 = IntervalSweep<UInt32>()
    var v6 = IntervalSweep<UInt128>()
    for (range, label) in zip(ranges, labels) {
        switch range.family {
        case .v4:
            v4.add(first: UInt32(truncatingIfNeeded: range.first.value),
                   last: UInt32(truncatingIfNeeded: range.last.value), label: label)
        case .v6:
            v6.add(first: range.first.value, last: range.last.value, label: label)
        }
    }
    ranges = []
    let (pieces4, pieces6, sets) = sweepFamilies(v4: consume v4, v6: consume v6, labelCount: labelCount, concurrentFrom: .max)
    var pieces: [(range: AddressRange, set: Int32)] = []
    pieces.reserveCapacity(pieces4.count + pieces6.count)
    for piece in pieces4 { pieces.append((AddressRange(v4: piece.first, piece.last), piece.set)) }
    for piece in pieces6 { pieces.append((AddressRange(v6: piece.first, piece.last), piece.set)) }
    return (pieces, sets)
}

/// The sweep behind `partition` for ports.
@usableFromInline
func partitionPortRanges(
    _ ranges: inout [PortRange], _ labels: [Int32], _ labelCount: Int
) -> (pieces: [(range: PortRange, set: Int32)], sets: (members: [Int32], bounds: [Int])) {
    var sweep = IntervalSweep<UInt16>()
    for (range, label) in zip(ranges, labels) {
        sweep.add(first: range.first, last: range.last, label: label)
    }
    ranges = []
    var table = LabelSetTable(labelCount: labelCount)
    let pieces = sweep.partition(&table).map { (PortRange(first: $0.first, last: $0.last), $0.set) }
    return (pieces, table.sets)
}

/// Merges overlapping and adjacent ranges into the minimal sorted list, IPv4 first.
public func merge(_ ranges: [AddressRange]) -> [AddressRange] {
    var v4: [(key: UInt32, payload: UInt32)] = []
    var v6: [(key: UInt128, payload: UInt128)] = []
    for range in ranges {
        switch range.family {
        case .v4:
            v4.append((UInt32(truncatingIfNeeded: range.first.value), UInt32(truncatingIfNeeded: range.last.value)))
        case .v6:
            v6.append((range.first.value, range.last.value))
        }
    }
    return IntervalSweep.merge(&v4).map { AddressRange(unchecked: IPAddress(v4: $0.first), IPAddress(v4: $0.last)) }
        + IntervalSweep.merge(&v6).map { AddressRange(unchecked: IPAddress(v6: $0.first), IPAddress(v6: $0.last)) }
}

/// Merges overlapping and adjacent port ranges into the minimal sorted list.
public func merge(_ ranges: [PortRange]) -> [PortRange] {
    var pairs = ranges.map { (key: $0.first, payload: $0.last) }
    return IntervalSweep.merge(&pairs).map { PortRange(first: $0.first, last: $0.last) }
}

/// The minimal list of CIDR blocks that exactly covers `range`, in address order.
public func blocks(of range: AddressRange) -> [AddressBlock] {
    let family = range.family
    let width = family.bitWidth
    var result: [AddressBlock] = []
    var first = range.first.value
    let last = range.last.value
    while true {
        // The largest aligned block starting at `first` that does not pass `last`.
        var hostBits = min(first.trailingZeroBitCount, width)
        while hostBits > 0 && last - first < family.maxValue >> (width - hostBits) {
            hostBits -= 1
        }
        let sizeMinusOne = family.maxValue >> (width - hostBits)
        if let block = AddressBlock(address: IPAddress(family: family, value: first), prefixLength: width - hostBits) {
            result.append(block)
        }
        let blockLast = first + sizeMinusOne
        if blockLast >= last { break }
        first = blockLast + 1
    }
    return result
}

// MARK: - The shared algorithms

/// Closed intervals `[first, last]` over one integer domain `0...Key.max`, each with a
/// label id.
struct IntervalSweep<Key: FixedWidthInteger & UnsignedInteger> {
    typealias Piece = (first: Key, last: Key, set: Int32)

    private var starts: [(key: Key, payload: Int32)] = []
    private var ends: [(key: Key, payload: Int32)] = []
    /// Whether every interval added is one point (a million single senders, typically).
    private var onlyPoints = true

    /// While every interval is a point the ends are the starts, kept once.
    mutating func add(first: Key, last: Key, label: Int32) {
        starts.append((first, label))
        if onlyPoints {
            if first == last { return }
            onlyPoints = false
            ends.reserveCapacity(starts.capacity)
            ends.append(contentsOf: starts.dropLast())
        }
        ends.append((last, label))
    }

    var count: Int { starts.count }

    mutating func reserveCapacity(_ count: Int) { starts.reserveCapacity(count) }

    /// Disjoint, sorted pieces with the interned id (in `table`) of the labels covering
    /// each; adjacent pieces with the same set are joined and gaps are left out.
    ///
    /// One sort of the starts and one of the ends, then a sweep over positions "at p" (a
    /// start) and "just after p" (an end). At one p all starts come before all ends, so a
    /// range [p, p] gets its own piece. Consumes the added intervals.
    ///
    /// Points only (`pointPath`, unless a test asks for the general sweep) take a shorter
    /// way to the same pieces: one sort, then each run of equal points is one piece.
    mutating func partition(_ table: inout LabelSetTable, pointPath: Bool = true) -> [Piece] {
        if onlyPoints {
            if pointPath { return partitionPoints(&table) }
            ends = starts
        }
        radixSort(&starts)
        radixSort(&ends)
        defer {
            starts = []
            ends = []
        }
        var pieces: [Piece] = []
        var state: Int32 = LabelSetTable.empty
        var previous: (point: Key, after: Bool) = (0, false)
        var startIndex = 0
        var endIndex = 0
        while endIndex < ends.count {
            let position: (point: Key, after: Bool)
            if startIndex < starts.count && starts[startIndex].key <= ends[endIndex].key {
                position = (starts[startIndex].key, false)
            } else {
                position = (ends[endIndex].key, true)
            }

            // The piece between the previous position and this one. A nonempty state means
            // some range started at or before `previous` and has not ended, so the edges
            // below cannot leave the domain; the guards just keep that local.
            if state != LabelSetTable.empty {
                let first = previous.after ? (previous.point == .max ? nil : previous.point + 1) : previous.point
                let last = position.after ? position.point : (position.point == 0 ? nil : position.point - 1)
                if let first, let last, first <= last {
                    if let before = pieces.last, before.set == state, before.last != .max, before.last + 1 == first {
                        pieces[pieces.count - 1].last = last
                    } else {
                        pieces.append((first, last, state))
                    }
                }
            }

            if position.after {
                while endIndex < ends.count && ends[endIndex].key == position.point {
                    table.remove(ends[endIndex].payload)
                    endIndex += 1
                }
            } else {
                while startIndex < starts.count && starts[startIndex].key == position.point {
                    table.add(starts[startIndex].payload)
                    startIndex += 1
                }
            }
            state = table.resolve(from: state)
            previous = position
        }
        return pieces
    }

    /// `partition` when every interval is a point: the points sorted once (the ends are the
    /// same), and the labels of each run of equal points make its piece's set; neighbours
    /// with the same set join, as in the sweep.
    private mutating func partitionPoints(_ table: inout LabelSetTable) -> [Piece] {
        radixSort(&starts)
        defer { starts = [] }
        var pieces: [Piece] = []
        let points = starts.span
        var index = 0
        while index < points.count {
            let point = points[index].key
            var next = index + 1
            while next < points.count && points[next].key == point { next += 1 }
            let set: Int32
            if next == index + 1 {
                set = table.singleton(points[index].payload)
            } else {
                for member in index..<next { table.add(points[member].payload) }
                set = table.resolve(from: LabelSetTable.empty)
                for member in index..<next { table.remove(points[member].payload) }
                _ = table.resolve(from: set)
            }
            if let before = pieces.last, before.set == set, before.last != .max, before.last + 1 == point {
                pieces[pieces.count - 1].last = point
            } else {
                pieces.append((point, point, set))
            }
            index = next
        }
        return pieces
    }

    /// Merges `(first, last)` pairs into the minimal sorted list of disjoint, non-adjacent
    /// intervals. Sorts `pairs` in place.
    static func merge(_ pairs: inout [(key: Key, payload: Key)]) -> [(first: Key, last: Key)] {
        radixSort(&pairs)
        var merged: [(first: Key, last: Key)] = []
        guard var current = pairs.first.map({ (first: $0.key, last: $0.payload) }) else { return [] }
        for (first, last) in pairs.dropFirst() {
            if first <= current.last || current.last + 1 == first {  // no overflow: first > current.last
                current.last = max(current.last, last)
            } else {
                merged.append(current)
                current = (first, last)
            }
        }
        merged.append(current)
        return merged
    }
}

extension IntervalSweep: Sendable where Key: Sendable {}

/// Stable sort by `key`: LSD radix sort with byte digits, skipping digits on which all keys
/// agree (the high bytes of clustered IPv6 addresses). Linear in the keys: the compiler sorts
/// a receiver's senders by the million, where a comparison sort's log factor shows.
func radixSort<Key: FixedWidthInteger & UnsignedInteger, Payload>(_ items: inout [(key: Key, payload: Payload)]) {
    let count = items.count
    guard count > 256 else {
        items.sort { $0.key < $1.key }
        return
    }
    let digits = Key.bitWidth / 8
    // All digit histograms in one read.
    var histograms = [Int](repeating: 0, count: digits * 256)
    histograms.withUnsafeMutableBufferPointer { histograms in
        for item in items {
            var key = item.key
            for digit in 0..<digits {
                histograms[digit * 256 + Int(truncatingIfNeeded: key) & 0xff] += 1
                key >>= 8
            }
        }
    }
    var scratch = items
    var sortedIsInScratch = false
    for digit in 0..<digits {
        let base = digit * 256
        if histograms[base + Int(truncatingIfNeeded: items[0].key >> (8 * digit)) & 0xff] == count { continue }
        var offsets = [Int](repeating: 0, count: 256)
        var total = 0
        for bucket in 0..<256 {
            offsets[bucket] = total
            total += histograms[base + bucket]
        }
        let shift = 8 * digit
        func scatter(_ source: UnsafeMutableBufferPointer<(key: Key, payload: Payload)>,
                     _ destination: UnsafeMutableBufferPointer<(key: Key, payload: Payload)>) {
            offsets.withUnsafeMutableBufferPointer { offsets in
                for item in source {
                    let bucket = Int(truncatingIfNeeded: item.key >> shift) & 0xff
                    destination[offsets[bucket]] = item
                    offsets[bucket] += 1
                }
            }
        }
        items.withUnsafeMutableBufferPointer { items in
            scratch.withUnsafeMutableBufferPointer { scratch in
                if sortedIsInScratch { scatter(scratch, items) } else { scatter(items, scratch) }
            }
        }
        sortedIsInScratch.toggle()
    }
    if sortedIsInScratch { items = scratch }
}

// MARK: - Label sets

/// The interned label sets of a sweep and the multiset of labels currently active.
///
/// Each distinct set gets an id (`empty` is 0). Most sweep positions toggle one label, so
/// `(set, label, added?) -> set` transitions are cached and cost one dictionary lookup;
/// other changes find their set by an order-independent hash of the members, checked
/// exactly against the candidate's member list. So the sweep allocates only when it meets
/// a label set for the first time.
struct LabelSetTable {
    static let empty: Int32 = 0

    /// How many active ranges carry each label.
    private var counts: [Int32]
    /// Active labels (count > 0), unordered, and each one's index in that list.
    private var active: [Int32] = []
    private var activeSlot: [Int32]
    /// XOR of `mix(label)` over the active labels.
    private var activeHash: UInt64 = 0
    /// How many labels changed presence since the last `resolve`, and the first of them.
    private var toggledCount = 0
    private var firstToggled: (label: Int32, added: Bool) = (0, false)

    /// The members of every interned set, back to back: set i is
    /// `members[memberBounds[i]..<memberBounds[i + 1]]`. One flat array instead of an
    /// array per set saves an allocation for every new set.
    private var members: [Int32] = []
    private var memberBounds: [Int] = [0, 0]  // set 0 is empty
    /// First set with a given hash, and the next set sharing a hash.
    private var setsByHash: [UInt64: Int32] = [0: 0]
    private var nextWithSameHash: [Int32] = [-1]
    private var transitions: [UInt64: Int32] = [:]
    /// The id of the set of just that label, by label (-1: not met yet). Ranges that
    /// overlap nothing (a million single senders) pass only through the empty set and
    /// these, so their sweep hashes nothing.
    private var singletons: [Int32]

    init(labelCount: Int) {
        counts = Array(repeating: 0, count: labelCount)
        activeSlot = Array(repeating: -1, count: labelCount)
        singletons = Array(repeating: -1, count: labelCount)
    }

    /// The interned sets, in the flat layout described at `members`.
    var sets: (members: [Int32], bounds: [Int]) { (members, memberBounds) }

    mutating func add(_ label: Int32) {
        counts[Int(label)] += 1
        guard counts[Int(label)] == 1 else { return }
        activeSlot[Int(label)] = Int32(active.count)
        active.append(label)
        activeHash ^= Self.mix(label)
        if toggledCount == 0 { firstToggled = (label, true) }
        toggledCount += 1
    }

    mutating func remove(_ label: Int32) {
        counts[Int(label)] -= 1
        guard counts[Int(label)] == 0 else { return }
        let slot = Int(activeSlot[Int(label)])
        let moved = active[active.count - 1]
        active[slot] = moved
        activeSlot[Int(moved)] = Int32(slot)
        active.removeLast()
        activeSlot[Int(label)] = -1
        activeHash ^= Self.mix(label)
        if toggledCount == 0 { firstToggled = (label, false) }
        toggledCount += 1
    }

    /// The id of the set of exactly `members` (distinct labels; none active, as between
    /// sweeps).
    mutating func intern(_ members: some Collection<Int32>) -> Int32 {
        for member in members { add(member) }
        let set = resolve(from: Self.empty)
        for member in members { remove(member) }
        _ = resolve(from: set)
        return set
    }

    /// The id of the set of just `label` (none active may be pending: between resolves).
    mutating func singleton(_ label: Int32) -> Int32 {
        let known = singletons[Int(label)]
        if known >= 0 { return known }
        add(label)
        let set = resolve(from: Self.empty)
        remove(label)
        _ = resolve(from: set)
        return set
    }

    /// The id of the active set, given the id of the set before the latest changes.
    mutating func resolve(from previous: Int32) -> Int32 {
        defer { toggledCount = 0 }
        if toggledCount == 0 { return previous }
        if active.isEmpty { return Self.empty }
        if active.count == 1 {
            let label = Int(active[0])
            if singletons[label] < 0 { singletons[label] = lookUpActive().set }
            return singletons[label]
        }
        switch toggledCount {
        case 1:
            let change = firstToggled
            // Both ids are below 2^31, so they pack into disjoint bits.
            let key = UInt64(previous) << 32 | UInt64(change.label) << 1 | (change.added ? 1 : 0)
            if let known = transitions[key] { return known }
            let (next, isNew) = lookUpActive()
            // A set seen for the first time is usually never seen again (unique labels);
            // caching only repeats keeps the cache small.
            if !isNew { transitions[key] = next }
            return next
        default:
            return lookUpActive().set
        }
    }

    private mutating func lookUpActive() -> (set: Int32, isNew: Bool) {
        let first = setsByHash[activeHash] ?? -1
        var candidate = first
        while candidate >= 0 {
            if matchesActive(Int(candidate)) { return (candidate, false) }
            candidate = nextWithSameHash[Int(candidate)]
        }
        let id = Int32(memberBounds.count - 1)
        members.append(contentsOf: active)
        memberBounds.append(members.count)
        nextWithSameHash.append(first)
        setsByHash[activeHash] = id
        return (id, true)
    }

    private func matchesActive(_ set: Int) -> Bool {
        let range = memberBounds[set]..<memberBounds[set + 1]
        return range.count == active.count && members[range].allSatisfy { counts[Int($0)] > 0 }
    }

    /// SplitMix64's finalizer: spreads label ids over 64 bits so XOR-ed sets rarely collide.
    private static func mix(_ label: Int32) -> UInt64 {
        var z = UInt64(label) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
