import Compiler
import Foundation

/// The JSON of a table as the record stores it (`generation.table_json`): the text
/// `JSONEncoder` with sorted keys makes of the whole table, put together from the text of
/// each chain and set. The daemon records generation after generation of a table whose
/// chains are thousands and of which a one-system change rewrites a few; a piece's text is
/// kept while its chain or set stays equal, so only what changed is encoded again.
struct TableText {
    private var chains: [String: (piece: Chain, text: String)] = [:]
    private var sets: [String: (piece: NamedSet, text: String)] = [:]
    /// Chains and sets encoded by the last call, the others' text being kept (for tests).
    private(set) var encodedLast = 0

    /// `table`'s JSON; keeps the text of its pieces (and of no other table's) for the next call.
    mutating func text(of table: Table, encoder: JSONEncoder) throws -> String {
        func json<Value: Encodable>(_ value: Value) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        var encoded = 0
        /// Each piece's text, the kept one while the piece is equal; `known` becomes this table's.
        func texts<Piece: Encodable & Equatable>(_ pieces: [Piece], named name: (Piece) -> String,
                                                 known: inout [String: (piece: Piece, text: String)]) throws -> String {
            var out: [String] = [], kept: [String: (piece: Piece, text: String)] = [:]
            out.reserveCapacity(pieces.count)
            for piece in pieces {
                var entry = known[name(piece)]
                if entry == nil || entry!.piece != piece {
                    entry = (piece, try json(piece))
                    encoded += 1
                }
                out.append(entry!.text)
                kept[name(piece)] = entry
            }
            known = kept
            return out.joined(separator: ",")
        }
        let chainText = try texts(table.chains, named: \.name, known: &chains)
        let setText = try texts(table.sets, named: \.name, known: &sets)
        encodedLast = encoded
        // The keys in the order `.sortedKeys` writes them.
        return "{\"chains\":[" + chainText + "],\"counters\":" + (try json(table.counters)) + ",\"family\":" + (try json(table.family))
            + ",\"name\":" + (try json(table.name)) + ",\"sets\":[" + setText + "]}"
    }
}
