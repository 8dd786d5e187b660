import Compiler
import Foundation
import Kernel
import NFQueue

/// `enforcer run`: one thread, one poll over the queue, a wall-clock timer set to the next
/// flip, the policy directory's changes and the signals. Every change of the kernel state
/// goes through `Apply.load`, so each is one transaction and a refused one leaves the
/// previous generation live.
final class Daemon {
    struct Options {
        var directory: String
        var system: String?
        var stateDirectory: String?
        var force: Bool
    }

    private let options: Options
    private var set: PolicySet
    private var host: SystemDefinition
    private let store: GenerationStore
    private var compiled: CompiledHost
    private var worker: Worker?
    private let timer: WallClockTimer
    private let signals: SignalChannel
    private let watch: DirectoryWatch
    private var reloadDue: Double?
    private var status: DaemonStatus
    private var lastStatusWrite = 0.0
    /// Counters changed since the status file was last written (it is written at most every 2 s).
    private var statusDirty = false
    private var stopReason: String?
    private var portal: Portal?
    private var portalListener: ListeningSocket?
    private var portalClients: [Int32: PortalClient] = [:]

    private struct PortalClient {
        var connection: StreamConnection
        var peer: IPAddress
        var received: [UInt8] = []
        var since: Double
    }
    /// A portal visitor that sends nothing for this long is dropped.
    static let portalClientTimeout = 5.0
    /// Editors write a file in several steps; changes closer together than this are one reload.
    static let reloadSettle = 0.3

    /// Loads, checks and applies the policy, and binds the queue when web rules need it.
    /// Any failure here is reported and the daemon does not start.
    init(options: Options) throws {
        self.options = options
        signals = try SignalChannel([SIGTERM, SIGINT, SIGHUP])
        timer = try WallClockTimer()
        watch = try DirectoryWatch()
        set = try loadPolicy(directory: options.directory, quietWarnings: true)
        host = try resolveSystem(options.system, in: set)
        store = GenerationStore(directory: options.stateDirectory ?? set.config.stateDirectory)
        let instant = Date()
        let ids = store.policyIDs().assigning(set.policies.map(\.name))
        let failures = ExpectationRunner(graph: AccessGraph(set, ids: ids), now: instant).run()
        if !failures.isEmpty {
            Output.print(failures)
            throw ApplyFailure(lines: ["enforcer: \(failures.count) expectation\(failures.count == 1 ? "" : "s") failed; nothing was applied"])
        }
        let graph = OverrideFile.graph(set, stateDirectory: store.directory, at: instant, ids: ids)
        compiled = try HostCompiler(graph: graph, system: host, at: instant).compile()
        status = DaemonStatus(pid: getpid(), startedAt: instant, system: host.name,
                              policyDirectory: URL(fileURLWithPath: options.directory).standardizedFileURL.path)
        Log.line(try Apply.load(graph: graph, host: host, instant: instant, compiled: compiled, store: store, ids: ids, policyDirectory: options.directory,
                                replace: false, force: options.force, confirm: nil))
        status.record(compiled: compiled, generation: store.currentNumber(), at: instant)
        status.lastReload = .init(at: instant, ok: true, message: "started")
        try bindWorkerIfNeeded()
        startPortalIfNeeded()
        try armTimer(after: instant)
        watch.watch(watchedDirectories())
        writeStatus(force: true)
    }

