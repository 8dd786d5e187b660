import ArgumentParser
import Compiler
import Foundation

@main
struct Enforcer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enforcer",
        abstract: "Compile who-may-reach-what policy into nftables, and explain it.",
        discussion: """
            Exit status: 0 success or allow/permit, 1 policy error or deny, 2 usage error.
            Every command that reads policy takes --dir (default $ENFORCER_DIR, else /etc/enforcer).
            """,
        subcommands: [Check.self, Apply.self, TestFlow.self, TestURI.self, Confirm.self, Rollback.self, Flush.self, Run.self, Status.self, PolicyCommand.self, TrustCommand.self, ConfirmWatchdog.self]
    )

    /// Usage errors exit 2 (ArgumentParser's default is 64).
    static func main() {
        MemoryTuning.returnLargeBlocks()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// `--dir`, shared by every command that reads policy.
struct PolicyDirectoryOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Policy directory.", valueName: "DIR"))
    var dir: String = ProcessInfo.processInfo.environment["ENFORCER_DIR"] ?? "/etc/enforcer"
}

/// `--state-dir`, shared by every command that reads or writes enforcer's state.
struct StateDirectoryOption: ParsableArguments {
    @Option(help: ArgumentHelp("Where applied generations, policy ids, overrides and the daemon's status are kept (default: [state] directory of enforcer.conf, else /var/lib/enforcer).", valueName: "DIR"))
    var stateDir: String?
}

/// `--at`, an ISO 8601 instant; without it, now.
struct InstantOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Evaluate at this ISO 8601 instant, e.g. 2026-11-23T14:00:00Z (default: now).", valueName: "TIME"))
    var at: String?

    func instant() throws -> Date {
        guard let at else { return Date() }
        do { return try Instant.parse(at, defaultZone: TimeZone.current) } catch {
            throw ValidationError("--at '\(at)': \(error.message)")
        }
    }
}

enum Output {
    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// `file:line:col: severity: message`, then the line and a caret, as compilers print.
    static func render(_ diagnostic: Diagnostic, sources: inout [String: [Substring]]) -> String {
        var text = "\(diagnostic.location): \(diagnostic.severity.rawValue): \(diagnostic.message)"
        if sources[diagnostic.location.file] == nil {
            let content = (try? String(contentsOfFile: diagnostic.location.file, encoding: .utf8)) ?? ""
            sources[diagnostic.location.file] = content.split(separator: "\n", omittingEmptySubsequences: false)
        }
        if let lines = sources[diagnostic.location.file], diagnostic.location.line >= 1, diagnostic.location.line <= lines.count {
            let line = lines[diagnostic.location.line - 1].replacingOccurrences(of: "\t", with: " ")
            if !line.trimmingCharacters(in: .whitespaces).isEmpty {
                text += "\n    \(line)\n    \(String(repeating: " ", count: max(0, diagnostic.location.column - 1)))^"
            }
        }
        for note in diagnostic.notes { text += "\n" + render(note, sources: &sources) }
        return text
    }

    static func print(_ diagnostics: [Diagnostic]) {
        var sources: [String: [Substring]] = [:]
        for diagnostic in diagnostics { error(render(diagnostic, sources: &sources)) }
    }

    static func json(_ object: [String: Any?]) -> String {
        let compact = object.compactMapValues { $0 }
        let data = (try? JSONSerialization.data(withJSONObject: compact, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// Loads and checks a policy directory; prints diagnostics; exits 1 on errors.
func loadPolicy(_ options: PolicyDirectoryOption, quietWarnings: Bool = false) throws -> PolicySet {
    try loadPolicy(directory: options.dir, quietWarnings: quietWarnings)
}

func loadPolicy(directory: String, quietWarnings: Bool = false) throws -> PolicySet {
    let result = PolicyLoader.load(directory: directory)
    Output.print(result.diagnostics.filter { !quietWarnings || $0.severity == .error })
    guard let set = result.policySet else {
        let errors = result.diagnostics.filter { $0.severity == .error }.count
        Output.error("enforcer: \(errors) error\(errors == 1 ? "" : "s") in \(directory)")
        throw ExitCode(1)
    }
    return set
}

/// The system this host is: `--system`, else the one owning one of the host's addresses.
func resolveSystem(_ name: String?, in set: PolicySet) throws -> SystemDefinition {
    if let name {
        guard let system = set.system(named: name) else {
            throw ValidationError("--system '\(name)' is not a system in \(set.directory) (systems: \(set.systems.map(\.name).joined(separator: ", ")))")
        }
        return system
    }
    let own = HostAddresses.current()
    if let system = set.systems.first(where: { system in own.contains { address in system.addresses.contains { $0.contains(address) } } }) {
        return system
    }
    throw ValidationError("this host's addresses (\(own.map(\.description).joined(separator: ", "))) belong to no system in \(set.directory); pass --system NAME")
}
