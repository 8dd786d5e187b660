/// The elements of a set or map, in order.
///
/// A sender hosts map holds up to millions of single addresses, each mapped to one of a few
/// verdicts. As a list of `SetElement`s each address carries arrays of its own (its key);
/// kept by column it costs the address's 4 or 16 bytes and a 2-byte verdict number. Elements are stored by column while every one of them is such an
/// address (no range, timeout or comment), and as a list from the first one that is not.
/// Either way the collection reads as `SetElement`s.
public struct SetElements: RandomAccessCollection, Hashable, Sendable, ExpressibleByArrayLiteral, Codable {
    private enum Storage: Sendable {
        case list([SetElement])
        case hosts(HostColumns)
    }

    private var storage: Storage

    public init() { storage = .list([]) }

    public init(_ elements: some Sequence<SetElement>) {
        self.init()
        for element in elements { append(element) }
    }

    public init(arrayLiteral elements: SetElement...) { self.init(elements) }

    /// Elements stored by column (see `HostColumns`); nil unless `words` holds
    /// `verdictIndex.count` addresses, each number is a position in `verdicts` and the
    /// verdicts are distinct.
    public init?(family: IPFamily, words: [UInt32], verdicts: [Verdict?], verdictIndex: [UInt16]) {
        guard let columns = HostColumns(family: family, words: words, verdicts: verdicts, verdictIndex: verdictIndex) else { return nil }
        storage = columns.count == 0 ? .list([]) : .hosts(columns)
    }

    /// Elements stored by `columns` (a list while they are none).
    init(_ columns: HostColumns) {
        storage = columns.count == 0 ? .list([]) : .hosts(columns)
    }

    /// The single addresses and their verdicts, when the elements are stored by column.
    public var hostColumns: HostColumns? {
        if case .hosts(let columns) = storage { columns } else { nil }
    }

    /// The same as appending `SetElement([.addresses(AddressRange(address))], verdict: verdict)`,
    /// without building that element while the storage is by column.
    public mutating func appendHost(_ address: IPAddress, verdict: Verdict?) {
        if case .hosts(var columns) = storage, address.family == columns.family {
            storage = .list([])  // keeps `columns` uniquely referenced
            if columns.append(address, verdict) { storage = .hosts(columns); return }
            storage = .hosts(columns)
        }
        append(SetElement([.addresses(AddressRange(address))], verdict: verdict))
    }

    public mutating func append(_ element: SetElement) {
        switch storage {
        case .list(var list):
            if list.isEmpty, let address = HostColumns.address(of: element) {
                var columns = HostColumns(family: address.family)
                if columns.append(address, element.verdict) {
                    storage = .hosts(columns)
                    return
                }
            }
            storage = .list([])  // keeps `list` uniquely referenced
            list.append(element)
            storage = .list(list)
        case .hosts(var columns):
            storage = .list([])
            if let address = HostColumns.address(of: element), address.family == columns.family, columns.append(address, element.verdict) {
                storage = .hosts(columns)
            } else {
                var list = Array(columns.elements)
                list.append(element)
                storage = .list(list)
            }
        }
    }

    // MARK: Collection

    public var startIndex: Int { 0 }
    public var endIndex: Int {
        switch storage {
        case .list(let list): list.count
        case .hosts(let columns): columns.count
        }
    }

    public subscript(position: Int) -> SetElement {
        switch storage {
        case .list(let list): list[position]
        case .hosts(let columns): columns[position]
        }
    }

    /// The verdicts the elements carry, each once.
    public var distinctVerdicts: [Verdict?] {
        switch storage {
        case .list(let list): firstOccurrences(list.lazy.map(\.verdict))
        case .hosts(let columns): columns.verdicts.indices.filter { columns.uses[$0] > 0 }.map { columns.verdicts[$0] }
        }
    }

    /// How many elements carry each verdict that `wanted` names (others are not counted):
    /// by column this reads the columns' count of each verdict, not the elements.
    public func counts(of wanted: Set<Verdict?>) -> [Verdict?: Int] {
        var out: [Verdict?: Int] = [:]
        switch storage {
        case .list(let list):
            for element in list where wanted.contains(element.verdict) { out[element.verdict, default: 0] += 1 }
        case .hosts(let columns):
            for verdict in wanted {
                if let number = columns.number(of: verdict), columns.uses[Int(number)] > 0 { out[verdict] = Int(columns.uses[Int(number)]) }
            }
        }
        return out
    }

