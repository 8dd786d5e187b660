import ArgumentParser
import Enforcement
import Foundation
import Kernel

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile the policy for this system and load it atomically.",
        discussion: """
            --dry-run prints the plan (ruleset in nft syntax, pair counts, queued flows, next flips, difference from \
            the generation recorded as live) and needs no root; with --json, as one JSON object (schema 1, see the README). \
            A dry run exits 0 whether or not the plan would change anything; with --detailed-exitcode it exits 0 when \
            nothing would change and \(Apply.changesPending) when an apply would change what is live (1 stays an error, \
            2 a usage error). Applying needs root or CAP_NET_ADMIN. Over SSH (SSH_CONNECTION, or under sudo the sshd \
            above this process), an apply whose ruleset would cut the session is refused unless given --confirm or \
            --force, and a dry run warns on standard error.
            """)

    /// `apply --dry-run --detailed-exitcode`: the plan differs from what is live. Not 2 (as
    /// some planners use): 2 means a usage error for every enforcer command.
    static let changesPending: Int32 = 4

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Option(help: ArgumentHelp("The inventory system this host is (default: found by this host's addresses).", valueName: "NAME"))
    var system: String?
    @Flag(help: "Print the plan instead of loading it.")
    var dryRun = false
    @Flag(help: "With --dry-run: print the plan and its difference from live as one JSON object.")
    var json = false
    @Flag(help: ArgumentHelp("With --dry-run: exit \(Apply.changesPending) when the plan would change what is live, 0 when it would not."))
    var detailedExitcode = false
    @Flag(help: "Replace enforcer's table in one transaction instead of sending a delta.")
    var replace = false
    @Option(help: ArgumentHelp("Restore the previous generation unless `enforcer confirm` runs within this time: 2m, 90s, 1h30m, or a number of seconds.", valueName: "DURATION"))
    var confirm: ConfirmWindow?
    @Flag(help: "Apply even if the new ruleset would cut the SSH session this runs in (found by SSH_CONNECTION, else by the sshd above this process).")
    var force = false
    @Option(help: ArgumentHelp("Why, for the history and the generation's record.", valueName: "TEXT"))
    var reason: String?
    @OptionGroup var time: InstantOption

    func validate() throws {
        if json && !dryRun { throw ValidationError("--json goes with --dry-run (an apply prints what it did)") }
        if detailedExitcode && !dryRun { throw ValidationError("--detailed-exitcode goes with --dry-run") }
    }

    func run() throws {
        Trace.phase("start")
        // Before anything reads or writes the state directory: a refusal recorded there, or a
        // lock file made, by a process that could never have changed the kernel is noise.
        if !dryRun && !Privilege.mayAdministerNetwork() {
            throw CommandFailure("apply needs root or CAP_NET_ADMIN; nothing was changed (`enforcer apply --dry-run` shows the plan without either)")
        }
        if !dryRun { KernelDataplane.probeQueueEncodingEarly() }
        let pipeline = pipeline(directory, state)
        let instant = try time.instant()
        var changesPending = false
        do {
            let (plan, state) = try pipeline.plan(system: system, at: instant)
            if dryRun {
                let preview = try pipeline.dryRun(plan, state: state)
                print(json ? preview.json() : preview.text, terminator: json ? "\n" : "")
                changesPending = preview.changesPending
                // On standard error, so the plan and its JSON stay what scripts read.
                if let session = SSHSession.current(), session.wouldBeCut(graph: plan.graph, system: plan.host, at: plan.instant) {
                    Output.error(session.dryRunWarning)
                }
            } else {
                let options = ApplyOptions(replace: replace, force: force, confirmSeconds: confirm?.seconds, reason: reason)
                print(try KernelDataplane().apply(plan, state: state, options: options).report)
            }
        } catch {
            // The dataplane records the refusals it makes; those of the plan are recorded here.
            if !dryRun, !error.isRefusal { pipeline.recordRefusal(error, purpose: "apply", reason: reason) }
            throw Output.report(error, after: "; nothing would be applied")
        }
        if detailedExitcode && changesPending { throw ExitCode(Apply.changesPending) }
    }
}
