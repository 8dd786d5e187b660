import ArgumentParser
import Enforcement
import Foundation
import Kernel

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what happened to the enforced state: applies, reloads, flips, refusals, rollbacks, confirms, overrides, drift, flushes.",
        discussion: "Reads the state database (state.sqlite in the state directory; its schema is in docs/STATE.md, for sqlite3). Oldest first. With --generations, the kept generations: when, from which source (its SHA-256), by whom and why.")

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Option(help: ArgumentHelp("Show only the last N.", valueName: "N")) var limit: Int?
    @Option(help: ArgumentHelp("Show only events of this kind (repeatable): \(HistoryEvent.Kind.allCases.map(\.rawValue).joined(separator: ", ")).",
                               valueName: "KIND"))
    var kind: [String] = []
    @Option(help: ArgumentHelp("Show only events of this generation.", valueName: "GEN")) var generation: Int?
    @Flag(help: "List the kept generations instead of the events.") var generations = false
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        for each in kind where HistoryEvent.Kind(rawValue: each) == nil {
            throw ValidationError("unknown kind '\(each)'; kinds: \(HistoryEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let report: HistoryReport
        do {
            report = try HistoryReport(state: pipeline(directory, state).state(), limit: limit,
                                       kinds: Set(kind.compactMap(HistoryEvent.Kind.init(rawValue:))), generation: generation, generations: generations)
        } catch {
            throw Output.report(error)
        }
        if json { print(try report.json()) } else { for line in report.lines() { print(line) } }
    }
}
