import ArgumentParser
import Compiler
import Enforcement
import Foundation

extension PolicyCommand {
    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch a policy on (over its file's `enabled`), for good or --for a while.",
            discussion: "A --for grant is a set element with a kernel timeout: it runs out on time even while enforcer is not running. Recorded in the state directory; a running `enforcer run` reloads at once.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Option(name: .customLong("for"), help: ArgumentHelp("How long, e.g. 2h, 30m, 1h30m.", valueName: "DURATION"))
        var duration: DurationArgument?
        @Argument(help: "The policy's name.")
        var name: String
        @OptionGroup(title: "Fleet (instead of this host: every host of the fleet, through its store)") var store: StoreOptions

        func run() throws {
            let change = { (now: Date) in EnabledOverride(enabled: true, until: duration.map { now.addingTimeInterval($0.seconds) }) }
            if store.given { return try FleetCommand.withStore(store) { try $0.override(policy: name, change) } }
            try PolicyCommand.perform { try pipeline(directory, state).override(policy: name, change) }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch a policy off (over its file's `enabled`), now or --after a while; its connections are cut.",
            discussion: "Recorded in the state directory; a running `enforcer run` reloads at once. `enforcer policy enable NAME` switches it on again.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Option(help: ArgumentHelp("Wait this long first, e.g. 30m.", valueName: "DURATION"))
        var after: DurationArgument?
        @Argument(help: "The policy's name.")
        var name: String
        @OptionGroup(title: "Fleet (instead of this host: every host of the fleet, through its store)") var store: StoreOptions

        func run() throws {
            let change = { (now: Date) in EnabledOverride(enabled: false, from: after.map { now.addingTimeInterval($0.seconds) }) }
            if store.given { return try FleetCommand.withStore(store) { try $0.override(policy: name, change) } }
            try PolicyCommand.perform { try pipeline(directory, state).override(policy: name, change) }
        }
    }
}
