import Compiler

/// The kernel elements of one set, in order.
///
/// A sender hosts map's elements (a key of one address and a verdict, by the million) are
/// kept packed: the keys end to end and a verdict number each, about 6 bytes an element
/// instead of some 110 as a list of `NFTElement`s. Other sets keep a list. Either way the
/// collection reads as `NFTElement`s.
public struct KernelElements: RandomAccessCollection, Hashable, Sendable, ExpressibleByArrayLiteral {
    private enum Storage: Sendable {
        case list([NFTElement])
        case packed(Packed)
    }

    struct Packed: Sendable {
        /// Bytes of each key.
        var width: Int
        var keys: [UInt8]
        var verdicts: [NFTVerdict?]
        var verdictIndex: [UInt16]

        var count: Int { verdictIndex.count }

        func key(at index: Int) -> ArraySlice<UInt8> { keys[(index * width)..<(index * width + width)] }
        func verdict(at index: Int) -> NFTVerdict? { verdicts[Int(verdictIndex[index])] }
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

    /// About the bytes the element at `index` takes in a NEWSETELEM message.
    func encodedSize(at index: Int) -> Int {
        switch storage {
        case .list(let list): RulesetEncoder.estimatedSize(list[index])
        case .packed(let packed): RulesetEncoder.estimatedSize(keyCount: packed.width, keyEndCount: nil, flags: 0,
                                                               verdict: packed.verdict(at: index), timeout: false, userDataCount: 0)
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

    // MARK: Hashable

    public static func == (a: KernelElements, b: KernelElements) -> Bool {
        if case .packed(let x) = a.storage, case .packed(let y) = b.storage, x.width == y.width, x.verdicts == y.verdicts {
            return x.keys == y.keys && x.verdictIndex == y.verdictIndex
        }
        return a.count == b.count && a.indices.allSatisfy { a.element(at: $0, equals: b, at: $0) }
    }

    public func hash(into hasher: inout Hasher) { hashSample(into: &hasher) }
}
