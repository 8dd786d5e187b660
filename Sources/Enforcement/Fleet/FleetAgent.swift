import Compiler
import Etcd
import Foundation

/// The agent's side of the store (`enforcer run --store`): it follows the fleet's
/// `desired/` keys with one watch, fetches the chunks a new bundle needs, and hands each
/// bundle to the daemon's loop; it tells the fleet what this host enforces (its presence,
/// under a lease that runs out when the agent is gone).
///
/// It works on the concurrency runtime's threads; the loop takes what it found through
/// `take()` after `wake` signals. When the store cannot be reached the host keeps
/// enforcing what it has (fail-static) and the agent reconnects with a growing, jittered
/// delay, resuming from the last revision it saw; a revision etcd has compacted away means
/// a fresh read of the bundle, never a flush.
public final class FleetAgent: @unchecked Sendable {
    public struct Update: Sendable {
        public var revision: Int64
        public var bundle: FleetBundle
        public var files: [(path: String, content: Data)]
    }

    /// What the loop shows in `status`.
    public struct Connection: Sendable, Equatable {
        public var connected = false
        /// The last revision of the store the watch has seen (events or progress).
        public var seenRevision: Int64 = 0
        public var lastError: String?
    }

    public let settings: StoreSettings
    public let store: FleetStore
    let mirror: StoreMirror
    let host: String
    let wake: WakePipe

    private let lock = NSLock()
    private var pending: Update?
    private var notes: [String] = []
    private var connection = Connection()
    private var presence: FleetStore.Presence?
    /// Counts the presences the loop reported, so the task knows one is new.
    private var presenceVersion = 0
    private var heldDigest: String?
    private var tasks: [Task<Void, Never>] = []
    /// The chunks of the bundle held, by digest; read from the mirror once, then kept from
    /// each fetch: only the follow task uses them.
    private var heldChunks: [String: Data]?

    init(settings: StoreSettings, store: FleetStore, mirror: StoreMirror, host: String, wake: WakePipe) {
        self.settings = settings
        self.store = store
        self.mirror = mirror
        self.host = host
        self.wake = wake
    }

    /// Brings the mirror up to the store's bundle before the daemon starts. With the store
    /// unreachable, a mirror from an earlier run is used (and said so); with neither, the
    /// agent cannot start.
    public static func prepare(settings: StoreSettings, store: FleetStore, mirror: StoreMirror, log: (String) -> Void) throws -> Int64 {
        let held = mirror.held()
        let read: FleetStore.Read
        do {
            read = try waitFor { try await store.bundle() }
        } catch {
            guard let held else {
                throw FleetError.store("\(error); and no earlier copy of fleet \(settings.layout.fleet)'s policy is in \(mirror.base): the agent cannot start")
            }
            log("store: \(error); enforcing revision \(held.revision) from \(mirror.directory) until it can be reached")
            return held.revision
        }
        guard let bundle = read.bundle else {
            if let held {
                log("store: fleet \(settings.layout.fleet) has no policy at \(settings.summary); enforcing revision \(held.revision) from \(mirror.directory)")
                return held.revision
            }
            throw FleetError.store("fleet \(settings.layout.fleet) has no policy in the store \(settings.summary) yet: push one with `enforcer fleet push`")
        }
        if held?.digest != bundle.digest {
            let chunks = mirror.chunks()
            let files = try waitFor { try await store.files(of: bundle, reusing: chunks).files }
            try mirror.write(files, revision: read.modRevision, digest: bundle.digest)
        }
        log("store: \(settings.summary) at revision \(read.revision); policy of revision \(read.modRevision)")
        return read.revision
    }

    /// Starts following the store from the revision after `revision`.
    func start(after revision: Int64, digest: String?) {
        lock.withLock {
            heldDigest = digest
            connection.seenRevision = revision
        }
        tasks.append(Task.detached { [self] in await follow(from: revision + 1) })
        tasks.append(Task.detached { [self] in await keepPresence() })
    }

    func stop() {
        for task in tasks { task.cancel() }
        tasks = []
        let store = store, host = host, layout = settings.layout
        // The presence goes with the agent; its lease would take it anyway.
        _ = try? waitFor { try await store.client.delete(.key(layout.presenceKey(host))) }
    }

    /// The bundle waiting for the loop, and the lines to log.
    func take() -> (update: Update?, notes: [String], connection: Connection) {
        lock.withLock {
            defer { pending = nil; notes = [] }
            return (pending, notes, connection)
        }
    }

