import ArgumentParser
import Compiler
import Enforcement
import Etcd
import Foundation

/// `--store`, `--fleet` and how to authenticate: shared by `fleet …` and `run --store`.
struct StoreOptions: ParsableArguments {
    @Option(help: ArgumentHelp("etcd client URLs, comma-separated (default $ENFORCER_STORE).", valueName: "URL"))
    var store: String?
    @Option(help: ArgumentHelp("The fleet's name: its keys live under /enforcer/NAME/ (default $ENFORCER_FLEET, else 'default').", valueName: "NAME"))
    var fleet: String?
    @Option(help: ArgumentHelp("CA certificate that signed etcd's (https:// URLs).", valueName: "FILE"))
    var storeCA: String?
    @Option(help: ArgumentHelp("Client certificate for etcd.", valueName: "FILE"))
    var storeCert: String?
    @Option(help: ArgumentHelp("Key of the client certificate.", valueName: "FILE"))
    var storeKey: String?
    @Option(help: ArgumentHelp("etcd user to log in as (its password from --store-password-file).", valueName: "NAME"))
    var storeUser: String?
    @Option(help: ArgumentHelp("File whose first line is the etcd user's password.", valueName: "FILE"))
    var storePasswordFile: String?

    var given: Bool { store != nil || ProcessInfo.processInfo.environment["ENFORCER_STORE"] != nil }

    func settings() throws -> StoreSettings {
        let environment = ProcessInfo.processInfo.environment
        guard let urls = store ?? environment["ENFORCER_STORE"] else {
            throw ValidationError("no store: give --store URL (or set ENFORCER_STORE)")
        }
        let tls = (storeCA != nil || storeCert != nil) ? EtcdTLS(caFile: storeCA, certificateFile: storeCert, keyFile: storeKey) : nil
        var credentials: EtcdCredentials?
        if let storeUser {
            guard let file = storePasswordFile else { throw ValidationError("--store-user needs --store-password-file") }
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw FleetError.usage("cannot read the password file \(file): \(SystemErrno(errno))")
            }
            credentials = EtcdCredentials(user: storeUser, password: String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? ""))
        }
        return try StoreSettings(endpoints: urls.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) },
                                 fleet: fleet ?? environment["ENFORCER_FLEET"] ?? "default", tls: tls, credentials: credentials)
    }
}

struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "One policy for many hosts, kept in etcd: push, compare, history, rollback, status.",
        discussion: """
            A push checks the policy directory as `check` does and writes it to the store in one \
            transaction; every `enforcer run --store` agent applies its host's part. docs/FLEET.md \
            describes the keys.
            """,
        subcommands: [Push.self, Diff.self, History.self, Rollback.self, Status.self])

    /// Runs `body` with the store open, closing it after; maps failures to messages and exit 1.
    static func withStore(_ options: StoreOptions, _ body: (FleetAdmin) throws -> [String]) throws {
        let store = try options.settings().connect()
        defer { try? waitFor { await store.close() } }
        do {
            for line in try body(FleetAdmin(store: store)) { print(line) }
        } catch let failure as EnforcementError {
            throw Output.report(failure, after: "; nothing was pushed")
        } catch let failure as FleetError {
            Output.error("enforcer: \(failure)")
            throw ExitCode(1)
        }
    }

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a policy directory and make it the fleet's policy.",
            discussion: "Of two pushes at the same time one lands; the other is told to check again and retry.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("Why, for `fleet history`.", valueName: "TEXT"))
        var message: String?
        @Option(help: ArgumentHelp("Push only if the fleet's policy is still the one of this revision (from `fleet diff` or `fleet history`).", valueName: "REV"))
        var ifRevision: Int64?

        func run() throws {
            try FleetCommand.withStore(store) { try $0.push(directory: directory.dir, message: message, ifRevision: ifRevision) }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What a push of the policy directory would change in the store.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var store: StoreOptions

        func run() throws {
            try FleetCommand.withStore(store) { try $0.diff(directory: directory.dir) }
        }
    }

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pushes, newest first: revision, when, who, why.")
        @OptionGroup var store: StoreOptions
        @Option(help: "How many.") var limit = 20

        func run() throws {
            try FleetCommand.withStore(store) { try $0.history(limit: limit) }
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make the policy of an earlier revision the fleet's policy again (a new push).")
        @Argument(help: ArgumentHelp("A revision from `fleet history`.", valueName: "REV"))
        var revision: Int64
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("Why, for `fleet history`.", valueName: "TEXT"))
        var message: String?

        func run() throws {
            try FleetCommand.withStore(store) { try $0.rollback(to: revision, message: message) }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every agent: the revision it enforces, whether it is behind, its last error.")
        @OptionGroup var store: StoreOptions

        func run() throws {
            try FleetCommand.withStore(store) { try $0.status() }
        }
    }
}
