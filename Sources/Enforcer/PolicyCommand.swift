import ArgumentParser
import Compiler
import Foundation

/// `enforcer policy …`: the files of `rules.d/`. Every change is checked with the whole
/// directory before it lands; a draft that fails is kept aside, never loaded.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "List, show, create, edit and remove the policy files of rules.d/.",
        discussion: "new and edit open $EDITOR (default vi) on a draft, check the whole directory with it, then put it in place and reload a running `enforcer run`; a draft that fails check is kept as rules.d/NAME.policy.rejected.",
        subcommands: [List.self, Show.self, New.self, Edit.self, Remove.self, Enable.self, Disable.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every block of every file, in evaluation order, and whether it is in force.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var time: InstantOption

        func run() throws {
            let set = try loadPolicy(directory, quietWarnings: true)
            let instant = try time.instant()
            let graph = AccessGraph(set)
            for file in set.files {
                print((file as NSString).lastPathComponent)
                let local = { (location: SourceLocation) in location.file == file }
                for system in set.systems where local(system.location) {
                    print("  system \(system.name): \(system.tags.joined(separator: ", "))")
                }
                for entry in graph.entries where local(entry.policy.location) {
                    let state = graph.inactiveReason(entry, at: instant).map { "inactive: \($0)" } ?? "active"
                    print("  \(entry.policy.kindWord) '\(entry.policy.name)': \(entry.connectedPairs) pair\(entry.connectedPairs == 1 ? "" : "s"), \(state)")
                }
                for rule in set.webRules where local(rule.location) {
                    print("  web rule \(rule.name): \(rule.action.rawValue)\(rule.timeWindow.map { " during \($0)" } ?? "")")
                }
                for expectation in set.expectations where local(expectation.location) {
                    print("  expect \(expectation.name)")
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The file holding NAME (a block name or a file name), as written.")
        @OptionGroup var directory: PolicyDirectoryOption
        @Argument(help: "A policy, system, web rule or expectation name, or a file name such as 30-databases.")
        var name: String

        func run() throws {
            let file = try PolicyFiles(directory: directory.dir).locate(name)
            print("# \(file)")
            print(try String(contentsOfFile: file, encoding: .utf8), terminator: "")
        }
    }

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write rules.d/FILE.policy from a template in $EDITOR, check it, put it in place.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Argument(help: "NN-name, e.g. 50-contractors (two digits set its precedence).")
        var file: String

        func run() throws {
            let files = PolicyFiles(directory: directory.dir, stateDirectory: state.stateDir)
            let name = file.hasSuffix(".policy") ? file : file + ".policy"
            guard PolicyLoader.isWellFormedFileName(name) else { throw ValidationError("'\(file)' must be NN-name, e.g. 50-contractors") }
            guard !FileManager.default.fileExists(atPath: files.path(name)) else {
                throw ValidationError("\(files.path(name)) exists; use `enforcer policy edit \(file)`")
            }
            let title = String(name.dropFirst(3).dropLast(".policy".count))
            let template = """
                # \(name): who may reach what, and when. Check: enforcer check; plan: enforcer apply --dry-run.
                [policy] "\(title)": {
                    senders: TAG
                    receivers: TAG
                    allow: any
                    # active-hours: mon-fri 08:00-18:00
                    # expires: 2026-12-31T18:00:00Z
                    description: \(title)
                }

                """
            try files.draftAndCommit(name, startingWith: template)
        }
    }

    struct Edit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Edit the file holding NAME in $EDITOR, check it, put it in place.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Argument(help: "A block name or a file name such as 30-databases.")
        var name: String

        func run() throws {
            let files = PolicyFiles(directory: directory.dir, stateDirectory: state.stateDir)
            let file = try files.locate(name)
            try files.draftAndCommit((file as NSString).lastPathComponent, startingWith: try String(contentsOfFile: file, encoding: .utf8))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the file holding NAME, if the directory still checks without it.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @Argument(help: "A block name or a file name such as 30-databases.")
        var name: String

        func run() throws {
            let files = PolicyFiles(directory: directory.dir, stateDirectory: state.stateDir)
            let file = try files.locate(name)
            let base = (file as NSString).lastPathComponent
            let (checked, problems) = files.check(overlay: [base: String?.none])
            guard let set = checked else {
                Output.print(problems)
                Output.error("enforcer: without \(base) the policy does not check; nothing was removed")
                throw ExitCode(1)
            }
            try FileManager.default.removeItem(atPath: file)
            print("removed \(file)")
            files.reloadDaemon(config: set.config)
        }
    }
}

/// The files of one policy directory's rules.d/.
struct PolicyFiles {
    let directory: String
    var stateDirectory: String?
    var rules: String { directory + "/rules.d" }
    func path(_ name: String) -> String { rules + "/" + name }

    /// A file name (with or without .policy) or the name of a block in one of the files.
    func locate(_ name: String) throws -> String {
        let direct = path(name.hasSuffix(".policy") ? name : name + ".policy")
        if FileManager.default.fileExists(atPath: direct) { return direct }
        let result = PolicyLoader.load(directory: directory)
        if let set = result.policySet {
            let places = set.systems.map { ($0.name, $0.location) } + set.policies.map { ($0.name, $0.location) }
                + set.webRules.map { ($0.name, $0.location) } + set.expectations.map { ($0.name, $0.location) }
            if let place = places.first(where: { $0.0 == name }) { return place.1.file }
        } else {
            // A broken directory can still be searched as text, so a broken file can be fixed.
            for file in ((try? FileManager.default.contentsOfDirectory(atPath: rules)) ?? []).sorted() where file.hasSuffix(".policy") {
                let text = (try? String(contentsOfFile: path(file), encoding: .utf8)) ?? ""
                if text.contains("] \(name):") || text.contains("] \"\(name)\":") || text.contains("\n\(name):") { return path(file) }
            }
        }
        throw ValidationError("no file or block named '\(name)' in \(rules)")
    }

    /// $EDITOR on a draft of rules.d/NAME; the whole directory is checked with the draft in its
    /// place. Passing: the draft replaces the file (atomically) and a running daemon reloads.
    /// Failing: the diagnostics are printed and the draft is kept as NAME.rejected.
    func draftAndCommit(_ name: String, startingWith text: String) throws {
        let draftDirectory = NSTemporaryDirectory() + "enforcer-draft-\(getpid())"
        try FileManager.default.createDirectory(atPath: draftDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: draftDirectory) }
        let draft = draftDirectory + "/" + name
        try text.write(toFile: draft, atomically: true, encoding: .utf8)
        let editor = ProcessInfo.processInfo.environment["VISUAL"] ?? ProcessInfo.processInfo.environment["EDITOR"] ?? "vi"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\(editor) \"$1\"", "sh", draft]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            Output.error("enforcer: \(editor) exited with status \(process.terminationStatus); \(path(name)) is unchanged")
            throw ExitCode(1)
        }
        let edited = try String(contentsOfFile: draft, encoding: .utf8)
        if edited == text && FileManager.default.fileExists(atPath: path(name)) {
            print("unchanged: \(path(name))")
            return
        }
        let (checked, problems) = check(overlay: [name: draft])
        guard let set = checked else {
            let rejected = path(name) + ".rejected"
            try edited.write(toFile: rejected, atomically: true, encoding: .utf8)
            Output.print(problems)
            Output.error("enforcer: \(name) does not check; it was kept as \(rejected) and nothing was applied")
            throw ExitCode(1)
        }
        try edited.write(toFile: path(name), atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: path(name) + ".rejected")
        print("checked and saved \(path(name))")
        reloadDaemon(config: set.config)
    }

    /// The directory as it would be with `overlay`: the policy set when it loads and every
    /// expectation holds, else the errors and failed expectations.
    func check(overlay: [String: String?]) -> (PolicySet?, [Diagnostic]) {
        let result = PolicyLoader.load(directory: directory, overlay: overlay)
        guard let set = result.policySet else { return (nil, result.diagnostics.filter { $0.severity == .error }) }
        let failures = ExpectationRunner(graph: AccessGraph(set), now: Date()).run()
        return (failures.isEmpty ? set : nil, failures)
    }

    /// SIGHUP to `enforcer run` when its report in the state directory names a live process.
    func reloadDaemon(config: Config) {
        guard let status = try? DaemonStatus.read(from: stateDirectory ?? config.stateDirectory), status.stoppedAt == nil,
              status.policyDirectory == URL(fileURLWithPath: directory).standardizedFileURL.path,
              kill(status.pid, 0) == 0 else {
            print("no running `enforcer run` for this directory; apply with `enforcer apply`")
            return
        }
        kill(status.pid, SIGHUP)
        print("reloading enforcer run (pid \(status.pid))")
    }
}