    /// What this host now enforces (after the loop applied, or refused, a bundle).
    func applied(revision: Int64, generation: Int?, system: String, error: String?) {
        lock.withLock {
            presence = FleetStore.Presence(host: host, system: system, revision: revision, generation: generation,
                                           appliedAt: error == nil ? Date() : nil, error: error)
            presenceVersion += 1
        }
    }

    private func note(_ line: String) {
        lock.withLock { notes.append(line) }
        wake.signal()
    }

    // MARK: Following the store

    private func follow(from start: Int64) async {
        var next = start
        var delay = 0.25
        while !Task.isCancelled {
            do {
                let watch = try await store.client.watch(.prefix(settings.layout.desiredPrefix), from: next, progressNotify: true)
                let reconnected = lock.withLock { () -> Bool in
                    defer { connection.connected = true; connection.lastError = nil }
                    return connection.lastError != nil
                }
                if reconnected { note("store: reached again; watching from revision \(next)") }
                delay = 0.25
                for try await response in watch {
                    for event in response.events where event.kv.keyString == settings.layout.pushKey && event.kind == .put {
                        try await deliver(FleetBundle.decode(event.kv.value), revision: event.kv.modRevision)
                    }
                    next = max(next, response.header.revision + 1)
                    lock.withLock { connection.seenRevision = max(connection.seenRevision, response.header.revision) }
                }
                if Task.isCancelled { return }
            } catch let error as EtcdError where error.kind == .compacted {
                note("store: revision \(next) was compacted away (oldest kept \(error.compactRevision.map(String.init) ?? "?")): reading the bundle afresh")
                do {
                    let read = try await store.bundle()
                    if let bundle = read.bundle { try await deliver(bundle, revision: read.modRevision) }
                    next = read.revision + 1
                    continue
                } catch { await pause(after: error, delay: &delay) }
            } catch {
                if Task.isCancelled { return }
                await pause(after: error, delay: &delay)
            }
        }
    }

    /// A bundle whose files differ from those held goes to the loop.
    private func deliver(_ bundle: FleetBundle, revision: Int64) async throws {
        guard lock.withLock({ heldDigest }) != bundle.digest else { return }
        let (files, chunks) = try await store.files(of: bundle, reusing: heldChunks ?? mirror.chunks())
        heldChunks = chunks
        lock.withLock {
            pending = Update(revision: revision, bundle: bundle, files: files)
            heldDigest = bundle.digest
        }
        wake.signal()
    }

    private func pause(after error: any Error, delay: inout Double) async {
        let text = "\(error)"
        let first = lock.withLock { () -> Bool in
            defer { connection.connected = false; connection.lastError = text }
            return connection.lastError != text
        }
        // Jittered, so a thousand agents do not all come back at the same instant.
        let wait = delay * Double.random(in: 0.5...1.5)
        if first { note("store: \(text); enforcing what is in force, trying again in \(String(format: "%.1f", wait)) s (and on, up to every 10 s)") }
        try? await Task.sleep(for: .seconds(wait))
        delay = min(delay * 2, 10)
    }

    // MARK: Presence

    /// Keeps this host's presence key under a lease of 30 s, renewed every 10 s and
    /// rewritten whenever the loop reports what it applied (looked for every 20 ms). A lease
    /// lost (the store was down longer than it) is replaced by a new one.
    private func keepPresence() async {
        var lease: Int64 = 0
        var announced = -1
        var renewed = Date.distantPast
        while !Task.isCancelled {
            let (version, current) = lock.withLock { (presenceVersion, presence) }
            do {
                if lease == 0 {
                    lease = try await store.client.grantLease(ttl: 30).id
                    announced = -1
                    renewed = Date()
                }
                if let current, version != announced {
                    try await store.announce(current, lease: lease)
                    announced = version
                }
                if Date().timeIntervalSince(renewed) >= 10 {
                    _ = try await store.client.keepAliveOnce(lease: lease)
                    renewed = Date()
                }
            } catch {
                lease = 0
                try? await Task.sleep(for: .seconds(1))
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// What `enforcer run --store` hands the daemon: how to reach the store, the client, the
/// mirror it enforces from, and the name this host announces itself under.
public struct FleetAgentSetup: Sendable {
    public var settings: StoreSettings
    public var store: FleetStore
    public var mirror: StoreMirror
    public var host: String

    public init(settings: StoreSettings, store: FleetStore, mirror: StoreMirror, host: String) {
        self.settings = settings
        self.store = store
        self.mirror = mirror
        self.host = host
    }
}
