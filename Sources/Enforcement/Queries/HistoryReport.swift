import Compiler
import Foundation
import Kernel

/// `enforcer history`: the events of the state database, oldest first, or the generations it
/// keeps (`--generations`), as lines or one JSON object.
public struct HistoryReport {
    public let events: [HistoryEvent]
    public let generations: [GenerationInfo]
    public let live: Int?

    /// The last `limit` events of `kinds` (all when empty), of one generation if given; with
    /// `generations`, every kept generation instead.
    public init(state: StateDirectory, limit: Int?, kinds: Set<HistoryEvent.Kind>, generation: Int?, generations: Bool) throws(EnforcementError) {
        live = state.generations.currentNumber()
        if generations {
            events = []
            var kept: [GenerationInfo] = []
            for number in state.generations.numbers() {
                do { kept.append(try state.generations.info(number)) } catch { throw .refused(["enforcer: \(error)"]) }
            }
            self.generations = limit.map { Array(kept.suffix($0)) } ?? kept
        } else {
            events = try state.history(limit: limit, kinds: kinds, generation: generation)
            self.generations = []
        }
    }

    public func lines() -> [String] {
        if !generations.isEmpty {
            return generations.map { info in
                var line = "generation \(info.number)\(info.number == live ? " (live)" : "")  \(ISO8601.string(info.appliedAt))  \(info.system)  \(info.summary)"
                if let digest = info.sourceDigest { line += "\n    source \(info.policyDirectory) sha256 \(digest)" }
                if let actor = info.actor { line += "\n    by \(actor)" + (info.reason.map { ": \($0)" } ?? "") }
                return line
            }
        }
        if events.isEmpty { return ["no events on record"] }
        return events.map { event in
            let kind = event.kind.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0)
            let generation = event.generation.map { "gen \($0)" } ?? "-"
            var line = "\(ISO8601.string(event.at))  \(kind)  \(generation.padding(toLength: 8, withPad: " ", startingAt: 0))  \(event.summary)"
            if let actor = event.actor { line += "\n    by \(actor)" + (event.reason.map { ": \($0)" } ?? "") }
            for detail in event.detail?.split(separator: "\n") ?? [] { line += "\n    " + detail }
            return line
        }
    }

    /// `schema` and the three keys always there, null when absent, as every `--json`
    /// document (`JSONText`); the events' and generations' own fields are the state
    /// database's records.
    private struct JSONForm: Encodable {
        var events: [HistoryEvent]?
        var generations: [GenerationInfo]?
        var live: Int?

        enum CodingKeys: String, CodingKey { case schema, events, generations, live }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(JSONText.schema, forKey: .schema)
            if let events { try container.encode(events, forKey: .events) } else { try container.encodeNil(forKey: .events) }
            if let generations { try container.encode(generations, forKey: .generations) } else { try container.encodeNil(forKey: .generations) }
            if let live { try container.encode(live, forKey: .live) } else { try container.encodeNil(forKey: .live) }
        }
    }

    public func json() throws -> String {
        let form = generations.isEmpty ? JSONForm(events: events, generations: nil, live: live) : JSONForm(events: nil, generations: generations, live: live)
        return String(decoding: try StateJSON.encoder(precision: .milliseconds).encode(form), as: UTF8.self)
    }
}
