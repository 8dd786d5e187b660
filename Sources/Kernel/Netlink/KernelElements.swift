import Compiler

/// The kernel elements of one set, in order.
///
/// A sender hosts map's elements (a key of one address and a verdict, by the million) are
/// kept packed: the keys end to end and a verdict number each, the key's bytes and a
/// 2-byte number an element instead of an `NFTElement` with arrays of its own. Other sets
/// keep a list. Either way the collection reads as `NFTElement`s.
public struct KernelElements: RandomAccessCollection, Hashable, Sendable, ExpressibleByArrayLiteral {
    private enum Storage: Sendable {
        case list([NFTElement])
        case packed(Packed)
    }

    struct Packed: Sendable {
        /// Bytes of each key.
        let width: Int
        var keys: [UInt8]
        let verdicts: [NFTVerdict?]
        var verdictIndex: [UInt16]
        /// The bytes an element with each verdict takes in a NEWSETELEM message: worked out
        /// once per map, for the many messages and batches that are cut and sized by them.
        let verdictSizes: [Int]

        init(width: Int, keys: [UInt8], verdicts: [NFTVerdict?], verdictIndex: [UInt16]) {
            self.width = width
            self.keys = keys
            self.verdicts = verdicts
            self.verdictIndex = verdictIndex
            verdictSizes = verdicts.map {
                NFTElement.estimatedSize(keyCount: width, keyEndCount: nil, flags: 0, verdict: $0, timeout: false, userDataCount: 0)
            }
        }

        var count: Int { verdictIndex.count }

        func key(at index: Int) -> ArraySlice<UInt8> { keys[(index * width)..<(index * width + width)] }
        func verdict(at index: Int) -> NFTVerdict? { verdicts[Int(verdictIndex[index])] }

        /// Byte order of the `width`-byte keys at `x[i...]` and `y[j...]`: <0, 0 or >0.
        static func compare(_ x: Span<UInt8>, _ i: Int, _ y: Span<UInt8>, _ j: Int, _ width: Int) -> Int {
            for k in 0..<width where x[i + k] != y[j + k] { return x[i + k] < y[j + k] ? -1 : 1 }
            return 0
        }

        /// Where `element` is, when it is here (the keys must be sorted): a binary search.
        func index(of element: NFTElement) -> Int? {
            // A packed element is a key and a verdict: one with more is never here.
            guard element.key.count == width, element.keyEnd == nil, element.flags == 0, element.timeoutMilliseconds == nil,
                  element.userData.isEmpty else { return nil }
            let bytes = keys.span, key = element.key.span
            var low = 0, high = count
            while low < high {
                let middle = (low + high) / 2
                if Self.compare(bytes, middle * width, key, 0, width) < 0 { low = middle + 1 } else { high = middle }
            }
            guard low < count, Self.compare(bytes, low * width, key, 0, width) == 0, verdict(at: low) == element.verdict else { return nil }
            return low
        }

        /// Whether the keys ascend strictly (no key twice).
        var isSorted: Bool {
            let bytes = keys.span
            for index in 1..<Swift.max(1, count) where Self.compare(bytes, (index - 1) * width, bytes, index * width, width) >= 0 { return false }
            return true
        }
    }

    private var storage: Storage

    public init(_ elements: [NFTElement]) { storage = .list(elements) }
    public init(arrayLiteral elements: NFTElement...) { self.init(elements) }

