import ArgumentParser
import Compiler
import Enforcement
import Foundation

/// `enforcer policy …`: the files of `rules.d/`. Every change is checked with the whole
/// directory before it lands; a draft that fails is kept aside, never loaded.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "List, show, create, edit and remove the policy files of rules.d/.",
        discussion: "new and edit open $EDITOR (default vi) on a draft, check the whole directory with it, then put it in place and reload a running `enforcer run`; a draft that fails check is kept as rules.d/NAME.policy.rejected.",
        subcommands: [List.self, Show.self, New.self, Edit.self, Remove.self, Enable.self, Disable.self])

    /// Prints what a change did; a failure as `Output.report` shows it.
    static func perform(_ change: () throws -> [String]) throws {
        do { for line in try change() { print(line) } } catch let failure as EnforcementError { throw Output.report(failure) }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every block of every file, in evaluation order, and whether it is in force.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var state: StateDirectoryOption
        @OptionGroup var time: InstantOption
        @Flag(help: "Print one JSON object (schema 1): each file with its blocks.") var json = false

        func run() throws {
            let pipeline = pipeline(directory, state)
            let set = try loadForQuery(pipeline)
            // The kernel's counters, read as root only; otherwise the listing says why not.
            let counters = PolicyCounters.read(table: set.config.table, state: pipeline.state())
            if json {
                print(PolicyQueries.listingJSON(set, at: try time.instant(), counters: try? counters.get()))
            } else {
                for line in PolicyQueries.listing(set, at: try time.instant(), counters: try? counters.get()) { print(line) }
                if case .failure(let unread) = counters { print("counters: not read (\(unread.reason))") }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The file holding NAME (a block name or a file name), as written.")
        @OptionGroup var directory: PolicyDirectoryOption
        @Argument(help: "A policy, system, web rule or expectation name, or a file name such as 30-databases.")
        var name: String

        func run() throws {
            let file: String, text: String
            do {
                let files = PolicyFiles(directory: directory.dir)
                file = try files.locate(name)
                text = try files.text(of: file)
            } catch { throw Output.report(error) }
            print("# \(file)")
            print(text, terminator: "")
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
                throw CommandFailure("\(files.path(name)) exists; use `enforcer policy edit \(file)`")
            }
            try edit(files, name, startingWith: PolicyFiles.template(for: name))
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
            let file: String, text: String
            do {
                file = try files.locate(name)
                text = try files.text(of: file)
            } catch { throw Output.report(error) }
            try edit(files, (file as NSString).lastPathComponent, startingWith: text)
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
            try PolicyCommand.perform { try files.remove(try files.locate(name)) }
        }
    }
}

/// `policy new` and `policy edit`: $VISUAL or $EDITOR (default vi) on a draft, which
/// lands only when the whole directory checks with it.
private func edit(_ files: PolicyFiles, _ name: String, startingWith text: String) throws {
    let editor = ProcessInfo.processInfo.environment["VISUAL"] ?? ProcessInfo.processInfo.environment["EDITOR"] ?? "vi"
    struct EditorFailed: Error { var status: Int32 }
    let outcome: PolicyFiles.DraftOutcome
    do {
        outcome = try files.draftAndCommit(name, startingWith: text) { draft in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "\(editor) \"$1\"", "sh", draft]
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw EditorFailed(status: process.terminationStatus) }
        }
    } catch let failed as EditorFailed {
        Output.error("enforcer: \(editor) exited with status \(failed.status); \(files.path(name)) is unchanged")
        throw ExitCode(1)
    }
    switch outcome {
    case .unchanged:
        print("unchanged: \(files.path(name))")
    case .saved(let lines):
        for line in lines { print(line) }
    case .rejected(let diagnostics, let keptAt):
        Output.print(diagnostics)
        Output.error("enforcer: \(name) does not check; it was kept as \(keptAt) and nothing was applied")
        throw ExitCode(1)
    }
}
