import ArgumentParser
import Compiler
import Enforcement
import Etcd
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
    @Option(help: ArgumentHelp("How long this host's presence outlives the agent in the store, in seconds.", valueName: "SECONDS"))
    var leaseTtl: Int64 = 30
    @Option(help: ArgumentHelp("How long an enrolled system whose lease ran out stays in this host's policy (e.g. 5m).", valueName: "DURATION"))
    var leaseGrace: DurationArgument?
    @Option(help: ArgumentHelp("The least important log lines written: error, warning, info or debug (default: [log] level, else info).", valueName: "LEVEL"))
    var logLevel: String?

    func validate() throws {
        if let logLevel, LogLevel(name: logLevel) == nil { throw ValidationError("--log-level must be error, warning, info or debug, not '\(logLevel)'") }
    }

    func run() throws {
        Log.override = logLevel.flatMap(LogLevel.init(name:))
        let process: DaemonProcess
        do {
            if store.given {
                var settings = try store.settings()
                let stateDirectory = state.stateDir ?? "/var/lib/enforcer"
                // An enrolled host logs in as itself, and is the system it enrolled as.
                let enrolled = try Enrolment.Credentials.load(stateDirectory: stateDirectory, layout: settings.layout)
                if let enrolled, settings.credentials == nil {
                    settings.credentials = EtcdCredentials(user: enrolled.user, password: enrolled.password)
                }
                let client = try settings.connect()
                do {
                    if let enrolled {
                        // Present before the first read, so that this host is a system of the policy it loads.
                        _ = try? waitFor {
                            let lease = try await client.client.grantLease(ttl: leaseTtl).id
                            try await client.announceMember(slot: enrolled.slot, name: enrolled.name, addresses: HostAddresses.current(), lease: lease)
                        }
                    }
                    let mirror = StoreMirror(stateDirectory: stateDirectory, layout: settings.layout, cache: ParseCache())
                    let grace = leaseGrace?.seconds ?? 300
                    let prepared = try FleetAgent.prepare(settings: settings, store: client, mirror: mirror, grace: grace, log: Log.emit)
                    var setup = FleetAgentSetup(settings: settings, store: client, mirror: mirror,
                                                host: enrolled?.slot ?? system ?? ProcessInfo.processInfo.hostName)
                    setup.member = enrolled.map { ($0.slot, $0.name) }
                    setup.leaseTTL = leaseTtl
                    setup.grace = grace
                    setup.enrolled = prepared.enrolled
                    setup.rendered = prepared.rendered
                    setup.chunks = prepared.chunks
                    setup.bundle = prepared.bundle
                    setup.namesByFile = prepared.namesByFile
                    let pipeline = Pipeline(source: mirror, stateDirectory: state.stateDir)
                    if let overrides = prepared.overrides {
                        // The fleet's overrides are in force from the first plan on: a trust the
                        // fleet revoked is never granted, not even for a moment.
                        setup.overrides = overrides
                        try pipeline.state().overrides.write(overrides.overrides)
                    }
                    process = try DaemonProcess(pipeline: pipeline,
                                                options: .init(system: system ?? enrolled?.name, force: force), store: (setup, prepared.revision))
                } catch {
                    // The client's connections are closed before it goes: a daemon that cannot
                    // start says why and exits, it does not trip over its own HTTP client.
                    try? waitFor { await client.close() }
                    throw error
                }
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