    /// Packed elements: `keys` holds `verdictIndex.count` keys of `width` bytes, the
    /// element at `i` has the verdict `verdicts[verdictIndex[i]]`, and nothing else.
    init(width: Int, keys: [UInt8], verdicts: [NFTVerdict?], verdictIndex: [UInt16]) {
        precondition(keys.count == width * verdictIndex.count && verdictIndex.allSatisfy { Int($0) < verdicts.count })
        storage = .packed(Packed(width: width, keys: keys, verdicts: verdicts, verdictIndex: verdictIndex))
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int {
        switch storage {
        case .list(let list): list.count
        case .packed(let packed): packed.count
        }
    }

    public subscript(position: Int) -> NFTElement {
        switch storage {
        case .list(let list): list[position]
        case .packed(let packed): NFTElement(key: Array(packed.key(at: position)), verdict: packed.verdict(at: position))
        }
    }

    // MARK: Reading without building elements

    public func key(at index: Int) -> ArraySlice<UInt8> {
        switch storage {
        case .list(let list): list[index].key[...]
        case .packed(let packed): packed.key(at: index)
        }
    }

    /// The verdict table of packed elements (each then a key and a verdict and nothing
    /// else), nil for a list; `withPackedColumns` gives each element's entry in it.
    var packedVerdicts: [NFTVerdict?]? { if case .packed(let packed) = storage { packed.verdicts } else { nil } }

    /// A packed map's columns as spans, for the encoder's loop over a million elements: the
    /// key width, the keys end to end and each element's verdict number. Read through spans,
    /// elements cost no reference counting (which threads encoding parts of one map in
    /// parallel would fight over). nil for a list.
    func withPackedColumns<R>(_ body: (_ width: Int, _ keys: Span<UInt8>, _ verdictNumbers: Span<UInt16>) -> R) -> R? {
        guard case .packed(let packed) = storage else { return nil }
        return body(packed.width, packed.keys.span, packed.verdictIndex.span)
    }

    public func keyEnd(at index: Int) -> [UInt8]? {
        if case .list(let list) = storage { list[index].keyEnd } else { nil }
    }

    public func flags(at index: Int) -> UInt32 {
        if case .list(let list) = storage { list[index].flags } else { 0 }
    }

    public func verdict(at index: Int) -> NFTVerdict? {
        switch storage {
        case .list(let list): list[index].verdict
        case .packed(let packed): packed.verdict(at: index)
        }
    }

    /// Whether the element at `index` equals `other`'s at `otherIndex`.
    public func element(at index: Int, equals other: KernelElements, at otherIndex: Int) -> Bool {
        if case .packed(let a) = storage, case .packed(let b) = other.storage {
            return a.key(at: index) == b.key(at: otherIndex) && a.verdict(at: index) == b.verdict(at: otherIndex)
        }
        return self[index] == other[otherIndex]
    }

    /// The verdicts of the elements, each once.
    public var distinctVerdicts: [NFTVerdict?] {
        switch storage {
        case .list(let list): firstOccurrences(list.lazy.map(\.verdict))
        case .packed(let packed): entriesInUse(packed.verdicts, numbers: packed.verdictIndex)
        }
    }

    /// `body` with about the bytes each element (by index) takes in a NEWSETELEM message
    /// (a packed map's from its per-verdict sizes).
    func withEncodedSizes<R>(_ body: (_ size: (Int) -> Int) -> R) -> R {
        switch storage {
        case .list(let list):
            return body { list[$0].estimatedSize }
        case .packed(let packed):
            let sizes = packed.verdictSizes, numbers = packed.verdictIndex
            return body { sizes[Int(numbers[$0])] }
        }
    }

    public mutating func removeAll(where shouldRemove: (NFTElement) -> Bool) {
        switch storage {
        case .list(var list):
            storage = .list([])
            list.removeAll(where: shouldRemove)
            storage = .list(list)
        case .packed(let packed):
            var keys: [UInt8] = [], index: [UInt16] = []
            for i in 0..<packed.count where !shouldRemove(self[i]) {
                keys += packed.key(at: i)
                index.append(packed.verdictIndex[i])
            }
            storage = .packed(Packed(width: packed.width, keys: keys, verdicts: packed.verdicts, verdictIndex: index))
        }
    }

    /// The positions of `elements` here, ascending, when the storage is packed with sorted
    /// keys and every one of them is present; nil otherwise (the caller searches itself).
    public func positions(of elements: [NFTElement]) -> [Int]? {
        guard case .packed(let packed) = storage, packed.isSorted else { return nil }
        var found: [Int] = []
        for element in elements {
            guard let index = packed.index(of: element) else { return nil }
            found.append(index)
        }
        return Set(found).sorted()
    }

    /// Removes the elements equal to any of `elements`. Packed sorted keys are searched
    /// (a binary search per element to remove), so taking a few senders out of a map of a
    /// million builds no element for the others.
    public mutating func remove(_ elements: [NFTElement]) {
        guard case .packed(var packed) = storage, packed.isSorted, elements.count <= 4096 else {
            let unwanted = Set(elements)
            removeAll { unwanted.contains($0) }
            return
        }
        let doomed = elements.compactMap { packed.index(of: $0) }
        guard !doomed.isEmpty else { return }
        storage = .list([])  // so the arrays below are uniquely referenced
        for index in Set(doomed).sorted(by: >) {
            packed.keys.removeSubrange((index * packed.width)..<((index + 1) * packed.width))
            packed.verdictIndex.remove(at: index)
        }
        storage = .packed(packed)
    }

    // MARK: Difference

    /// Elements only in `self` and only in `after`, when both are packed with one key
    /// width and sorted by key: one merge over the key bytes, verdicts compared as numbers
    /// (each side's verdict table is matched once). nil otherwise (the caller compares
    /// element by element). A one-system change to a million-sender map is the case this
    /// serves: elements are built only for what differs.
    func packedDifference(to after: KernelElements) -> (removed: [NFTElement], added: [NFTElement])? {
        guard case .packed(let a) = storage, case .packed(let b) = after.storage, a.width == b.width,
              a.isSorted, b.isSorted else { return nil }
        // Verdict numbers made comparable: each side's number → the first of b's numbers
        // with an equal verdict (-1: b has none equal; a table may hold one verdict twice).
        let sameVerdict = a.verdicts.map { verdict in b.verdicts.firstIndex(of: verdict) ?? -1 }
        let bVerdict = b.verdicts.map { verdict in b.verdicts.firstIndex(of: verdict) ?? -1 }
        let width = a.width
        let aKeys = a.keys.span, bKeys = b.keys.span
        var removed: [NFTElement] = [], added: [NFTElement] = []
        var i = 0, j = 0
        while i < a.count && j < b.count {
            let order = Packed.compare(aKeys, i * width, bKeys, j * width, width)
            if order == 0 {
                if sameVerdict[Int(a.verdictIndex[i])] != bVerdict[Int(b.verdictIndex[j])] {
                    removed.append(self[i]); added.append(after[j])
                }
                i += 1; j += 1
            } else if order < 0 {
                removed.append(self[i]); i += 1
            } else {
                added.append(after[j]); j += 1
            }
        }
        while i < a.count { removed.append(self[i]); i += 1 }
        while j < b.count { added.append(after[j]); j += 1 }
        return (removed, added)
    }

    // MARK: Hashable

    public static func == (a: KernelElements, b: KernelElements) -> Bool {
        if case .packed(let x) = a.storage, case .packed(let y) = b.storage, x.width == y.width, x.verdicts == y.verdicts {
            return x.keys == y.keys && x.verdictIndex == y.verdictIndex
        }
        return a.count == b.count && a.indices.allSatisfy { a.element(at: $0, equals: b, at: $0) }
    }

    public func hash(into hasher: inout Hasher) { hashSample(into: &hasher) }
}

extension NFTElement {
    /// About the bytes the element takes in a NEWSETELEM message.
    var estimatedSize: Int {
        Self.estimatedSize(keyCount: key.count, keyEndCount: keyEnd?.count, flags: flags, verdict: verdict,
                           timeout: timeoutMilliseconds != nil, userDataCount: userData.count)
    }

    /// The bytes of one element's attributes in a NEWSETELEM message (each attribute a
    /// 4-byte header and its data padded to 4 bytes), as libnftnl writes them.
    static func estimatedSize(keyCount: Int, keyEndCount: Int?, flags: UInt32, verdict: NFTVerdict?, timeout: Bool, userDataCount: Int) -> Int {
        func padded(_ n: Int) -> Int { (n + 3) & ~3 }
        var size = 4 + 8 + padded(keyCount)  // the element's nest; key nest and value
        if let end = keyEndCount { size += 8 + padded(end) }
        if flags != 0 { size += 8 }
        if let verdict { size += 8 + 8 + (verdict.chain.map { 4 + padded($0.utf8.count + 1) } ?? 0) }  // data and verdict nests, code, chain
        if timeout { size += 12 }
        if userDataCount > 0 { size += 4 + padded(userDataCount) }
        return size
    }
}
