import ArgumentParser
import Compiler
import Foundation
import Kernel

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile the policy for this system and load it atomically.",
        discussion: "--dry-run prints the plan (ruleset in nft syntax, pair counts, queued flows, next flips, difference from live) and needs no root.")

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Option(help: ArgumentHelp("The inventory system this host is (default: found by this host's addresses).", valueName: "NAME"))
    var system: String?
    @Flag(help: "Print the plan instead of loading it.")
    var dryRun = false
    @Flag(help: "Replace enforcer's table in one transaction instead of sending a delta.")
    var replace = false
    @Option(help: ArgumentHelp("Restore the previous generation unless `enforcer confirm` runs within this many seconds.", valueName: "SECONDS"))
    var confirm: Int?
    @Flag(help: "Apply even if the new ruleset would cut the SSH session this runs in.")
    var force = false
    @OptionGroup var time: InstantOption

    func run() throws {
        Trace.phase("start")
        // Which queue encoding the kernel takes is asked on another core while the policy
        // loads (the load waits for the answer; without root the load asks and reports).
        if !dryRun { _ = Concurrently { try? KernelTable.queueEncoding(connection: NFTablesConnection()) } }
        let set = try loadPolicy(directory, quietWarnings: true)
        Trace.phase("policy loaded")
        let host = try resolveSystem(system, in: set)
        let instant = try time.instant()
        // Policy ids live in the state directory so a flow's mark keeps its meaning across reloads.
        let store = GenerationStore(directory: state.stateDir ?? set.config.stateDirectory)
        let ids = store.policyIDs().assigning(set.policies.map(\.name))
        // Expectations test the files; the ruleset also honours `enforcer policy enable|disable`.
        // They run on another core while the ruleset compiles, and a failure still stops
        // everything before the kernel is asked (or a compile error is reported).
        let graph = OverrideFile.graph(set, stateDirectory: store.directory, at: instant, ids: ids)
        Trace.phase("access graph")
        let expectations = Concurrently { ExpectationRunner(graph: AccessGraph(set, ids: ids), now: instant).run() }
        let compiled = Result { () throws(CompileError) in try HostCompiler(graph: graph, system: host, at: instant).compile() }
        Trace.phase("compiled")
        let failures = expectations.value
        if !failures.isEmpty {
            Output.print(failures)
            Output.error("enforcer: \(failures.count) expectation\(failures.count == 1 ? "" : "s") failed; nothing would be applied")
            throw ExitCode(1)
        }
        Trace.phase("expectations")
        if !dryRun {
            do {
                let compiled = try compiled.get()
                print(try Self.load(graph: graph, host: host, instant: instant, compiled: compiled, store: store, ids: ids,
                                    policyDirectory: directory.dir, replace: replace, force: force, confirm: confirm))
            } catch let error as ApplyFailure {
                for line in error.lines { Output.error(line) }
                throw ExitCode(1)
            } catch {
                Output.error("enforcer: \(error)")
                throw ExitCode(1)
            }
            return
        }
        do {
            let compiled = try compiled.get()
            // Without root the kernel cannot be asked; the state directory says what was applied last.
            var live: Ruleset?
            var liveDescription = "no generation applied by enforcer in \(store.directory)"
            if let current = store.currentNumber(), let ruleset = try? store.ruleset(current), let info = try? store.info(current) {
                live = ruleset
                liveDescription = "generation \(current), applied \(ISO8601DateFormatter().string(from: info.appliedAt)) for \(info.system), as recorded in \(store.directory)"
            }
            let plan = try Plan(graph: graph, compiled: compiled, live: live, liveDescription: liveDescription)
            print(plan.render(directory: directory.dir), terminator: "")
        } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
    }
    /// Loads the ruleset compiled for `host` (compiling it unless the caller already has) in one
    /// transaction (a delta against the live generation), guarding the SSH session; `run` uses
    /// it too. Returns what to report.
    static func load(graph: AccessGraph, host: SystemDefinition, instant: Date, compiled precompiled: CompiledHost? = nil,
                     store: GenerationStore, ids: PolicyIDs,
                     policyDirectory: String, replace: Bool, force: Bool, confirm: Int?) throws(ApplyFailure) -> String {
        let compiled: CompiledHost
        if let precompiled { compiled = precompiled } else {
            do { compiled = try HostCompiler(graph: graph, system: host, at: instant).compile() } catch {
                throw ApplyFailure(lines: ["enforcer: \(error)"])
            }
            Trace.phase("compiled")
        }
        if !force, let session = SSHSession.current(), session.wouldBeCut(graph: graph, system: host, at: instant) {
            throw ApplyFailure(lines: ["enforcer: refusing to apply: this ruleset would cut the SSH session it runs in (\(session)); use --force to apply anyway"])
        }
        do {
            try store.recordPolicyIDs(ids)
            let previous = store.currentNumber()
            var applier = try Applier(stateDirectory: store.directory)
            applier.recentFrom = graph.policySet.config.recentFrom
            // Timed grants live outside the generation. A replaced table gets them in its own
            // transaction (it starts with none, and their flows must not see it so); a table
            // kept has them re-asserted after, and those that no longer hold taken out.
            let grants = compiled.timedGrants.map { (mark: $0.mark, until: $0.until) }
            let outcome = try applier.apply(compiled.ruleset, system: host.name, policyDirectory: policyDirectory, forceReplace: replace,
                                            timedGrants: grants)
            if outcome.mode != .replaced {
                let layout = MarkLayout(mask: graph.policySet.config.markMask)
                let timed = Set(compiled.timedGrants.map(\.id))
                let revoked = graph.entries.filter { $0.policy.schedule.override != nil && !timed.contains($0.id) }.map { layout.policyMark($0.id) }
                try applier.setTimedGrants(grants, revoked: revoked, table: graph.policySet.config.table)
                Trace.phase("timed grants")
            }
            switch outcome.mode {
            case .unchanged:
                return "unchanged: generation \(outcome.generation) is live and matches the policy; nothing sent"
            case .delta, .replaced:
                var report = "applied generation \(outcome.generation) for \(host.name): \(outcome.summary) (\(outcome.messages) messages, \(outcome.bytes) bytes in one transaction of \(String(format: "%.1f", outcome.transactionSeconds * 1000)) ms, \(String(format: "%.1f", outcome.kernelSeconds * 1000)) ms of it in the kernel; queue via \(outcome.queue.rawValue))"
                if let seconds = confirm {
                    try Watchdog.arm(store: store, generation: outcome.generation, previous: previous, seconds: seconds)
                    report += "\nrun `enforcer confirm` within \(seconds) s, or \(previous.map { "generation \($0)" } ?? "the state before (no enforcer table)") is restored"
                }
                return report
            }
        } catch {
            throw ApplyFailure(lines: ["enforcer: \(error)", "enforcer: nothing was changed; the previous ruleset stays live"])
        }
    }
}

/// An apply that did not happen, and why (the previous ruleset stays live).
struct ApplyFailure: Error, CustomStringConvertible {
    var lines: [String]
    var description: String { lines.joined(separator: "\n") }
}