    /// Runs until SIGTERM or SIGINT; then leaves the ruleset in place or flushes it ([run] on_stop).
    func run() throws {
        while stopReason == nil {
            var descriptors = [signals.fileDescriptor, timer.fileDescriptor, watch.fileDescriptor, worker?.fileDescriptor ?? -1,
                               portalListener?.fileDescriptor ?? -1]
            let clients = Array(portalClients.keys)
            descriptors += clients
            let now = Self.monotonicSeconds()
            var timeout: Int32 = worker?.isTracking == true || !portalClients.isEmpty || statusDirty ? 1000 : -1
            if let due = reloadDue { timeout = Int32(max(0, min(Double(timeout < 0 ? Int32.max : timeout), (due - now) * 1000))) }
            let ready = try Poll.wait(descriptors, timeoutMilliseconds: timeout)

            if ready[0] {
                for signal in signals.take() {
                    switch signal {
                    case SIGHUP: reload(because: "SIGHUP")
                    case SIGTERM: stopReason = "SIGTERM"
                    default: stopReason = "SIGINT"
                    }
                }
            }
            if ready[1] {
                switch timer.acknowledge() {
                case .fired: reapply(because: "time", notBefore: status.nextFlip?.at)
                case .clockChanged: reapply(because: "the wall clock was set", notBefore: nil)
                case .nothing: break
                }
            }
            if ready[2] && watch.drain() { reloadDue = Self.monotonicSeconds() + Self.reloadSettle }
            if let due = reloadDue, Self.monotonicSeconds() >= due {
                reloadDue = nil
                reload(because: "files changed under \(options.directory)")
            }
            if let worker {
                do { try worker.drain() } catch { Log.line("worker: \(error)") }
                if status.counters != worker.inspector.counters {
                    status.counters = worker.inspector.counters
                    statusDirty = true
                }
            }
            if ready[4] { acceptPortalVisitors() }
            for (index, descriptor) in clients.enumerated() where ready[5 + index] { servePortal(descriptor) }
            let expired = portalClients.filter { Self.monotonicSeconds() - $0.value.since > Self.portalClientTimeout }.map(\.key)
            for descriptor in expired { portalClients[descriptor] = nil }
            writeStatus(force: false)
        }
        finish()
    }

    /// The portal, on a gateway whose web rules include warn or aup.
    private func startPortalIfNeeded() {
        let rules = set.webRules.filter { $0.action == .warn || $0.action == .aup }
        guard !rules.isEmpty, compiled.isGateway else {
            portal = nil
            return
        }
        portal = Portal(webRules: set.webRules, acknowledgeFor: set.config.acknowledgeFor)
        guard portalListener == nil else { return }
        let endpoint = set.config.portalEndpoint
        do {
            portalListener = try ListeningSocket(address: endpoint.address, port: endpoint.port)
            Log.line("portal: serving \(set.config.portalURL) on \(endpoint.address.map { $0.family == .v6 ? "[\($0)]" : "\($0)" } ?? "*"):\(endpoint.port) for \(rules.count) warn/aup rule\(rules.count == 1 ? "" : "s")")
        } catch {
            Log.line("portal: not serving: \(error) (set [web] portal_listen to an address of this host)")
        }
    }

    private func acceptPortalVisitors() {
        while let (connection, peer) = portalListener?.accept() {
            portalClients[connection.fileDescriptor] = PortalClient(connection: connection, peer: peer, since: Self.monotonicSeconds())
        }
    }

    private func servePortal(_ descriptor: Int32) {
        guard var client = portalClients[descriptor], let portal else { portalClients[descriptor] = nil; return }
        guard let bytes = client.connection.read() else { portalClients[descriptor] = nil; return }
        client.received += bytes
        guard let answer = portal.answer(client.received, now: Date()) else {
            portalClients[descriptor] = client
            return
        }
        client.connection.write(answer.response)
        portalClients[descriptor] = nil
        if let rule = answer.acknowledged {
            let until = Date().addingTimeInterval(set.config.acknowledgeFor)
            worker?.acknowledge(client: client.peer, rule: rule, until: until)
            Log.line("portal: \(client.peer) acknowledged rule '\(rule)' until \(ISO8601DateFormatter().string(from: until))")
        }
    }

    private func finish() {
        let counters = worker.map { "; packets \($0.inspector.counters.packets), permitted \($0.inspector.counters.permitted), denied \($0.inspector.counters.denied), redirected \($0.inspector.counters.redirected), fail verdicts \($0.inspector.counters.failVerdicts)" } ?? ""
        worker = nil  // unbinds the queue: queued flows follow [kernel] queue_fail from now on
        if set.config.onStop == .flush {
            do {
                try Applier(stateDirectory: store.directory).flush(family: .inet, name: set.config.table)
                Log.line("run: stopped (\(stopReason ?? "stop")); enforcer's table removed ([run] on_stop = \"flush\")\(counters)")
            } catch {
                Log.line("run: stopped (\(stopReason ?? "stop")); removing enforcer's table failed: \(error)\(counters)")
            }
        } else {
            Log.line("run: stopped (\(stopReason ?? "stop")); the ruleset stays in force\(counters)")
        }
        status.stoppedAt = Date()
        writeStatus(force: true)
    }