    /// The elements whose verdict `wanted` holds, in order: by column one pass over the
    /// two-byte verdict numbers, an element built only for each one found.
    public func elements(withVerdictIn wanted: Set<Verdict?>) -> [SetElement] {
        switch storage {
        case .list(let list):
            return list.filter { wanted.contains($0.verdict) }
        case .hosts(let columns):
            let numbers = Set(columns.verdicts.indices.filter { wanted.contains(columns.verdicts[$0]) }.map(UInt16.init))
            guard !numbers.isEmpty else { return [] }
            return columns.verdictIndex.indices.filter { numbers.contains(columns.verdictIndex[$0]) }.map { columns[$0] }
        }
    }

    // MARK: Hashable, Codable

    public static func == (a: SetElements, b: SetElements) -> Bool {
        switch (a.storage, b.storage) {
        case let (.hosts(x), .hosts(y)): return x.sameElements(as: y)
        // Arrays compare equal at once when they share their storage, as the class maps the
        // incremental compile keeps between edits do.
        case let (.list(x), .list(y)): return x == y
        default: return a.count == b.count && a.elementsEqual(b)
        }
    }

    public func hash(into hasher: inout Hasher) { hashSample(into: &hasher) }

    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        self.init()
        while !container.isAtEnd { append(try container.decode(SetElement.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for element in self { try container.encode(element) }
    }
}

/// Single addresses of one family and a verdict for each, by column (see `SetElements`).
public struct HostColumns: Sendable {
    public let family: IPFamily
    /// The addresses as 32-bit words, most significant first: one per IPv4 address, four per IPv6 address.
    public private(set) var words: [UInt32] = []
    /// The distinct verdicts, in order of first use.
    public private(set) var verdicts: [Verdict?] = []
    /// For each address, its verdict's position in `verdicts`.
    public private(set) var verdictIndex: [UInt16] = []
    private var verdictNumbers: [Verdict?: UInt16] = [:]
    /// How many addresses carry each verdict of `verdicts`, kept as they come and go: the
    /// applier asks which class chains senders still jump to on every delta, and a pass over
    /// a million verdict numbers to answer it would cost what the delta itself costs.
    private(set) var uses: [Int32] = []

    init(family: IPFamily) { self.family = family }

    init?(family: IPFamily, words: [UInt32], verdicts: [Verdict?], verdictIndex: [UInt16]) {
        self.family = family
        guard words.count == verdictIndex.count * (family == .v4 ? 1 : 4), verdicts.count <= Int(UInt16.max) + 1,
              verdictIndex.allSatisfy({ Int($0) < verdicts.count }) else { return nil }
        for (number, verdict) in verdicts.enumerated() {
            guard verdictNumbers.updateValue(UInt16(number), forKey: verdict) == nil else { return nil }
        }
        self.words = words
        self.verdicts = verdicts
        self.verdictIndex = verdictIndex
        uses = [Int32](repeating: 0, count: verdicts.count)
        for number in verdictIndex { uses[Int(number)] += 1 }
    }

    public var wordsPerAddress: Int { family == .v4 ? 1 : 4 }
    public var count: Int { verdictIndex.count }

    static func address(of element: SetElement) -> IPAddress? {
        guard element.key.count == 1, case .addresses(let range) = element.key[0], range.first == range.last,
              element.timeout == nil, element.comment == nil else { return nil }
        return range.first
    }

    /// False (and nothing added) when `verdict` would be the 65,537th distinct one.
    mutating func append(_ address: IPAddress, _ verdict: Verdict?) -> Bool {
        // Neighbouring addresses mostly share a verdict: comparing with the last one is
        // cheaper than hashing it.
        if let last = verdictIndex.last, verdicts[Int(last)] == verdict {
            append(address, number: last)
            return true
        }
        guard let number = number(for: verdict) else { return false }
        append(address, number: number)
        return true
    }

    /// `verdict`'s number in `verdicts`, added if new; nil when it would be the 65,537th.
    mutating func number(for verdict: Verdict?) -> UInt16? {
        if let known = verdictNumbers[verdict] { return known }
        guard verdicts.count <= Int(UInt16.max) else { return nil }
        let number = UInt16(verdicts.count)
        verdictNumbers[verdict] = number
        verdicts.append(verdict)
        uses.append(0)
        return number
    }

    /// `verdict`'s number in `verdicts`, if it has one.
    func number(of verdict: Verdict?) -> UInt16? { verdictNumbers[verdict] }

    /// `address` with the verdict numbered `number` (from `number(for:)`).
    mutating func append(_ address: IPAddress, number: UInt16) {
        if family == .v4 {
            words.append(UInt32(truncatingIfNeeded: address.value))
        } else {
            for shift in stride(from: 96, through: 0, by: -32) { words.append(UInt32(truncatingIfNeeded: address.value >> shift)) }
        }
        verdictIndex.append(number)
        uses[Int(number)] += 1
    }

    public func address(at index: Int) -> IPAddress {
        if family == .v4 { return IPAddress(v4: words[index]) }
        var value: UInt128 = 0
        for word in words[(index * 4)..<(index * 4 + 4)] { value = value << 32 | UInt128(word) }
        return IPAddress(v6: value)
    }

    public func verdict(at index: Int) -> Verdict? { verdicts[Int(verdictIndex[index])] }

    subscript(index: Int) -> SetElement {
        SetElement([.addresses(AddressRange(address(at: index)))], verdict: verdict(at: index))
    }

    var elements: some Sequence<SetElement> { (0..<count).lazy.map { self[$0] } }

    func sameElements(as other: HostColumns) -> Bool {
        guard family == other.family, words == other.words, count == other.count else { return false }
        if verdicts == other.verdicts { return verdictIndex == other.verdictIndex }
        return (0..<count).allSatisfy { verdict(at: $0) == other.verdict(at: $0) }
    }
}

// MARK: - Edits in place of a rebuild

extension HostColumns {
    /// The address at `index` as a number, for searching the (sorted) columns.
    func value(at index: Int) -> UInt128 {
        if family == .v4 { return UInt128(words[index]) }
        let base = index * 4
        return UInt128(words[base]) << 96 | UInt128(words[base + 1]) << 64 | UInt128(words[base + 2]) << 32 | UInt128(words[base + 3])
    }

    /// The first index at or after `start` whose address is at least `value` (the columns
    /// sorted by address).
    func lowerBound(_ value: UInt128, from start: Int) -> Int {
        var low = start, high = count
        while low < high {
            let middle = (low + high) / 2
            if self.value(at: middle) < value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// These columns (sorted by address) without the addresses `removed` and with `added`,
    /// both sorted: unchanged runs are copied whole, so a change of a few addresses among a
    /// million costs a copy of the columns, not a rebuild element by element. An address in
    /// both lists changes its verdict. Nil when an address to remove is not there, or a
    /// verdict would be the 65,537th.
    func replacing(removed: [UInt128], added: [(value: UInt128, verdict: Verdict?)]) -> HostColumns? {
        var out = HostColumns(family: family)
        out.verdicts = verdicts
        out.verdictNumbers = verdictNumbers
        out.uses = uses
        let per = wordsPerAddress
        let newCount = count - removed.count + added.count
        out.words.reserveCapacity(max(0, newCount) * per)
        out.verdictIndex.reserveCapacity(max(0, newCount))
        var next = 0, r = 0, a = 0
        func copy(upTo end: Int) {
            guard end > next else { return }
            out.words.append(contentsOf: words[(next * per)..<(end * per)])
            out.verdictIndex.append(contentsOf: verdictIndex[next..<end])
            next = end
        }
        while r < removed.count || a < added.count {
            if r < removed.count && (a == added.count || removed[r] <= added[a].value) {
                let position = lowerBound(removed[r], from: next)
                guard position < count, value(at: position) == removed[r] else { return nil }
                copy(upTo: position)
                out.uses[Int(verdictIndex[position])] -= 1
                next = position + 1
                r += 1
            } else {
                copy(upTo: lowerBound(added[a].value, from: next))
                guard let number = out.number(for: added[a].verdict) else { return nil }
                out.append(IPAddress(family: family, value: added[a].value), number: number)
                a += 1
            }
        }
        copy(upTo: count)
        return out
    }

    /// How many verdicts the table holds, used or not.
    var verdictTableCount: Int { verdicts.count }

    /// The same elements with a verdict table of only the verdicts in use: removing classes
    /// leaves their verdicts behind, and the table has room for 65,536.
    func compacted() -> HostColumns {
        var renumbered = [UInt16](repeating: 0, count: verdicts.count)
        var out = HostColumns(family: family)
        for old in verdicts.indices where uses[old] > 0 {
            renumbered[old] = out.number(for: verdicts[old])!
            out.uses[Int(renumbered[old])] = uses[old]
        }
        out.words = words
        out.verdictIndex = verdictIndex.map { renumbered[Int($0)] }
        return out
    }
}
