import ArgumentParser
import Enforcement

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parse and validate the policy directory and run its expectations.",
        discussion: """
            Diagnostics are printed as file:line:col: error: message. Exits 1 on any error. \
            --json prints one object instead: every diagnostic as {file, line, column, severity, message} \
            and every expectation with whether it passed (schema 1, see the README).
            """)

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var time: InstantOption
    @Flag(help: "Print one JSON object: diagnostics and expectation results, for CI.")
    var json = false

    func run() throws {
        let pipeline = pipeline(directory)
        if json {
            let report = pipeline.check(at: try time.instant())
            print(report.json())
            if !report.ok { throw ExitCode(1) }
            return
        }
        do {
            let (policy, warnings) = try pipeline.load()
            let instant = try time.instant()
            Output.print(Pipeline.withExpiryWarnings(warnings, policy, at: instant))
            let failures = pipeline.failedExpectations(policy, at: instant)
            if !failures.isEmpty { throw EnforcementError.expectations(failures) }
            print(PolicyQueries.summary(policy))
        } catch let failure as EnforcementError {
            throw Output.report(failure, quietWarnings: false)
        }
    }
}
