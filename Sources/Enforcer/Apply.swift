import ArgumentParser
import Compiler
import Foundation
import Kernel

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile the policy for this system and load it atomically.",
        discussion: "--dry-run prints the plan (ruleset in nft syntax, pair counts, queued flows, next flips, difference from live) and needs no root.")

    @OptionGroup var directory: PolicyDirectoryOption
    @Option(help: ArgumentHelp("Where applied generations are kept (default: [state] directory of enforcer.conf, else /var/lib/enforcer).", valueName: "DIR"))
    var stateDir: String?
    @Option(help: ArgumentHelp("The inventory system this host is (default: found by this host's addresses).", valueName: "NAME"))
    var system: String?
    @Flag(help: "Print the plan instead of loading it.")
    var dryRun = false
    @Flag(help: "Replace enforcer's table in one transaction instead of sending a delta.")
    var replace = false
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
                let applier = try Applier(stateDirectory: stateDir ?? set.config.stateDirectory)
                let outcome = try applier.apply(compiled.ruleset, system: host.name, policyDirectory: directory.dir, forceReplace: replace)
                switch outcome.mode {
                case .unchanged:
                    print("unchanged: generation \(outcome.generation) is live and matches the policy; nothing sent")
                case .delta, .replaced:
                    print("applied generation \(outcome.generation) for \(host.name): \(outcome.summary) (\(outcome.messages) messages, \(outcome.bytes) bytes in one transaction; queue via \(outcome.queue.rawValue))")
                }
            } catch {
                Output.error("enforcer: \(error)")
                Output.error("enforcer: nothing was changed; the previous ruleset stays live")
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
