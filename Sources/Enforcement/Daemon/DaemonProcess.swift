import Compiler
import Foundation
import NFQueue

/// `enforcer run` as a process: the daemon's decisions (`Daemon`) wired to its event
/// sources on one loop: signals, the flip timer, the policy directory's changes, the
/// NFQUEUE worker's socket, the portal and the report writer. After each event it follows
/// what changed: the timer set to the next flip, the worker bound or given the new rules,
/// the portal started, the files watched anew.
public final class DaemonProcess {
    private let loop = EventLoop()
    private let signals: SignalSource
    private let timer: WallClockTimerSource
    private let confirmTimer: WallClockTimerSource
    private let watch: PolicyWatchSource
    private let drift: DriftMonitorSource
    private var reportWriter: ReportWriter!
    private let daemon: Daemon
    private var queue: QueueSource?
    /// One server per client-side address (the gateway's own addresses in the policy).
    private var portals: [PortalServer] = []
    /// `GET /metrics` on `[metrics] listen`, and the endpoint it listens on.
    private var metrics: (server: PortalServer, listen: String)?
    private lazy var exporter = MetricsExporter { [unowned self] in metricsReading() }
    /// The fleet store this daemon follows (`enforcer run --store`).
    private var storeSource: StoreWatchSource?
    /// systemd's notification socket, when it started this daemon as `Type=notify`.
    private let notifier: ServiceManagerNotifier?

    /// Loads, checks and applies the policy, and binds the queue when web rules need it.
    /// Any failure here is thrown and the daemon does not start.
    /// With `store`, the pipeline's source is that store's mirror (see `StoreMirror`), taken
    /// up to date by `FleetAgent.prepare`, and the daemon follows the store from `after`.
    public init(pipeline: Pipeline, options: Daemon.Options, store: (agent: FleetAgentSetup, after: Int64)? = nil) throws {
        // Signals first: blocking them must come before any thread starts. The notifier too:
        // it takes its variables out of the environment, which is safe only while no other
        // thread reads it.
        signals = try SignalSource()
        notifier = ServiceManagerNotifier(environment: ProcessInfo.processInfo.environment)
        timer = try WallClockTimerSource(fired: .timerFired, clockChanged: .clockSet)
        confirmTimer = try WallClockTimerSource(fired: .confirmDue, clockChanged: .confirmDue)
        watch = try PolicyWatchSource(directory: pipeline.source.location)
        // Listening before the first apply: nothing another process does after it goes unseen.
        drift = try DriftMonitorSource()
        daemon = try Daemon(pipeline: pipeline, options: options, dataplane: KernelDataplane())
        Log.follow(daemon.plan.policy.config.logLevel)
        reportWriter = ReportWriter { [unowned self] in
            do { try daemon.report.write(to: daemon.state) } catch { Log.error("run: status file: \(error)") }
        }
        for source in [signals, timer, confirmTimer, watch, drift] as [any EventSource] { loop.add(source) }
        loop.add(reportWriter)
        let handle: (DaemonEvent) -> Void = { [unowned self] event in _ = self.handle(event) }
        signals.onEvent = handle
        timer.onEvent = handle
        confirmTimer.onEvent = handle
        drift.onEvent = handle
        drift.changedRecently = { [unowned self] in daemon.lastApplied.map { Date().timeIntervalSince($0) < 2 } ?? false }
        drift.untouchedThrough = { [unowned self] from, to in daemon.state.generations.advanceKernelGeneration(from: from, to: to) }
        watchTables()
        watch.onEvent = handle
        try bindWorkerIfNeeded()
        startPortalIfNeeded()
        startMetricsIfNeeded()
        try timer.arm(at: daemon.nextWake)
        try confirmTimer.arm(at: daemon.confirmDeadline)
        watch.watch(daemon.watchedDirectories)
        if let store { try follow(store.agent, after: store.after) }
        reportWriter.writeNow()
        if let notifier {
            loop.add(notifier)
            // Only now: units ordered after this one (network-pre.target) start with the ruleset in the kernel.
            notifier.ready(status: statusLine())
        }
    }

    /// What `systemctl status` shows: the live generation, the next flip, a refused reload.
    private func statusLine() -> String {
        let report = daemon.report
        var text = "generation \(report.generation.map(String.init) ?? "-") live for \(report.system)"
        if let next = report.nextFlip { text += "; next flip \(ISO8601.string(next.at))" }
        if let reload = report.lastReload, !reload.ok { text += "; last reload refused: \(reload.message)" }
        return text
    }

