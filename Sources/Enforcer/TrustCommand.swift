import ArgumentParser
import Compiler
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
        var duration: Duration?
        @Argument(help: "A system name.") var system: String
        @Argument(help: "A trust requirement, e.g. mfa.") var requirement: String

        func run() throws {
            try TrustCommand.record(system, requirement, directory: directory.dir, stateDir: state.stateDir) { now in
                TrustRecord(granted: true, until: duration.map { now.addingTimeInterval($0.seconds) })
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "SYSTEM no longer meets REQUIREMENT; its connections under policies needing it are cut.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Argument(help: "A system name.") var system: String
        @Argument(help: "A trust requirement, e.g. mfa.") var requirement: String

        func run() throws {
            try TrustCommand.record(system, requirement, directory: directory.dir, stateDir: state.stateDir) { _ in TrustRecord(granted: false) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every trust record and whether it holds now.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption

        func run() throws {
            let overrides = OverrideFile.read(state.stateDir ?? stateDirectory(directory))
            let now = Date(), format = ISO8601DateFormatter()
            for (system, records) in overrides.trust.sorted(by: { $0.key < $1.key }) {
                for (requirement, record) in records.sorted(by: { $0.key < $1.key }) {
                    let state = record.holds(at: now) ? "granted" + (record.until.map { " until \(format.string(from: $0))" } ?? "") : "revoked"
                    print("\(system) \(requirement): \(state)")
                }
            }
            if overrides.trust.isEmpty { print("no trust records") }
        }
    }

    static func record(_ system: String, _ requirement: String, directory: String, stateDir: String?, _ make: (Date) -> TrustRecord) throws {
        let set = try loadPolicy(directory: directory, quietWarnings: true)
        guard set.system(named: system) != nil else {
            throw ValidationError("no system named '\(system)' in \(directory)")
        }
        let needing = set.policies.filter { $0.trust.contains(requirement) }.map { "'\($0.name)'" }
        let state = stateDir ?? set.config.stateDirectory
        let now = Date()
        var overrides = OverrideFile.read(state).pruned(at: now)
        let change = make(now)
        overrides.trust[system, default: [:]][requirement] = change
        try OverrideFile.write(overrides, to: state)
        let format = ISO8601DateFormatter()
        let what = change.granted ? "granted" + (change.until.map { " until \(format.string(from: $0))" } ?? "") : "revoked"
        print("\(system) \(requirement): \(what)" + (needing.isEmpty ? " (no policy requires it)" : " (required by \(needing.joined(separator: ", ")))"))
        PolicyFiles(directory: directory, stateDirectory: state).reloadDaemon(config: set.config)
    }
}
