import Compiler
import Foundation

/// The JSON of a table as the record stores it (`generation.table_json`): the text
/// `JSONEncoder` with sorted keys makes of the whole table, put together from the text of
/// each chain and set. The daemon records generation after generation of a table whose
/// chains are thousands and of which a one-system change rewrites a few; a piece's text is
/// kept while its chain or set stays equal, so only what changed is encoded again.
struct TableText {
    private var chains: [String: (chain: Chain, text: String)] = [:]
    private var sets: [String: (set: NamedSet, text: String)] = [:]
    /// Chains and sets encoded by the last call, the others' text being kept (for tests).
    private(set) var encodedLast = 0

    /// `table`'s JSON; keeps the text of its pieces (and of no other table's) for the next call.
    mutating func text(of table: Table, encoder: JSONEncoder) throws -> String {
        func json<Value: Encodable>(_ value: Value) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        var encoded = 0
        var chainTexts: [String] = [], keptChains: [String: (chain: Chain, text: String)] = [:]
        chainTexts.reserveCapacity(table.chains.count)
        for chain in table.chains {
            var piece = chains[chain.name]
            if piece == nil || piece!.chain != chain {
                piece = (chain, try json(chain))
                encoded += 1
            }
            chainTexts.append(piece!.text)
            keptChains[chain.name] = piece
        }
        var setTexts: [String] = [], keptSets: [String: (set: NamedSet, text: String)] = [:]
        setTexts.reserveCapacity(table.sets.count)
        for set in table.sets {
            var piece = sets[set.name]
            if piece == nil || piece!.set != set {
                piece = (set, try json(set))
                encoded += 1
            }
            setTexts.append(piece!.text)
            keptSets[set.name] = piece
        }
        chains = keptChains
        sets = keptSets
        encodedLast = encoded
        // The keys in the order `.sortedKeys` writes them.
        return "{\"chains\":[" + chainTexts.joined(separator: ",") + "],\"counters\":" + (try json(table.counters))
            + ",\"family\":" + (try json(table.family)) + ",\"name\":" + (try json(table.name)) + ",\"sets\":[" + setTexts.joined(separator: ",") + "]}"
    }
}