    /// The same policy at a new instant: a flip (`notBefore` its boundary), or the clock moved
    /// (now, whatever was scheduled).
    private func reapply(because reason: String, notBefore boundary: Date?) {
        // A timer fires at or just after its instant; never compile a hair before the boundary.
        let instant = max(Date(), boundary ?? .distantPast)
        let ids = store.policyIDs().assigning(set.policies.map(\.name))
        let graph = OverrideFile.graph(set, stateDirectory: store.directory, at: instant, ids: ids)
        do {
            let next = try HostCompiler(graph: graph, system: host, at: instant).compile()
            let flipped = flips(from: compiled, to: next)
            // A flip is the policy's own schedule: it happens even where the SSH guard would object.
            let report = try Apply.load(graph: graph, host: host, instant: instant, compiled: next, store: store, ids: ids, policyDirectory: options.directory,
                                        replace: false, force: true, confirm: nil)
            compiled = next
            Log.line("flip (\(reason)): \(flipped.isEmpty ? "no policy changed state" : flipped.joined(separator: "; ")) — \(report)")
            status.record(compiled: compiled, generation: store.currentNumber(), at: instant)
        } catch {
            Log.line("flip (\(reason)) failed, the previous generation stays live: \(error)")
        }
        do { try armTimer(after: instant) } catch { Log.line("run: \(error)") }
        writeStatus(force: true)
    }

    /// The policy directory again: applied as a delta when valid, refused otherwise.
    private func reload(because reason: String) {
        let instant = Date()
        let result = PolicyLoader.load(directory: options.directory)
        defer {
            watch.watch(watchedDirectories())
            writeStatus(force: true)
        }
        guard let newSet = result.policySet else {
            let errors = result.diagnostics.filter { $0.severity == .error }
            var sources: [String: [Substring]] = [:]
            for diagnostic in errors { Log.line(Output.render(diagnostic, sources: &sources)) }
            Log.line("reload (\(reason)) refused: \(errors.count) error\(errors.count == 1 ? "" : "s"); generation \(store.currentNumber().map(String.init) ?? "-") stays live")
            status.lastReload = .init(at: instant, ok: false, message: "\(errors.count) error(s): \(errors.first?.description ?? "")")
            return
        }
        do {
            let newHost = try resolveSystem(options.system, in: newSet)
            let ids = store.policyIDs().assigning(newSet.policies.map(\.name))
            let failures = ExpectationRunner(graph: AccessGraph(newSet, ids: ids), now: instant).run()
            let graph = OverrideFile.graph(newSet, stateDirectory: store.directory, at: instant, ids: ids)
            if !failures.isEmpty {
                var sources: [String: [Substring]] = [:]
                for failure in failures { Log.line(Output.render(failure, sources: &sources)) }
                throw ApplyFailure(lines: ["\(failures.count) expectation\(failures.count == 1 ? "" : "s") failed"])
            }
            let next = try HostCompiler(graph: graph, system: newHost, at: instant).compile()
            let report = try Apply.load(graph: graph, host: newHost, instant: instant, compiled: next, store: store, ids: ids, policyDirectory: options.directory,
                                        replace: false, force: options.force, confirm: nil)
            set = newSet
            host = newHost
            compiled = next
            worker?.replaceMatcher(WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction))
            try bindWorkerIfNeeded()
            startPortalIfNeeded()
            try armTimer(after: instant)
            Log.line("reload (\(reason)): \(report)")
            status.record(compiled: compiled, generation: store.currentNumber(), at: instant)
            status.lastReload = .init(at: instant, ok: true, message: report)
        } catch {
            Log.line("reload (\(reason)) refused, generation \(store.currentNumber().map(String.init) ?? "-") stays live: \(error)")
            status.lastReload = .init(at: instant, ok: false, message: "\(error)")
        }
    }

    /// "'NAME' activates", "'NAME' deactivates (why)" for every policy whose state differs.
    private func flips(from old: CompiledHost, to new: CompiledHost) -> [String] {
        let before = Dictionary(old.enforced.map { ($0.entry.policy.name, $0.inactiveReason) }, uniquingKeysWith: { a, _ in a })
        var out: [String] = []
        var seen = Set<String>()
        for item in new.enforced where seen.insert(item.entry.policy.name).inserted {
            let was = before[item.entry.policy.name] ?? nil
            if (was == nil) != (item.inactiveReason == nil) {
                out.append(item.inactiveReason.map { "'\(item.entry.policy.name)' deactivates (\($0))" } ?? "'\(item.entry.policy.name)' activates")
            }
        }
        return out
    }

    private func armTimer(after instant: Date) throws {
        let trustChange = OverrideFile.read(store.directory).nextTrustChange(after: instant)
        let next = [compiled.nextFlip(after: instant), trustChange].compactMap { $0 }.min()
        try timer.arm(at: next)
        status.nextFlip = next.map { at in
            DaemonStatus.NextFlip(at: at, policies: compiled.enforced.filter { $0.entry.policy.schedule.nextFlip(after: instant) == at }.map(\.entry.policy.name))
        }
    }

    private func bindWorkerIfNeeded() throws {
        guard worker == nil, !compiled.queuedFlows.isEmpty else { return }
        let matcher = WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction)
        worker = try Worker(queueNumber: set.config.queue, queueFailOpen: set.config.queueFail == .open, queueMaxLength: set.config.queueMaxLength,
                            inspector: Inspector(matcher: matcher, settings: InspectorSettings(config: set.config)),
                            log: Log.write(bytes:), linePrefix: { Log.prefix() })
        Log.line("worker: judging queue \(set.config.queue) with \(set.webRules.count) web rule\(set.webRules.count == 1 ? "" : "s"); default_action \(set.config.defaultAction.rawValue), fail \(set.config.webFail.rawValue)")
    }

    /// The policy directory, rules.d and its sub-folders, and the folders of list files.
    private func watchedDirectories() -> [String] {
        let rules = options.directory + "/rules.d"
        var directories = [options.directory, rules]
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: rules) {
            var isDirectory: ObjCBool = false
            directories += entries.map { rules + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && isDirectory.boolValue }
        }
        directories += set.webRules.flatMap(\.domainListPaths).map { ($0 as NSString).deletingLastPathComponent }
        return Array(Set(directories.map { ($0 as NSString).standardizingPath })).sorted()
    }

    /// The status file `enforcer status` reads: on every state change, and at most every 2 s for counters.
    private func writeStatus(force: Bool) {
        let now = Self.monotonicSeconds()
        guard force || (statusDirty && now - lastStatusWrite >= 2) else { return }
        lastStatusWrite = now
        statusDirty = false
        do { try status.write(to: store.directory) } catch { Log.line("run: status file: \(error)") }
    }

    static func monotonicSeconds() -> Double { ProcessInfo.processInfo.systemUptime }
}

