import ArgumentParser
import Enforcement
import Foundation

struct Confirm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Keep the generation applied with `apply --confirm`.")
    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption

    func run() throws {
        do {
            guard let pending = try KernelDataplane().confirm(state: pipeline(directory, state).state()) else {
                print("nothing to confirm")
                return
            }
            print("confirmed \(pending.generation.map { "generation \($0)" } ?? "the pending change"); nothing will be restored")
        } catch {
            throw Output.report(error)
        }
    }
}

struct ConfirmWatchdog: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "confirm-watchdog", abstract: "(internal) restore on a missed confirm.",
                                                    shouldDisplay: false)
    @Option var stateDir: String
    @Option var generation: Int

    /// What it restored is in watchdog.log already (the restore writes it there, whoever does it).
    func run() throws {
        do {
            _ = try KernelDataplane().watchConfirm(state: StateDirectory(path: stateDir), generation: generation)
        } catch {
            print(error)
            throw ExitCode(1)
        }
    }
}

struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make an earlier applied generation live again.",
        discussion: "Without GEN, the generation before the current one. The restored state is recorded as a new generation.")
    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Argument(help: ArgumentHelp("Generation number (see `enforcer history --generations`).", valueName: "GEN")) var generation: Int?
    @Option(help: ArgumentHelp("Why, for the history.", valueName: "TEXT")) var reason: String?

    func run() throws {
        do { print(try KernelDataplane().rollback(to: generation, state: pipeline(directory, state).state(), reason: reason)) } catch {
            throw Output.report(error)
        }
    }
}

struct Flush: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove everything enforcer owns from the kernel (its table), nothing else.",
        discussion: "Reads only enforcer.conf ([kernel] table, [state] directory), so it works while the policy files have errors. Applied generations stay on record for `enforcer rollback`.")

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Option(help: ArgumentHelp("Why, for the history.", valueName: "TEXT")) var reason: String?

    func run() throws {
        let pipeline = pipeline(directory, state)
        do {
            let config = try pipeline.configuration()
            try KernelDataplane().flush(config, state: pipeline.state(), reason: reason, purpose: "flush")
            print("flushed: table inet \(config.table) and inet \(KernelDataplane.recentTableName(of: config.table)) removed (where they existed); other tables untouched")
        } catch {
            throw Output.report(error, quietWarnings: false)
        }
    }
}
