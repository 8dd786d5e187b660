import ArgumentParser
import Compiler
import Foundation
import Kernel

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile the policy for this system and load it atomically.",
        discussion: "--dry-run prints the plan (ruleset in nft syntax, pair counts, queued flows, next flips, difference from live) and needs no root.")

    @OptionGroup var directory: PolicyDirectoryOption
    @Option(help: ArgumentHelp("The inventory system this host is (default: found by this host's addresses).", valueName: "NAME"))
    var system: String?
    @Flag(help: "Print the plan instead of loading it.")
    var dryRun = false
    @OptionGroup var time: InstantOption

    func run() throws {
        let set = try loadPolicy(directory, quietWarnings: true)
        let host = try resolveSystem(system, in: set)
        let instant = try time.instant()
        let graph = AccessGraph(set)
        let failures = ExpectationRunner(graph: graph, now: instant).run()
        if !failures.isEmpty {
            Output.print(failures)
            Output.error("enforcer: \(failures.count) expectation\(failures.count == 1 ? "" : "s") failed; nothing would be applied")
            throw ExitCode(1)
        }
        if !dryRun {
            let compiled: CompiledHost
            do { compiled = try HostCompiler(graph: graph, system: host, at: instant).compile() } catch {
                Output.error("enforcer: \(error)")
                throw ExitCode(1)
            }
            do {
                let connection = try NFTablesConnection()
                let queue = try KernelTable.probeQueueEncoding(connection: connection)
                let table = KernelTable(family: compiled.ruleset.table.family, name: compiled.ruleset.table.name, connection: connection)
                let report = try table.replace(with: compiled.ruleset, comment: "enforcer: \(host.name)", encoder: RulesetEncoder(queue: queue))
                print("applied: table \(compiled.ruleset.table.family.rawValue) \(compiled.ruleset.table.name) for \(host.name) (\(report.messages) messages, \(report.bytes) bytes, queue via \(queue.rawValue))")
            } catch {
                Output.error("enforcer: \(error); the previous ruleset stays live")
                throw ExitCode(1)
            }
            return
        }
        do {
            let compiled = try HostCompiler(graph: graph, system: host, at: instant).compile()
            let plan = try Plan(graph: graph, compiled: compiled, live: nil,
                                liveDescription: "no generation applied by enforcer in \(set.config.stateDirectory)")
            print(plan.render(directory: directory.dir), terminator: "")
        } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
    }
}
