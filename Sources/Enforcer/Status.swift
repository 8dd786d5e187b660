import ArgumentParser
import Compiler
import Enforcement

/// `enforcer status`: what the kernel holds, what the state directory records, and what the
/// running daemon reports.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the live generation, active and inactive policies with the flows each granted, next flips, queue counters and the last reload.",
        discussion: """
            Reads what `enforcer run` keeps in the state directory, and asks the kernel which generation \
            enforcer's table holds and what its counters say (flows per policy, default-deny drops); that \
            takes root or CAP_NET_ADMIN, and without it status says the kernel was not asked. \
            Exit status: 0 when a daemon runs, 3 when none does (as `systemctl is-active`), 1 on an error.
            """)

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Flag(help: "Print one JSON object (schema 1; every key present, null when empty).")
    var json = false

    func run() throws {
        let pipeline = pipeline(directory, state)
        let table = (try? pipeline.configuration())?.table ?? Config().table
        let state = pipeline.state()
        let report = StatusReport(state: state, kernel: KernelDataplane.kernelGeneration(table: table),
                                  rulesetGeneration: KernelDataplane.rulesetGeneration(),
                                  counters: PolicyCounters.read(table: table, state: state))
        if json {
            print(report.json())
        } else {
            for line in report.lines() { print(line) }
        }
        if !report.running { throw ExitCode(3) }
    }
}