    private func follow(_ setup: FleetAgentSetup, after revision: Int64) throws {
        let agent = FleetAgent(setup: setup, wake: try WakePipe())
        let source = StoreWatchSource(agent: agent, mirror: setup.mirror)
        source.writeOverrides = { [unowned self] in try daemon.state.overrides.write($0) }
        let held = setup.mirror.held()
        daemon.report.store = DaemonReport.Store(summary: setup.settings.summary, revision: held?.revision ?? 0, connected: true,
                                                 seenRevision: revision, lastError: nil)
        source.onUpdate = { [unowned self] revision, reason in
            let outcome = handle(.reload(reason: reason))
            // A refused bundle leaves the previous one in force, and its revision.
            var store = daemon.report.store
            if outcome != .refused { store?.revision = revision }
            daemon.report.store = store
            agent.applied(revision: store?.revision ?? 0, generation: daemon.state.generations.currentNumber(), system: daemon.plan.host.name,
                          error: outcome == .refused ? "revision \(revision) refused: \(daemon.report.lastReload?.message ?? "")" : nil)
            reportWriter.writeNow()
        }
        source.onConnection = { [unowned self] connection in
            guard var store = daemon.report.store else { return }
            store.connected = connection.connected
            store.seenRevision = max(connection.seenRevision, store.seenRevision)
            store.lastError = connection.lastError
            if store != daemon.report.store {
                daemon.report.store = store
                reportWriter.markDirty()
            }
        }
        storeSource = source
        loop.add(source)
        agent.applied(revision: held?.revision ?? 0, generation: daemon.state.generations.currentNumber(), system: daemon.plan.host.name, error: nil)
        agent.start(after: revision, digest: held?.digest)
    }

    /// Runs until SIGTERM or SIGINT; then leaves the ruleset in place or flushes it ([run] on_stop).
    public func run() throws {
        while daemon.stopReason == nil { try loop.turn() }
        notifier?.stopping(status: "stopping (\(daemon.stopReason ?? "")); generation \(daemon.report.generation.map(String.init) ?? "-") was live")
        let summary = queue.map { queue in
            let counters = queue.worker.inspector.counters
            return "; packets \(counters.packets), permitted \(counters.permitted), denied \(counters.denied), redirected \(counters.redirected), fail verdicts \(counters.failVerdicts) (\(counters.matchErrors) from pattern match errors), stray segments dropped \(counters.strayDropped)"
        } ?? ""
        if let queue { loop.remove(queue) }
        if let storeSource { loop.remove(storeSource); storeSource.agent.stop() }
        queue = nil  // unbinds the queue: queued flows follow [kernel] queue_fail from now on
        daemon.finish(workerSummary: summary)
        reportWriter.writeNow()
    }

    @discardableResult
    private func handle(_ event: DaemonEvent) -> Daemon.Outcome {
        if case .reload = event { notifier?.reloading() }
        let outcome = daemon.handle(event)
        if case .reload = event { notifier?.ready(status: statusLine()) } else if outcome != .nothing { notifier?.status(statusLine()) }
        if outcome == .stopping { return outcome }
        if outcome == .reloaded {
            watchTables()
            Log.follow(daemon.plan.policy.config.logLevel)
        }
        if outcome == .reloaded {
            queue?.worker.replaceMatcher(WebMatcher(rules: daemon.plan.policy.webRules, defaultAction: daemon.plan.policy.config.defaultAction))
            queue?.worker.follow(daemon.plan.policy.config)
            do { try bindWorkerIfNeeded() } catch { Log.error("worker: \(error)") }
            startPortalIfNeeded()
            startMetricsIfNeeded()
        }
        do {
            try timer.arm(at: daemon.nextWake)
            try confirmTimer.arm(at: daemon.confirmDeadline)
        } catch { Log.error("run: \(error)") }
        // A reload, even a refused one, may have added files or list folders to watch.
        if case .reload = event { watch.watch(daemon.watchedDirectories) }
        reportWriter.writeNow()
        return outcome
    }

    /// The metrics endpoint on `[metrics] listen` (loopback by default), moved when a reload
    /// changes the address, stopped when it is emptied.
    private func startMetricsIfNeeded() {
        let config = daemon.plan.policy.config
        let listen = config.metricsEndpoint.map { $0.address.family == .v6 ? "[\($0.address)]:\($0.port)" : "\($0.address):\($0.port)" }
        guard listen != metrics?.listen else { return }
        metrics?.server.stop()
        metrics = nil
        guard let endpoint = config.metricsEndpoint, let listen else { return }
        do {
            let socket = try ListeningSocket(address: endpoint.address, port: endpoint.port)
            let exporter = exporter
            metrics = (PortalServer(socket: socket, loop: loop, respond: exporter.answer), listen)
            Log.info("metrics: serving GET /metrics on \(listen)")
        } catch {
            Log.warning("metrics: not serving on \(listen): \(error) (set [metrics] listen to a free address of this host, or \"\" for none)")
        }
    }

