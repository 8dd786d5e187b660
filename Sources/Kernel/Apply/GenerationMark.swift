import Compiler

/// The number of the generation a table holds, kept in the table itself: a set `generation`
/// with one element, written in the same transaction as the change it names. So the kernel,
/// not a file beside it, says which generation is live; `status` and every apply compare
/// the record with it, and an apply killed after its commit cannot leave them disagreeing
/// unnoticed.
public enum GenerationMark {
    public static let setName = "generation"

    static let set = NamedSet(name: setName, key: [.mark], comment: "the enforcer generation this table holds (see enforcer status)")

    static func element(_ number: Int) -> NFTElement {
        NFTElement(key: RulesetEncoder.hostBytes(UInt32(truncatingIfNeeded: number), width: 4), keyEnd: nil, flags: 0)
    }

    /// The set with `number` in it, for a transaction that creates `table`.
    static func create(_ number: Int, in table: Table, encoder: RulesetEncoder) -> [EncodedMessage] {
        var ids = SetIDs(startingAt: 0x7fff_0000)
        return [encoder.newSet(set, in: table, ids: &ids)] + encoder.chunks([element(number)], of: set, in: table, delete: false)
    }

    /// `previous` out and `number` in, for a delta. A table without the mark (made before
    /// enforcer kept one) refuses the delete, and the apply replaces it whole.
    static func move(from previous: Int, to number: Int, in table: Table, encoder: RulesetEncoder) -> [EncodedMessage] {
        encoder.chunks([element(previous)], of: set, in: table, delete: true) + encoder.chunks([element(number)], of: set, in: table, delete: false)
    }
}

extension KernelTable {
    /// The generation the table says it holds; nil when it has no mark or there is no table.
    public func generationMark() throws(KernelError) -> Int? {
        guard let keys = try connection.setElementKeys(family: family.number, table: name, set: GenerationMark.setName),
              keys.count == 1, keys[0].count == 4 else { return nil }
        // Host byte order, as written (little-endian on the machines enforcer runs on).
        return keys[0].reversed().reduce(0) { $0 << 8 | Int($1) }
    }
}
