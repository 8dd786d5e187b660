import Compiler
import Foundation

/// JSON for programs that read enforcer's answers (`--json`).
///
/// Every `--json` document is one object with `"schema": 1` and a fixed set of keys: a value
/// that is absent is written as `null`, never left out, so a reader can tell "none" from "this
/// enforcer does not know the key". Keys are snake_case; instants are ISO 8601 in UTC. A
/// later change that renames or removes a key raises the schema number; new keys do not.
public enum JSONText {
    /// The schema number of every `--json` document.
    public static let schema = 1

    /// A JSON object from plain values, keys sorted, absent (nil) members left out.
    public static func object(_ members: [String: Any?]) -> String {
        render(members.compactMapValues { $0 })
    }

    /// A `--json` document: `members` with `"schema"` added; nil members, and nil fields of
    /// nested values, written as null.
    public static func document(_ members: [String: Any?]) -> String {
        var members = members
        members["schema"] = schema
        return render(plain(members))
    }

    private static func render(_ value: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// `value` as JSONSerialization takes it: a struct becomes an object of its stored
    /// properties (snake_case names), an optional that is nil becomes null, an instant its
    /// ISO 8601 text, an enum with a raw value that value. Building documents from the types
    /// the state directory already has keeps one description of each, and the nulls explicit.
    public static func plain(_ value: Any?) -> Any {
        guard let value else { return NSNull() }
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional { return mirror.children.first.map { plain($0.value) } ?? NSNull() }
        switch value {
        case is NSNull: return value
        case let text as String: return text
        case let flag as Bool: return flag
        case let number as Double: return number
        case let number as any BinaryInteger: return Int(clamping: number)
        case let date as Date: return ISO8601.string(date)
        case let raw as any RawRepresentable: return plain(raw.rawValue)
        case let dictionary as [String: Any]: return dictionary.mapValues(plain)
        case let array as [Any]: return array.map(plain)
        default: break
        }
        guard mirror.displayStyle == .struct || mirror.displayStyle == .class else { return String(describing: value) }
        var object: [String: Any] = [:]
        for child in mirror.children {
            guard let label = child.label else { continue }
            object[snakeCase(label)] = plain(child.value)
        }
        return object
    }

    /// `startedAt` → `started_at`.
    static func snakeCase(_ name: String) -> String {
        var out = ""
        for character in name {
            if character.isUppercase {
                if !out.isEmpty { out.append("_") }
                out += character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out
    }
}
