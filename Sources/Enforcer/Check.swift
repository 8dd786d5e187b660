import ArgumentParser
import Compiler
import Foundation

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parse and validate the policy directory and run its expectations.",
        discussion: "Diagnostics are printed as file:line:col: error: message. Exits 1 on any error.")

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var time: InstantOption

    func run() throws {
        let set = try loadPolicy(directory)
        let graph = AccessGraph(set)
        let failures = ExpectationRunner(graph: graph, now: try time.instant()).run()
        Output.print(failures)
        if !failures.isEmpty {
            Output.error("enforcer: \(failures.count) expectation\(failures.count == 1 ? "" : "s") failed")
            throw ExitCode(1)
        }
        let lists = set.webRules.reduce(0) { $0 + $1.domains.reduce(0) { $0 + $1.count } }
        print("ok: \(set.files.count) files, \(set.systems.count) systems, \(set.policies.count) policies, \(set.webRules.count) web rules (\(lists) domains), \(set.expectations.count) expectations passed")
    }
}
