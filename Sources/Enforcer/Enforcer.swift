import ArgumentParser
import Compiler
import Enforcement
import Foundation

/// The release this source is; `gitRevision` comes from the build (Plugins/RevisionStamp).
let enforcerVersion = "0.9.0"

@main
struct Enforcer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enforcer",
        abstract: "Compile who-may-reach-what policy into nftables, and explain it.",
        discussion: """
            Exit status: 0 success or allow/permit; 1 policy error, deny, or a name or instant that \
            names nothing; 2 usage error (a flag or argument the command cannot take); 3 `status` \
            when no daemon runs; 4 `apply --dry-run --detailed-exitcode` when changes are pending.
            Every command that reads policy takes --dir (default $ENFORCER_DIR, else /etc/enforcer).
            """,
        version: "enforcer \(enforcerVersion) (git \(gitRevision))",
        subcommands: [Init.self, Check.self, Apply.self, TestFlow.self, TestURI.self, Confirm.self, Rollback.self, Flush.self, Run.self, Status.self, History.self, FleetCommand.self, Enrol.self, PolicyCommand.self, TrustCommand.self, ConfirmWatchdog.self]
    )

    /// Usage errors exit 2 (ArgumentParser's default is 64); a `CommandFailure` exits 1.
    static func main() {
        MemoryTuning.returnLargeBlocks()
        // Everything enforcer creates (its state, logs, records) is root's alone: 0600 files,
        // 0700 directories, whatever umask it was started with.
        umask(0o077)
        var parsed: (any ParsableCommand)?
        do {
            var command = try parseAsRoot()
            parsed = command
            (command as? UsesStateDirectory)?.keepOverduePromise()
            try command.run()
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data("enforcer: error: \(failure.message)\n".utf8))
            Foundation.exit(1)
        } catch {
            // The parser calls a mistyped subcommand an "unexpected argument"; say what it
            // was probably meant to be.
            if parsed == nil, let mistyped = MistypedSubcommand.find(in: Array(CommandLine.arguments.dropFirst())) {
                FileHandle.standardError.write(Data(mistyped.message.utf8))
                Foundation.exit(2)
            }
            let code = exitCode(for: error)
            // A usage error found once the command runs: its own usage line, not the root's.
            if code == .validationFailure, let parsed, let message = (error as? ValidationError)?.message {
                let usage = usageString(for: type(of: parsed))
                FileHandle.standardError.write(Data("Error: \(message)\nUsage: \(usage)\n".utf8))
                Foundation.exit(2)
            }
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// The first word of a command line that stands where a subcommand belongs and names none:
/// `enforcer stauts`, `enforcer policy lsit`.
struct MistypedSubcommand {
    /// The command whose subcommand it should have named.
    var parent: any ParsableCommand.Type
    var word: String
    var meant: String?

    static func find(in arguments: [String], root: any ParsableCommand.Type = Enforcer.self) -> MistypedSubcommand? {
        var command = root
        for word in arguments {
            // Flags before a subcommand, or `help`: the parser's own message says it better.
            guard !word.hasPrefix("-"), word != "help" else { return nil }
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty else { return nil }
            if let next = subcommands.first(where: { $0._commandName == word }) {
                command = next
                continue
            }
            let names = subcommands.filter { $0.configuration.shouldDisplay }.map { $0._commandName }
            return MistypedSubcommand(parent: command, word: word, meant: NearMiss.nearest(word, among: names))
        }
        return nil
    }

    /// What standard error gets: the guess, or every subcommand when nothing is close.
    var message: String {
        let path = Enforcer.usageString(for: parent).split(separator: " ").prefix { !$0.hasPrefix("<") }.joined(separator: " ")
        let names = parent.configuration.subcommands.filter { $0.configuration.shouldDisplay }.map { $0._commandName }
        let hint = meant.map { "did you mean '\($0)'?" } ?? "expected one of \(names.joined(separator: ", "))"
        return "Error: unknown subcommand '\(word)' of \(path); \(hint)\nUsage: \(path) <subcommand>\n  See '\(path) --help' for more information.\n"
    }
}

/// A command that reads or changes the state directory. Before it runs, an `apply --confirm`
/// whose deadline has passed is restored: its promise holds whichever enforcer command runs
/// first, even when the watchdog that should have kept it was killed.
protocol UsesStateDirectory {
    var directory: PolicyDirectoryOption { get }
    var state: StateDirectoryOption { get }
}

extension UsesStateDirectory {
    func keepOverduePromise() {
        let state = pipeline(directory, state).state()
        guard let pending = PendingConfirm.read(from: state), pending.deadline <= Date() else { return }
        guard geteuid() == 0 else {
            Output.error("enforcer: warning: the deadline of \(pending.summary) has passed; run an enforcer command as root to restore it")
            return
        }
        do {
            if let line = try KernelDataplane().restoreIfOverdue(state: state, now: Date()) { Output.error("enforcer: " + line) }
        } catch {
            Output.error("\(error)")
        }
    }
}

extension Apply: UsesStateDirectory {}
extension Confirm: UsesStateDirectory {}
extension Rollback: UsesStateDirectory {}
extension Flush: UsesStateDirectory {}
extension Run: UsesStateDirectory {}
extension Status: UsesStateDirectory {}
extension PolicyCommand.Enable: UsesStateDirectory {}
extension PolicyCommand.Disable: UsesStateDirectory {}
extension TrustCommand.Grant: UsesStateDirectory {}
extension TrustCommand.Revoke: UsesStateDirectory {}
extension TrustCommand.List: UsesStateDirectory {}

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
            throw CommandFailure("--at '\(at)': \(error.message)")
        }
    }
}

/// The pipeline of the policy directory and state directory the flags name.
func pipeline(_ directory: PolicyDirectoryOption, _ state: StateDirectoryOption? = nil) -> Pipeline {
    Pipeline(directory: directory.dir, stateDirectory: state?.stateDir)
}

/// A command that ran and could not do what it was asked, though it was asked correctly: a
/// system, policy or file that the policy does not have, an instant that does not parse, a
/// file that exists already. Exit status 1 with `enforcer: error: …`, and no usage line:
/// the command line was right, the request was not.
struct CommandFailure: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

enum Output {
    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Diagnostics as compilers print them, to standard error.
    static func print(_ diagnostics: [Diagnostic]) {
        for text in DiagnosticText.render(diagnostics) { error(text) }
    }

    /// Shows why the pipeline stopped, and returns what to throw: a usage error for a name
    /// that names nothing, else exit status 1. `after` follows the summary of failed
    /// expectations ("; nothing would be applied").
    static func report(_ failure: EnforcementError, quietWarnings: Bool = true, after: String = "") -> any Error {
        switch failure {
        case .notFound(let message):
            return CommandFailure(message)
        case .policy(let diagnostics, _):
            print(diagnostics.filter { !quietWarnings || $0.severity == .error })
            error("enforcer: \(failure)")
        case .expectations, .doesNotCheck:
            print(failure.diagnostics)
            error("enforcer: \(failure)\(after)")
        case .compile:
            error("enforcer: \(failure)")
        case .refused(let lines):
            for line in lines { error(line) }
        }
        return ExitCode(1)
    }
}
