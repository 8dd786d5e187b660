// Interval arithmetic over closed ranges of discrete values (addresses, ports): merging
// and the labelled sweep (`partition`) that the compiler uses to turn overlapping rule
// matches into disjoint set elements.

/// A value with discrete steps. `successor`/`predecessor` are nil at the edges of the
/// value's domain; for addresses the domain is the family, so ranges never join across
/// IPv4 and IPv6 even though IPv4 sorts just before IPv6.
public protocol DiscreteBound: Comparable, Hashable, Sendable {
    var successor: Self? { get }
    var predecessor: Self? { get }
}

/// A closed range `first...last` of discrete values within one domain.
public protocol DiscreteRange: Hashable, Sendable {
    associatedtype Bound: DiscreteBound
    var first: Bound { get }
    var last: Bound { get }
    /// Callers guarantee `first <= last`, both in one domain.
    init(first: Bound, last: Bound)
}

extension IPAddress: DiscreteBound {
    public var successor: IPAddress? {
        value == family.maxValue ? nil : IPAddress(family: family, value: value + 1)
    }

    public var predecessor: IPAddress? {
        value == 0 ? nil : IPAddress(family: family, value: value - 1)
    }
}

extension UInt16: DiscreteBound {
    public var successor: UInt16? { self == .max ? nil : self + 1 }
    public var predecessor: UInt16? { self == .min ? nil : self - 1 }
}

extension AddressRange: DiscreteRange {}
extension PortRange: DiscreteRange {}

/// Merges overlapping and adjacent ranges into the minimal sorted list.
public func merge<R: DiscreteRange>(_ ranges: [R]) -> [R] {
    let sorted = ranges.sorted { $0.first < $1.first }
    var merged: [R] = []
    merged.reserveCapacity(sorted.count)
    guard var current = sorted.first else { return [] }
    for range in sorted.dropFirst() {
        if range.first <= current.last || current.last.successor == range.first {
            if range.last > current.last { current = R(first: current.first, last: range.last) }
        } else {
            merged.append(current)
            current = range
        }
    }
    merged.append(current)
    return merged
}

/// Splits labelled ranges (any order, overlapping, any mix of domains) into disjoint,
/// sorted ranges, each with the set of labels whose ranges cover it. Adjacent pieces with
/// equal label sets are merged and uncovered gaps are left out.
///
/// One sort of the starts and one of the ends, then a sweep. Label sets are interned, so
/// every piece covered by the same labels shares one `Set` and the sweep itself allocates
/// only when it meets a label set for the first time.
public func partition<R: DiscreteRange, Label: Hashable & Sendable>(
    _ items: [(R, Label)]
) -> [(range: R, labels: Set<Label>)] {
    typealias Bound = R.Bound
    guard !items.isEmpty else { return [] }

    // Labels become small integers; consecutive items often share a label, so check the
    // previous one before hashing.
    var labels: [Label] = []
    var labelIDs: [Label: Int32] = [:]
    var starts: [(point: Bound, label: Int32)] = []
    var ends: [(point: Bound, label: Int32)] = []
    starts.reserveCapacity(items.count)
    ends.reserveCapacity(items.count)
    var previous: (label: Label, id: Int32)?
    for (range, label) in items {
        let id: Int32
        if let previous, previous.label == label {
            id = previous.id
        } else if let known = labelIDs[label] {
            id = known
        } else {
            id = Int32(labels.count)
            labels.append(label)
            labelIDs[label] = id
        }
        previous = (label, id)
        starts.append((range.first, id))
        ends.append((range.last, id))
    }
    starts.sort { $0.point < $1.point }
    ends.sort { $0.point < $1.point }

    // Sweep positions are "at p" (a start) and "just after p" (an end); at one p all
    // starts come before all ends, so a range [p, p] gets its own piece.
    var table = LabelSetTable(labelCount: labels.count)
    var pieces: [(first: Bound, last: Bound, set: Int32)] = []
    var state: Int32 = 0  // the empty set
    var previousPosition: (point: Bound, after: Bool)?
    var startIndex = 0
    var endIndex = 0
    while endIndex < ends.count {
        let position: (point: Bound, after: Bool)
        if startIndex < starts.count && starts[startIndex].point <= ends[endIndex].point {
            position = (starts[startIndex].point, false)
        } else {
            position = (ends[endIndex].point, true)
        }

        // The piece between the previous position and this one.
        if state != 0, let from = previousPosition,
           let first = from.after ? from.point.successor : from.point,
           let last = position.after ? position.point : position.point.predecessor,
           first <= last {
            if let previousPiece = pieces.last, previousPiece.set == state,
               previousPiece.last.successor == first {
                pieces[pieces.count - 1].last = last
            } else {
                pieces.append((first, last, state))
            }
        }

        if position.after {
            while endIndex < ends.count && ends[endIndex].point == position.point {
                table.remove(ends[endIndex].label)
                endIndex += 1
            }
        } else {
            while startIndex < starts.count && starts[startIndex].point == position.point {
                table.add(starts[startIndex].label)
                startIndex += 1
            }
        }
        state = table.resolve(from: state)
        previousPosition = position
    }

    var sets = [Set<Label>?](repeating: nil, count: table.stateCount)
    return pieces.map { piece in
        let labelSet: Set<Label>
        if let known = sets[Int(piece.set)] {
            labelSet = known
        } else {
            labelSet = Set(table.members(of: piece.set).map { labels[Int($0)] })
            sets[Int(piece.set)] = labelSet
        }
        return (R(first: piece.first, last: piece.last), labelSet)
    }
}

