// What the collections stored either by column or as a list (`SetElements` here,
// `KernelElements` in the kernel module) share.

extension RandomAccessCollection where Element: Hashable, Index == Int {
    /// A hash for a collection whose `==` compares elements whatever the storage: its
    /// count, ends and middle, so hashing a million elements touches three.
    public func hashSample(into hasher: inout Hasher) {
        hasher.combine(count)
        if !isEmpty {
            hasher.combine(self[startIndex])
            hasher.combine(self[startIndex + count / 2])
            hasher.combine(self[endIndex - 1])
        }
    }
}

/// The entries of `table` that some number in `numbers` points at, each once, in table order.
public func entriesInUse<Entry>(_ table: [Entry], numbers: [UInt16]) -> [Entry] {
    var used = [Bool](repeating: false, count: table.count)
    for number in numbers { used[Int(number)] = true }
    return table.indices.filter { used[$0] }.map { table[$0] }
}

/// `values` without repeats, each where it first appears.
public func firstOccurrences<Value: Hashable>(_ values: some Sequence<Value>) -> [Value] {
    var seen = Set<Value>()
    return values.filter { seen.insert($0).inserted }
}
