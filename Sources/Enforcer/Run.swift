import ArgumentParser
import Compiler
import Foundation
import Kernel
import NFQueue
import Synchronization

/// `enforcer run`: applies the policy, then judges queued web flows until SIGTERM or SIGINT.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the policy and run the NFQUEUE worker (TLS SNI, HTTP Host/URL) until stopped.",
        discussion: """
            Needs root. Logs one line per judged flow to standard error. On SIGTERM or SIGINT the \
            worker stops and the ruleset stays in place: queued flows then follow [kernel] queue_fail.
            """)

    @OptionGroup var directory: PolicyDirectoryOption
    @Option(help: ArgumentHelp("Where applied generations are kept (default: [state] directory of enforcer.conf, else /var/lib/enforcer).", valueName: "DIR"))
    var stateDir: String?
    @Option(help: ArgumentHelp("The inventory system this host is (default: found by this host's addresses).", valueName: "NAME"))
    var system: String?
    @Flag(help: "Apply even if the new ruleset would cut the SSH session this runs in.")
    var force = false

    func run() throws {
        let set = try loadPolicy(directory, quietWarnings: true)
        let host = try resolveSystem(system, in: set)
        let store = GenerationStore(directory: stateDir ?? set.config.stateDirectory)
        let ids = store.policyIDs().assigning(set.policies.map(\.name))
        let graph = AccessGraph(set, ids: ids)
        let instant = Date()
        let failures = ExpectationRunner(graph: graph, now: instant).run()
        if !failures.isEmpty {
            Output.print(failures)
            Output.error("enforcer: \(failures.count) expectation\(failures.count == 1 ? "" : "s") failed; nothing was applied")
            throw ExitCode(1)
        }
        try Apply.load(graph: graph, host: host, instant: instant, store: store, ids: ids, policyDirectory: directory.dir,
                       replace: false, force: force, confirm: nil)
        fflush(nil)  // the apply line, before the worker's log

        let matcher = WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction)
        let inspector = Inspector(matcher: matcher, settings: InspectorSettings(config: set.config))
        let worker: Worker
        do {
            worker = try Worker(queueNumber: set.config.queue, queueFailOpen: set.config.queueFail == .open, inspector: inspector, log: Log.line)
        } catch {
            Output.error("enforcer: worker: \(error)")
            throw ExitCode(1)
        }
        let stop = StopSignal()
        Log.line("worker: judging queue \(set.config.queue) with \(set.webRules.count) web rule\(set.webRules.count == 1 ? "" : "s"); default_action \(set.config.defaultAction.rawValue), fail \(set.config.webFail.rawValue)")
        do { try worker.run(shouldStop: stop.isRaised) } catch {
            Output.error("enforcer: worker: \(error)")
            throw ExitCode(1)
        }
        let counters = worker.inspector.counters
        Log.line("worker: stopped (\(stop.name ?? "stop")); packets \(counters.packets), permitted \(counters.permitted), denied \(counters.denied), redirected \(counters.redirected), fail verdicts \(counters.failVerdicts)")
    }
}

/// SIGTERM and SIGINT, turned into a flag the worker loop reads.
final class StopSignal {
    private final class Flag: Sendable {
        let raised = Mutex<String?>(nil)
    }
    private let flag = Flag()
    private var sources: [DispatchSourceSignal] = []

    init() {
        let queue = DispatchQueue(label: "enforcer.signals")
        let flag = self.flag
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { flag.raised.withLock { $0 = name } }
            source.resume()
            sources.append(source)
        }
    }

    var name: String? { flag.raised.withLock { $0 } }
    func isRaised() -> Bool { name != nil }
}

enum Log {
    /// One line to standard error, with a UTC timestamp.
    static func line(_ text: String) {
        let stamp = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        FileHandle.standardError.write(Data("\(stamp) \(text)\n".utf8))
    }
}