/// The interned label sets of a sweep and the multiset of labels currently active.
///
/// Each distinct set gets an id (0 is the empty set). Most sweep positions toggle one
/// label, so `(set, label, added?) -> set` transitions are cached and cost one dictionary
/// lookup; other changes find their set by an order-independent hash of the members,
/// checked exactly against the candidate's member list.
private struct LabelSetTable {
    /// How many active ranges carry each label.
    private var counts: [Int32]
    /// Active labels (count > 0), unordered, with each one's index in the list.
    private var active: [Int32] = []
    private var activeSlot: [Int32]
    /// XOR of `mix(label)` over the active labels.
    private var activeHash: UInt64 = 0
    /// Labels whose presence changed since the last `resolve`.
    private var toggled: [(label: Int32, added: Bool)] = []

    private var setMembers: [[Int32]] = [[]]
    /// First set with a given hash, and the next set sharing a hash.
    private var setsByHash: [UInt64: Int32] = [0: 0]
    private var nextWithSameHash: [Int32] = [-1]
    private var transitions: [UInt64: Int32] = [:]

    init(labelCount: Int) {
        counts = Array(repeating: 0, count: labelCount)
        activeSlot = Array(repeating: -1, count: labelCount)
    }

    var stateCount: Int { setMembers.count }

    func members(of set: Int32) -> [Int32] { setMembers[Int(set)] }

    mutating func add(_ label: Int32) {
        counts[Int(label)] += 1
        guard counts[Int(label)] == 1 else { return }
        activeSlot[Int(label)] = Int32(active.count)
        active.append(label)
        activeHash ^= Self.mix(label)
        toggled.append((label, true))
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
        toggled.append((label, false))
    }

    /// The id of the active set, given the id of the set before the latest changes.
    mutating func resolve(from previous: Int32) -> Int32 {
        defer { toggled.removeAll(keepingCapacity: true) }
        switch toggled.count {
        case 0:
            return previous
        case 1:
            let change = toggled[0]
            let key = UInt64(previous) << 32 | UInt64(change.label) << 1 | (change.added ? 1 : 0)
            if let known = transitions[key] { return known }
            let next = lookUpActive()
            transitions[key] = next
            return next
        default:
            return lookUpActive()
        }
    }

    private mutating func lookUpActive() -> Int32 {
        var candidate = setsByHash[activeHash] ?? -1
        while candidate >= 0 {
            if matchesActive(setMembers[Int(candidate)]) { return candidate }
            candidate = nextWithSameHash[Int(candidate)]
        }
        let id = Int32(setMembers.count)
        setMembers.append(active.sorted())
        nextWithSameHash.append(setsByHash[activeHash] ?? -1)
        setsByHash[activeHash] = id
        return id
    }

    private func matchesActive(_ members: [Int32]) -> Bool {
        members.count == active.count && members.allSatisfy { counts[Int($0)] > 0 }
    }

    /// SplitMix64's finalizer: spreads label ids over 64 bits so XOR-ed sets rarely collide.
    private static func mix(_ label: Int32) -> UInt64 {
        var z = UInt64(label) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
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
        var hostBits = first == 0 ? width : min(first.trailingZeroBitCount, width)
        while hostBits > 0 && last - first < family.maxValue >> (width - hostBits) {
            hostBits -= 1
        }
        let size = family.maxValue >> (width - hostBits)  // block size minus one
        if let block = AddressBlock(address: IPAddress(family: family, value: first), prefixLength: width - hostBits) {
            result.append(block)
        }
        let blockLast = first + size
        if blockLast >= last { break }
        first = blockLast + 1
    }
    return result
}
