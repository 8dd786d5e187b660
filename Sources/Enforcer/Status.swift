import ArgumentParser
import Compiler
import Enforcement

/// `enforcer status`: what the running daemon reports in the state directory.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the live generation, active and inactive policies with the flows each granted, next flips, queue counters and the last reload.",
        discussion: "Reads what `enforcer run` keeps in the state directory; needs no root, but the kernel's counters (flows per policy, default-deny drops) are read as root only.")

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let pipeline = pipeline(directory, state)
        let table = (try? pipeline.configuration())?.table ?? Config().table
        let state = pipeline.state()
        let report = StatusReport(state: state, kernel: KernelDataplane.kernelGeneration(table: table),
                                  rulesetGeneration: KernelDataplane.rulesetGeneration(),
                                  counters: PolicyCounters.read(table: table, state: state))
        if json {
            print(try report.json())
        } else {
            for line in report.lines() { print(line) }
        }
    }
}
