import ArgumentParser
import Compiler
import Enforcement
import Foundation

/// `enforcer run`: the daemon (see `Daemon` and `DaemonProcess`).
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
    @OptionGroup var state: StateDirectoryOption
    @Option(help: ArgumentHelp("The inventory system this host is (default: found by this host's addresses).", valueName: "NAME"))
    var system: String?
    @Flag(help: "Apply even if the new ruleset would cut the SSH session this runs in.")
    var force = false
    @OptionGroup(title: "Fleet (instead of --dir: follow a fleet's policy in etcd)") var store: StoreOptions

    func run() throws {
        let process: DaemonProcess
        do {
            if store.given {
                let settings = try store.settings()
                let client = try settings.connect()
                let mirror = StoreMirror(stateDirectory: state.stateDir ?? "/var/lib/enforcer", layout: settings.layout, cache: ParseCache())
                let after = try FleetAgent.prepare(settings: settings, store: client, mirror: mirror, log: Log.line)
                let setup = FleetAgentSetup(settings: settings, store: client, mirror: mirror, host: system ?? ProcessInfo.processInfo.hostName)
                process = try DaemonProcess(pipeline: Pipeline(source: mirror, stateDirectory: state.stateDir), options: .init(system: system, force: force),
                                            store: (setup, after))
            } else {
                process = try DaemonProcess(pipeline: Pipeline(directory: directory.dir, stateDirectory: state.stateDir, cache: ParseCache()),
                                            options: .init(system: system, force: force))
            }
        } catch let failure as EnforcementError {
            throw Output.report(failure, after: "; nothing was applied")
        } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
        do { try process.run() } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
    }
}
