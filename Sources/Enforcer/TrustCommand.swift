import ArgumentParser
import Compiler
import Enforcement
import Foundation

/// `enforcer trust grant|revoke|list`: which systems meet the policies' `trust` requirements.
struct TrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Grant or revoke a system's trust requirement (the policies' `trust:` key).",
        discussion: "Kept in the state directory; a running `enforcer run` reloads at once, otherwise `enforcer apply` puts it in force. A revoke, or a grant running out, cuts that system's connections under the policies needing the requirement, at once.",
        subcommands: [Grant.self, Revoke.self, List.self])

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "SYSTEM meets REQUIREMENT, for good or --for a while.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Option(name: .customLong("for"), help: ArgumentHelp("How long, e.g. 8h, 30m.", valueName: "DURATION"))
        var duration: DurationArgument?
        @Argument(help: "A system name.") var system: String
        @Argument(help: "A trust requirement, e.g. mfa.") var requirement: String
        @OptionGroup(title: "Fleet (instead of this host: every host of the fleet, through its store)") var store: StoreOptions

        func run() throws {
            let change = { (now: Date) in TrustRecord(granted: true, until: duration.map { now.addingTimeInterval($0.seconds) }) }
            if store.given { return try FleetCommand.withStore(store) { try $0.trust(system, requirement, change) } }
            try PolicyCommand.perform { try pipeline(directory, state).trust(system, requirement, change) }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "SYSTEM no longer meets REQUIREMENT; its connections under policies needing it are cut.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Argument(help: "A system name.") var system: String
        @Argument(help: "A trust requirement, e.g. mfa.") var requirement: String
        @OptionGroup(title: "Fleet (instead of this host: every host of the fleet, through its store)") var store: StoreOptions

        func run() throws {
            let change = { (_: Date) in TrustRecord(granted: false) }
            if store.given { return try FleetCommand.withStore(store) { try $0.trust(system, requirement, change) } }
            try PolicyCommand.perform { try pipeline(directory, state).trust(system, requirement, change) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every trust record and whether it holds now.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Flag(help: "Print one JSON object (schema 1): every record and whether it holds now.") var json = false
        @OptionGroup(title: "Fleet (instead of this host: the fleet's records, in its store)") var store: StoreOptions

        func run() throws {
            if store.given {
                if json { throw ValidationError("--json lists this host's records only, not the store's") }
                return try FleetCommand.withStore(store) { try $0.trustRecords(at: Date()) }
            }
            if json {
                print(pipeline(directory, state).trustRecordsJSON(at: Date()))
            } else {
                for line in pipeline(directory, state).trustRecords(at: Date()) { print(line) }
            }
        }
    }
}
