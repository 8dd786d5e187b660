import ArgumentParser
import Compiler
import Foundation

/// `overrides.json` in the state directory: what `enforcer policy enable|disable` changed.
enum OverrideFile {
    static func path(_ directory: String) -> String { directory + "/overrides.json" }

    /// ISO 8601 with milliseconds: a deadline must not be cut short by the seconds' rounding.
    private static func formatter() -> ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }

    static func read(_ directory: String) -> RuntimeOverrides {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = formatter().date(from: text) ?? ISO8601DateFormatter().date(from: text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an ISO 8601 instant: \(text)"))
            }
            return date
        }
        guard let data = FileManager.default.contents(atPath: path(directory)),
              let overrides = try? decoder.decode(RuntimeOverrides.self, from: data) else { return RuntimeOverrides() }
        return overrides
    }

    static func write(_ overrides: RuntimeOverrides, to directory: String) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatter().string(from: date))
        }
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try encoder.encode(overrides).write(to: URL(fileURLWithPath: path(directory)), options: .atomic)
    }

    /// The access graph in force at `instant`: the files with `enforcer policy enable|disable`
    /// and `enforcer trust grant|revoke` applied.
    static func graph(_ set: PolicySet, stateDirectory: String, at instant: Date, ids: PolicyIDs) -> AccessGraph {
        let overrides = read(stateDirectory).pruned(at: instant)
        return AccessGraph(overrides.applied(to: set), trust: overrides.trustGrants(at: instant),
                           revoked: overrides.revokedTrust(at: instant), ids: ids)
    }
}

/// `2h`, `30m`, `90s`, `1d`, `1h30m`.
struct Duration: ExpressibleByArgument {
    var seconds: TimeInterval

    init?(argument: String) {
        guard let seconds = DurationText.parse(argument) else { return nil }
        self.seconds = seconds
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

extension PolicyCommand {
    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch a policy on (over its file's `enabled`), for good or --for a while.",
            discussion: "A --for grant is a set element with a kernel timeout: it runs out on time even while enforcer is not running. Recorded in the state directory; a running `enforcer run` reloads at once.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Option(name: .customLong("for"), help: ArgumentHelp("How long, e.g. 2h, 30m, 1h30m.", valueName: "DURATION"))
        var duration: Duration?
        @Argument(help: "The policy's name.")
        var name: String

        func run() throws {
            try PolicyCommand.override(name, directory: directory.dir, stateDir: state.stateDir) { now in
                EnabledOverride(enabled: true, until: duration.map { now.addingTimeInterval($0.seconds) })
            }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch a policy off (over its file's `enabled`), now or --after a while; its connections are cut.",
            discussion: "Recorded in the state directory; a running `enforcer run` reloads at once. `enforcer policy enable NAME` switches it on again.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Option(help: ArgumentHelp("Wait this long first, e.g. 30m.", valueName: "DURATION"))
        var after: Duration?
        @Argument(help: "The policy's name.")
        var name: String

        func run() throws {
            try PolicyCommand.override(name, directory: directory.dir, stateDir: state.stateDir) { now in
                EnabledOverride(enabled: false, from: after.map { now.addingTimeInterval($0.seconds) })
            }
        }
    }

    static func override(_ name: String, directory: String, stateDir: String?, _ make: (Date) -> EnabledOverride) throws {
        let set = try loadPolicy(directory: directory, quietWarnings: true)
        guard set.policies.contains(where: { $0.name == name }) else {
            throw ValidationError("no policy named '\(name)' in \(directory) (policies: \(set.policies.map { "'\($0.name)'" }.joined(separator: ", ")))")
        }
        let state = stateDir ?? set.config.stateDirectory
        let now = Date()
        var overrides = OverrideFile.read(state).pruned(at: now)
        let change = make(now)
        overrides.policies[name] = change
        try OverrideFile.write(overrides, to: state)
        let format = ISO8601DateFormatter()
        switch (change.enabled, change.until, change.from) {
        case (true, let until?, _): print("'\(name)' enabled until \(format.string(from: until))")
        case (true, nil, _): print("'\(name)' enabled")
        case (false, _, let from?): print("'\(name)' disabled from \(format.string(from: from))")
        case (false, _, nil): print("'\(name)' disabled")
        }
        PolicyFiles(directory: directory, stateDirectory: state).reloadDaemon(config: set.config)
    }
}
