import ArgumentParser
import Compiler
import Foundation

/// `enforcer run`: the daemon (see `Daemon`).
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the policy, judge queued web flows, flip time windows and expiries, reload on change.",
        discussion: """
            Needs root. Applies the policy, runs the NFQUEUE worker when web rules need it, and keeps \
            the kernel in step with time: each active-hours window, expiry and enabled change is applied \
            at its boundary (a wall-clock timer, recomputed at once when the clock is set). SIGHUP or \
            any change under the policy directory reloads: a valid policy is applied as a delta, an \
            invalid one is refused and logged while the running generation stays live. SIGTERM or \
            SIGINT stops; the ruleset stays in force unless [run] on_stop = "flush". Logs to standard \
            error; `enforcer status` reads what it reports in the state directory.
            """)

    @OptionGroup var directory: PolicyDirectoryOption
    @Option(help: ArgumentHelp("Where applied generations are kept (default: [state] directory of enforcer.conf, else /var/lib/enforcer).", valueName: "DIR"))
    var stateDir: String?
    @Option(help: ArgumentHelp("The inventory system this host is (default: found by this host's addresses).", valueName: "NAME"))
    var system: String?
    @Flag(help: "Apply even if the new ruleset would cut the SSH session this runs in.")
    var force = false

    func run() throws {
        let daemon: Daemon
        do {
            daemon = try Daemon(options: .init(directory: directory.dir, system: system, stateDirectory: stateDir, force: force))
        } catch let error as ApplyFailure {
            for line in error.lines { Output.error(line) }
            throw ExitCode(1)
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
        do { try daemon.run() } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
    }
}

enum Log {
    /// One line to standard error, with a UTC timestamp.
    static func line(_ text: String) {
        let stamp = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        FileHandle.standardError.write(Data("\(stamp) \(text)\n".utf8))
    }
}