    /// What a scrape of the metrics reads: the kernel's counters (one dump of each of
    /// enforcer's tables), the worker's counts, the kernel queue's drops, the daemon's tally.
    private func metricsReading() -> MetricsExporter.Reading {
        let plan = daemon.plan
        let counters = try? PolicyCounters.read(table: plan.compiled.ruleset.table.name, state: daemon.state).get()
        let queueStats = queue == nil ? nil : (try? String(contentsOfFile: KernelQueueStats.path, encoding: .utf8))
            .flatMap { KernelQueueStats.parse($0, queue: plan.policy.config.queue) }
        return MetricsExporter.Reading(counters: counters, policies: Array(Set(plan.compiled.enforced.map(\.entry.policy.name))),
                                       worker: queue?.worker.inspector.counters, kernelQueue: queueStats,
                                       tally: daemon.tally, applySeconds: daemon.takeApplySeconds())
    }

    /// enforcer's tables as the live plan names them, for the drift monitor.
    private func watchTables() {
        let table = daemon.plan.compiled.ruleset.table
        drift.tables = [table.name, KernelDataplane.recentTableName(of: table.name)]
        drift.expectedSets = Set(table.sets(withRole: .timedGrants).map(\.name))
    }

    private func bindWorkerIfNeeded() throws {
        let plan = daemon.plan
        guard queue == nil, !plan.compiled.queuedFlows.isEmpty else { return }
        let config = plan.policy.config
        let matcher = WebMatcher(rules: plan.policy.webRules, defaultAction: config.defaultAction)
        let worker = try Worker(queueNumber: config.queue, queueFailOpen: config.queueFull == .open, queueMaxLength: config.queueMaxLength,
                                inspector: Inspector(matcher: matcher, settings: InspectorSettings(config: config)),
                                log: Log.write(bytes:), linePrefix: { priority in
                                    let level = LogLevel(rawValue: priority) ?? .info
                                    return level <= Log.threshold ? Log.prefix(level) : nil
                                }, flowLog: FlowLogFilter(mode: config.logFlows, window: config.logRepeatWindow))
        let source = QueueSource(worker: worker)
        source.onDrained = { [unowned self] worker in
            if daemon.record(counters: worker.inspector.counters) { reportWriter.markDirty() }
        }
        queue = source
        loop.add(source)
        Log.info("worker: judging queue \(config.queue) with \(counted(plan.policy.webRules.count, "web rule")); default_action \(config.defaultAction.rawValue), fail \(config.webFail.rawValue)")
    }

    /// The portal, on a gateway whose web rules include warn or aup, or deny with `deny_page`
    /// (the block page). It listens where the clients are: on `portal_listen` (or the address
    /// of `portal_url`) when that names one, otherwise on each of the gateway's own addresses
    /// in the policy (its client side), never on every address, which would answer the
    /// upstream side too.
    private func startPortalIfNeeded() {
        let policy = daemon.plan.policy
        guard policy.config.servesPortal(webRules: policy.webRules), daemon.plan.compiled.isGateway else {
            for portal in portals { portal.stop() }
            portals = []
            return
        }
        let pages = Portal(config: policy.config, webRules: policy.webRules)
        if !portals.isEmpty {
            for portal in portals { portal.replace(pages) }
            return
        }
        let endpoint = policy.config.portalEndpoint
        let present = Set(HostAddresses.current())
        let addresses = endpoint.address.map { [$0] }
            ?? daemon.plan.host.addresses.filter { $0.prefixLength == $0.address.family.bitWidth && present.contains($0.address) }.map(\.address)
        guard !addresses.isEmpty else {
            Log.warning("portal: not serving: none of \(daemon.plan.host.name)'s addresses in the policy is on this host (set [web] portal_listen to a client-side address)")
            return
        }
        var serving: [String] = []
        for address in addresses {
            let shown = address.family == .v6 ? "[\(address)]:\(endpoint.port)" : "\(address):\(endpoint.port)"
            do {
                let socket = try ListeningSocket(address: address, port: endpoint.port)
                let server = PortalServer(socket: socket, portal: pages, loop: loop)
                server.onAcknowledge = { [unowned self] client, rule, until in
                    queue?.worker.acknowledge(client: client, rule: rule, until: until)
                    Log.info("portal: \(client) acknowledged \(rule.isEmpty ? "the default action" : "rule '\(rule)'") until \(ISO8601.string(until))")
                }
                portals.append(server)
                serving.append(shown)
            } catch {
                Log.warning("portal: not serving on \(shown): \(error) (set [web] portal_listen to an address of this host)")
            }
        }
        if !serving.isEmpty {
            let notices = policy.webRules.count { $0.action == .warn || $0.action == .aup }
            let denies = policy.config.defaultAction == .deny || policy.webRules.contains { $0.action == .deny }
            let blocks = policy.config.denyPage && denies ? " and the block page of deny rules (\(policy.config.blockPageURL))" : ""
            Log.info("portal: serving \(policy.config.portalURL) on \(serving.joined(separator: ", ")) for \(counted(notices, "warn/aup rule"))\(blocks)")
        }
    }
}