/// What `enforcer run` reports about itself, kept in the state directory as daemon.json.
struct DaemonStatus: Codable {
    struct PolicyState: Codable {
        var name: String
        var kind: String
        var hook: String
        var active: Bool
        var reason: String?
    }
    struct NextFlip: Codable {
        var at: Date
        var policies: [String]
    }
    struct Reload: Codable {
        var at: Date
        var ok: Bool
        var message: String
    }

    var pid: Int32
    var startedAt: Date
    var stoppedAt: Date?
    var system: String
    var policyDirectory: String
    var generation: Int?
    var appliedAt: Date?
    var policies: [PolicyState] = []
    var nextFlip: NextFlip?
    var lastReload: Reload?
    var counters: WorkerCounters?

    init(pid: Int32, startedAt: Date, system: String, policyDirectory: String) {
        self.pid = pid
        self.startedAt = startedAt
        self.system = system
        self.policyDirectory = policyDirectory
    }

    mutating func record(compiled: CompiledHost, generation: Int?, at instant: Date) {
        self.generation = generation
        appliedAt = instant
        policies = compiled.enforced.map {
            PolicyState(name: $0.entry.policy.name, kind: $0.entry.policy.kindWord, hook: "\($0.hook)", active: $0.inactiveReason == nil, reason: $0.inactiveReason)
        }
    }

    static func file(in directory: String) -> String { directory + "/daemon.json" }

    func write(to directory: String) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try encoder.encode(self).write(to: URL(fileURLWithPath: Self.file(in: directory)), options: .atomic)
    }

    static func read(from directory: String) throws -> DaemonStatus {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(DaemonStatus.self, from: Data(contentsOf: URL(fileURLWithPath: file(in: directory))))
    }
}
