import Compiler
import Foundation

/// JSON as enforcer writes it for people and programs: sorted keys, instants in ISO 8601
/// (`ISO8601`), with milliseconds where a deadline must not be rounded.
enum StateJSON {
    static func encoder(pretty: Bool = true, precision: ISO8601.Precision = .seconds) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601Text(precision)
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601Text
        return decoder
    }
}
