import ArgumentParser
import Enforcement

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parse and validate the policy directory and run its expectations.",
        discussion: "Diagnostics are printed as file:line:col: error: message. Exits 1 on any error.")

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var time: InstantOption

    func run() throws {
        let pipeline = pipeline(directory)
        do {
            let (policy, warnings) = try pipeline.load()
            Output.print(warnings)
            let failures = pipeline.failedExpectations(policy, at: try time.instant())
            if !failures.isEmpty { throw EnforcementError.expectations(failures) }
            print(PolicyQueries.summary(policy))
        } catch let failure as EnforcementError {
            throw Output.report(failure, quietWarnings: false)
        }
    }
}
