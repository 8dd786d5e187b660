import ArgumentParser
import Enforcement
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
    @Option(help: ArgumentHelp("Why, for the history and the generation's record.", valueName: "TEXT"))
    var reason: String?
    @OptionGroup var time: InstantOption

    func run() throws {
        Trace.phase("start")
        if !dryRun { KernelDataplane.probeQueueEncodingEarly() }
        let pipeline = pipeline(directory, state)
        let instant = try time.instant()
        do {
            let (plan, state) = try pipeline.plan(system: system, at: instant)
            if dryRun {
                print(try pipeline.dryRun(plan, state: state), terminator: "")
            } else {
                let options = ApplyOptions(replace: replace, force: force, confirmSeconds: confirm, reason: reason)
                print(try KernelDataplane().apply(plan, state: state, options: options).report)
            }
        } catch {
            // The dataplane records the refusals it makes; those of the plan are recorded here.
            if !dryRun, !error.isRefusal { pipeline.recordRefusal(error, purpose: "apply", reason: reason) }
            throw Output.report(error, after: "; nothing would be applied")
        }
    }
}
