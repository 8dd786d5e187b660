import Compiler
import Etcd
import Foundation
import Kernel

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
    /// What the loop takes in: a new bundle, a new file of enrolled systems, or both.
    public struct Update: Sendable {
        public var revision: Int64
        public var bundle: FleetBundle?
        /// The bundle's chunks: its files' bytes, joined as the mirror writes them.
        public var pieces: FleetStore.Pieces?
        /// The files whose chunks are those of the bundle of digest `since`: the mirror, when
        /// it holds that bundle, leaves them as they are without comparing them.
        public var unchanged: (since: String, paths: Set<String>)?
        /// The bundle's new chunks: how many the manifest's patches made from chunks held,
        /// how many were fetched (nil when it had none).
        public var chunks: (patched: Int, fetched: Int)?
        public var enrolled: String?
        /// "app-1 added", for the log.
        public var enrolledChanges: String?
        /// The fleet's runtime overrides, when they changed (see `FleetOverrides`).
        public var overrides: RuntimeOverrides?
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
    /// This host's enrolment (it writes its member record), nil for a host of the pushed policy.
    let member: (slot: String, name: String)?
    let leaseTTL: Int64
    /// How long an enrolled system whose lease ran out stays in the policy.
    let grace: TimeInterval

    private let lock = NSLock()
    private var pending: Update?
    private var notes: [LogEntry] = []
    private var connection = Connection()
    private var presence: FleetStore.Presence?
    /// Counts the presences the loop reported, so the task knows one is new.
    private var presenceVersion = 0
    private var heldDigest: String?
    private var tasks: [Task<Void, Never>] = []
    /// The chunks of the bundle held, by digest; read from the mirror once, then kept from
    /// each fetch: only the follow task uses them.
    private var heldChunks: [String: Data]?
    /// The bundle last handed to the loop, or the one `prepare` read (nil when it could not
    /// read the store). A push's head is an edit of it.
    private var heldBundle: FleetBundle?
    /// The enrolled systems as the watch told them; nil until a full read of `desired/`
    /// (after a start with the store down, its first reconnection).
    private var enrolled: EnrolledSystems?
    /// The names the pushed policy defines: no enrolled system may take them.
    private var taken: Set<String> = []
    /// The names each pushed file defines, with the file's chunks: a push reads again only
    /// the files it changed (reading them all took 40–90 ms of each push at 14 MB).
    private var namesByFile: [String: (chunks: [String], names: Set<String>)] = [:]
    private var rendered: (text: String, systems: [String: String])?
    private var reported: Set<String> = []
    private var nextChange: Date?
    /// The runtime overrides under `desired/overrides/`, as the watch told them.
    private var overrides: FleetOverrides

    init(setup: FleetAgentSetup, wake: WakePipe) {
        settings = setup.settings
        store = setup.store
        mirror = setup.mirror
        host = setup.host
        member = setup.member
        leaseTTL = setup.leaseTTL
        grace = setup.grace
        self.wake = wake
        // The names of each file, kept with its chunks when the mirror holds the store's
        // bundle: the first push then reads only the files it changed.
        namesByFile = setup.namesByFile ?? Self.namesByFile(in: setup.mirror, bundle: setup.bundle)
        taken = namesByFile.values.reduce(into: Set<String>()) { $0.formUnion($1.names) }
        heldChunks = setup.chunks
        heldBundle = setup.bundle
        enrolled = setup.enrolled
        rendered = setup.rendered.map { ($0.text, $0.systems) }
        overrides = setup.overrides
    }

    /// What `prepare` read: the store's revision, and the enrolled systems as of it (nil
    /// when the store could not be read: the agent reads them when it can).
    public struct Prepared: Sendable {
        public var revision: Int64
        public var enrolled: EnrolledSystems?
        public var rendered: EnrolledSystems.Rendering?
        /// The runtime overrides as of `revision`, to write into the state directory before
        /// the first plan (empty when the store could not be read: the file kept stands).
        public var overrides: FleetOverrides?
        /// The chunks of the bundle the mirror holds, when `prepare` read them: the agent
        /// keeps them rather than reading and hashing the mirror again at the first push.
        public var chunks: [String: Data]?
        /// The bundle of the store when the mirror holds it: the next push's head edits it.
        public var bundle: FleetBundle?
        /// The system names of each pushed file, read once for the rendering above.
        public var namesByFile: [String: (chunks: [String], names: Set<String>)]?
    }

    /// Brings the mirror up to the store's `desired/` keys (the bundle and the enrolled
    /// systems, read at one revision) before the daemon starts. With the store unreachable,
    /// a mirror from an earlier run is used (and said so); with neither, the agent cannot start.
    public static func prepare(settings: StoreSettings, store: FleetStore, mirror: StoreMirror, grace: TimeInterval, log: (LogEntry) -> Void) throws -> Prepared {
        let held = mirror.held()
        let layout = settings.layout
        let response: RangeResponse
        do {
            response = try waitFor { try await store.client.range(.prefix(layout.desiredPrefix)) }
        } catch {
            guard let held else {
                throw FleetError.store("cannot read fleet \(layout.fleet) at \(settings.summary): \(error); and no earlier copy of its policy is in \(mirror.base): the agent cannot start")
            }
            log(.warning("store: cannot read \(settings.summary): \(error); enforcing revision \(held.revision) from \(mirror.directory) until it can be reached"))
            return Prepared(revision: held.revision, enrolled: nil, rendered: nil, overrides: nil)
        }
        let desired = DesiredKeys(response.kvs, layout: layout)
        let enrolled = desired.enrolled, overrides = desired.overrides
        guard let pushed = desired.pushed else {
            if let held {
                log(.warning("store: fleet \(layout.fleet) has no policy at \(settings.summary); enforcing revision \(held.revision) from \(mirror.directory)"))
                return Prepared(revision: held.revision, enrolled: nil, rendered: nil, overrides: nil)
            }
            throw FleetError.store("fleet \(layout.fleet) has no policy in the store \(settings.summary) yet: push one with `enforcer fleet push`")
        }
        let bundle: FleetBundle
        do { bundle = try waitFor { try await store.resolve(pushed.value).bundle } } catch {
            // A value this agent cannot read, or its table out of reach: not "no policy".
            guard let held else {
                throw FleetError.store("cannot read the policy of fleet \(layout.fleet) (revision \(pushed.modRevision)) at \(settings.summary): \(error); and no earlier copy of it is in \(mirror.base): the agent cannot start")
            }
            log(.warning("store: cannot read the policy of revision \(pushed.modRevision) at \(settings.summary): \(error); enforcing revision \(held.revision) from \(mirror.directory)"))
            return Prepared(revision: held.revision, enrolled: nil, rendered: nil, overrides: nil)
        }
        // The chunks are kept when they were at hand; a mirror already up to date is not read
        // for them here (that waits for the first push).
        var chunks: [String: Data]?
        if held?.digest != bundle.digest {
            let have = mirror.chunks()
            let made = try waitFor { try await store.files(of: bundle, reusing: have) }
            try mirror.write(made.files, revision: pushed.modRevision, digest: bundle.digest)
            chunks = made.chunks
        }
        let names = namesByFile(in: mirror, bundle: bundle)
        let taken = names.values.reduce(into: Set<String>()) { $0.formUnion($1.names) }
        let rendering = enrolled.render(taken: taken, now: Date(), grace: grace)
        try mirror.writeEnrolled(rendering.text)
        for problem in rendering.problems { log(.warning("store: \(problem)")) }
        log(.info("store: \(settings.summary) at revision \(response.header.revision); policy of revision \(pushed.modRevision); "
            + counted(rendering.systems.count, "enrolled system"), ["event": "store", "revision": "\(response.header.revision)"]))
        return Prepared(revision: response.header.revision, enrolled: enrolled, rendered: rendering, overrides: overrides, chunks: chunks,
                        bundle: bundle, namesByFile: names)
    }

    /// The system names each pushed file of the mirror defines, with the file's chunks when the
    /// mirror holds `bundle` (else none: the first push reads every file again).
    static func namesByFile(in mirror: StoreMirror, bundle: FleetBundle?) -> [String: (chunks: [String], names: Set<String>)] {
        let chunksOf = bundle.flatMap { bundle in mirror.held()?.digest == bundle.digest ? bundle.files : nil }
        var names: [String: (chunks: [String], names: Set<String>)] = [:]
        for file in mirror.pushedFiles() {
            names[file.path] = (chunksOf?[file.path]?.chunks ?? [], EnrolledSystems.definedNames(in: [file.content]))
        }
        return names
    }

    /// Starts following the store from the revision after `revision`.
    func start(after revision: Int64, digest: String?) {
        lock.withLock {
            heldDigest = digest
            connection.seenRevision = revision
        }
        tasks.append(Task.detached { [self] in await follow(from: revision + 1) })
        tasks.append(Task.detached { [self] in await keepPresence() })
        tasks.append(Task.detached { [self] in await keepTime() })
    }

    func stop() {
        for task in tasks { task.cancel() }
        tasks = []
        let store = store, host = host, layout = settings.layout
        // The presence goes with the agent; its lease would take it anyway.
        _ = try? waitFor { try await store.client.delete(.key(layout.presenceKey(host))) }
    }

    /// The bundle waiting for the loop, and the lines to log.
    func take() -> (update: Update?, notes: [LogEntry], connection: Connection) {
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

    private func note(_ entry: LogEntry) {
        lock.withLock { notes.append(entry) }
        wake.signal()
    }

    // MARK: Following the store

    private func follow(from start: Int64) async {
        var next = start
        var delay = 0.25
        while !Task.isCancelled {
            do {
                if lock.withLock({ enrolled == nil }) { next = try await readAfresh() + 1 }
                let watch = try await store.client.watch(.prefix(settings.layout.desiredPrefix), from: next, progressNotify: true)
                let reconnected = lock.withLock { () -> Bool in
                    defer { connection.connected = true; connection.lastError = nil }
                    return connection.lastError != nil
                }
                if reconnected { note(.info("store: reached again; watching from revision \(next)", ["event": "store"])) }
                delay = 0.25
                for try await response in watch {
                    var touched = false, overridden = false
                    for event in response.events {
                        let key = event.kv.keyString
                        if key == settings.layout.pushKey {
                            if event.kind == .put { try await deliver(event.kv.value, revision: event.kv.modRevision) }
                        } else {
                            let value = event.kind == .put ? event.kv.value : nil
                            if lock.withLock({ overrides.take(key: key, value: value, layout: settings.layout) }) {
                                overridden = true
                            } else {
                                touched = lock.withLock { enrolled?.take(key: key, value: value, layout: settings.layout) ?? false } || touched
                            }
                        }
                    }
                    if touched { refreshEnrolled(revision: response.header.revision) }
                    if overridden { deliverOverrides(revision: response.header.revision) }
                    next = max(next, response.header.revision + 1)
                    lock.withLock { connection.seenRevision = max(connection.seenRevision, response.header.revision) }
                }
                if Task.isCancelled { return }
            } catch FleetError.missing(let what) {
                // A head from further back than `fleet gc` keeps (this agent lagged behind):
                // its chunks or table are gone, so the store is read as it is now.
                note(.warning("store: \(what) (a revision older than `fleet gc` keeps): reading the fleet's keys afresh", ["event": "store"]))
                do {
                    next = try await readAfresh() + 1
                    continue
                } catch { await pause(after: error, delay: &delay) }
            } catch let error as EtcdError where error.kind == .compacted {
                note(.warning("store: revision \(next) was compacted away (oldest kept \(error.compactRevision.map(String.init) ?? "?")): reading the fleet's keys afresh", ["event": "store"]))
                do {
                    next = try await readAfresh() + 1
                    continue
                } catch { await pause(after: error, delay: &delay) }
            } catch {
                if Task.isCancelled { return }
                await pause(after: error, delay: &delay)
            }
        }
    }

    /// A bundle whose files differ from those held goes to the loop. `value` is the watched
    /// key's: its table of files made from the bundle held, or read.
    private func deliver(_ value: Data, revision: Int64) async throws {
        let head = try FleetBundle.Head.decode(value)
        guard lock.withLock({ heldDigest }) != head.digest else { return }
        Trace.phase("store: bundle of revision \(revision) received")
        let (bundle, tableRead) = try await store.resolve(value, holding: heldBundle)
        var (pieces, patched, fetched) = try await store.pieces(of: bundle, reusing: heldChunks ?? mirror.chunks())
        heldChunks = pieces.chunks
        // The table of files is a chunk too: fetched when the head's edit did not apply to the bundle held.
        if tableRead { fetched += 1 }
        Trace.phase("store: chunks at hand (\(patched) patched, \(fetched) fetched)")
        var byFile: [String: (chunks: [String], names: Set<String>)] = [:]
        for path in pieces.paths where !path.hasSuffix("/" + StoreMirror.enrolledFileName) {
            let chunks = bundle.files[path]?.chunks ?? []
            if let known = namesByFile[path], known.chunks == chunks { byFile[path] = known; continue }
            byFile[path] = (chunks, EnrolledSystems.definedNames(in: [pieces.content(path)]))
        }
        namesByFile = byFile
        let names = byFile.values.reduce(into: Set<String>()) { $0.formUnion($1.names) }
        Trace.phase("store: system names read")
        lock.withLock {
            var update = pending ?? Update(revision: revision)
            update.revision = max(update.revision, revision)
            // Unchanged since the last bundle handed over; the mirror checks that it holds that one.
            update.unchanged = heldBundle.map { held in (held.digest, Set(pieces.paths.filter { held.files[$0] == bundle.files[$0] })) }
            update.bundle = bundle
            update.pieces = pieces
            heldBundle = bundle
            let before = update.chunks ?? (0, 0)
            let sum = (patched: before.patched + patched, fetched: before.fetched + fetched)
            update.chunks = sum.patched + sum.fetched == 0 ? nil : sum
            pending = update
            heldDigest = bundle.digest
            taken = names
        }
        // The pushed policy's names may now take (or free) an enrolled system's.
        refreshEnrolled(revision: nil)
        wake.signal()
    }

    /// Reads every key under `desired/` at one revision (at the start with the store down,
    /// after a compaction): the bundle, and the enrolled systems, replacing what the watch
    /// had told. A member record gone in between counts as departed now (its grace starts).
    /// Returns the revision read.
    private func readAfresh() async throws -> Int64 {
        let layout = settings.layout
        let response = try await store.client.range(.prefix(layout.desiredPrefix))
        let desired = DesiredKeys(response.kvs, layout: layout)
        var fresh = desired.enrolled
        if lock.withLock({ () -> Bool in
            defer { overrides = desired.overrides }
            return overrides != desired.overrides
        }) {
            deliverOverrides(revision: response.header.revision)
        }
        if let pushed = desired.pushed { try await deliver(pushed.value, revision: pushed.modRevision) }
        let now = Date()
        lock.withLock {
            if let old = enrolled {
                for (slot, member) in old.members where fresh.members[slot] == nil { fresh.departed[slot] = .init(member: member, at: now) }
                for (slot, departure) in old.departed where fresh.members[slot] == nil && fresh.departed[slot] == nil { fresh.departed[slot] = departure }
            }
            enrolled = fresh
        }
        refreshEnrolled(revision: response.header.revision)
        return response.header.revision
    }

    /// The overrides held now go to the loop, which writes them into the state directory.
    private func deliverOverrides(revision: Int64) {
        lock.withLock {
            var update = pending ?? Update(revision: revision)
            update.revision = max(update.revision, revision)
            update.overrides = overrides.overrides
            pending = update
        }
        wake.signal()
    }

    /// Writes the enrolled systems anew; when the file changes, it goes to the loop.
    private func refreshEnrolled(revision: Int64?) {
        let changed = lock.withLock { () -> Bool in
            guard let enrolled else { return false }
            let rendering = enrolled.render(taken: taken, now: Date(), grace: grace)
            nextChange = rendering.next
            let fresh = rendering.problems.filter { !reported.contains($0) }
            notes += fresh.map { .warning("store: \($0)", ["event": "store"]) }
            reported = Set(rendering.problems)
            guard rendering.text != rendered?.text else { return !fresh.isEmpty }
            let what = EnrolledSystems.changes(from: rendered?.systems ?? [:], to: rendering.systems)
            rendered = (rendering.text, rendering.systems)
            var update = pending ?? Update(revision: revision ?? connection.seenRevision)
            update.revision = max(update.revision, revision ?? 0)
            update.enrolled = rendering.text
            update.enrolledChanges = [update.enrolledChanges, what].compactMap { $0 }.joined(separator: "; ")
            pending = update
            return true
        }
        if changed { wake.signal() }
    }

    /// Ends the graces and expiries of enrolled systems when their time comes; the watch
    /// tells of everything else.
    private func keepTime() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            if let due = lock.withLock({ nextChange }), due <= Date() { refreshEnrolled(revision: nil) }
        }
    }

    /// The longest delay between two attempts to reach the store, before its jitter: an
    /// agent is back at most 1.5 times this after etcd is (a restart under a thousand
    /// agents is to be in sync within 10 s), and a thousand agents retrying this often
    /// cost etcd little.
    public static let longestDelay = 4.0

    private func pause(after error: any Error, delay: inout Double) async {
        let text = "\(error)"
        let first = lock.withLock { () -> Bool in
            defer { connection.connected = false; connection.lastError = text }
            return connection.lastError != text
        }
        // Jittered, so a thousand agents do not all come back at the same instant.
        let wait = delay * Double.random(in: 0.5...1.5)
        if first { note(.warning("store: \(text); enforcing what is in force, trying again in \(String(format: "%.1f", wait)) s (and on, at most \(Int(Self.longestDelay * 1.5)) s apart)", ["event": "store"])) }
        try? await Task.sleep(for: .seconds(wait))
        delay = min(delay * 2, Self.longestDelay)
    }

    // MARK: Presence

    /// Keeps this host's presence key (and, for an enrolled host, its member record) under a
    /// lease of `leaseTTL` (30 s by default), renewed every third of it; the presence is
    /// rewritten whenever the loop reports what it applied (looked for every 20 ms), the
    /// member record when the host's addresses change. A lease lost (the store was down
    /// longer than it) is replaced by a new one.
    private func keepPresence() async {
        var lease: Int64 = 0
        var announced = -1
        var addresses: [IPAddress] = []
        var renewed = Date.distantPast
        let renewal = Double(leaseTTL) / 3
        while !Task.isCancelled {
            let (version, current) = lock.withLock { (presenceVersion, presence) }
            do {
                if lease == 0 {
                    lease = try await store.client.grantLease(ttl: leaseTTL).id
                    announced = -1
                    addresses = []
                    renewed = Date()
                }
                // Interfaces are read at each renewal, not at every turn of this loop.
                if let member, addresses.isEmpty || Date().timeIntervalSince(renewed) >= renewal {
                    let now = HostAddresses.current().filter(Enrolment.isReachable).sorted()
                    if now != addresses {
                        try await store.announceMember(slot: member.slot, name: member.name, addresses: now, lease: lease)
                        addresses = now
                    }
                }
                if let current, version != announced {
                    try await store.announce(current, lease: lease)
                    announced = version
                }
                if Date().timeIntervalSince(renewed) >= renewal {
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
    /// The name of its presence key: the slot of an enrolled host, else its system's name.
    public var host: String
    public var member: (slot: String, name: String)?
    public var leaseTTL: Int64 = 30
    public var grace: TimeInterval = 300
    /// What `FleetAgent.prepare` read of the enrolled systems, and wrote.
    public var enrolled: EnrolledSystems?
    public var rendered: EnrolledSystems.Rendering?
    /// The runtime overrides `prepare` read (see `FleetOverrides`).
    public var overrides = FleetOverrides()
    /// The chunks of the mirror's bundle, when `prepare` read them.
    public var chunks: [String: Data]?
    /// The store's bundle that the mirror holds, from `prepare`.
    public var bundle: FleetBundle?
    /// The system names of each pushed file, from `prepare`.
    public var namesByFile: [String: (chunks: [String], names: Set<String>)]?

    public init(settings: StoreSettings, store: FleetStore, mirror: StoreMirror, host: String) {
        self.settings = settings
        self.store = store
        self.mirror = mirror
        self.host = host
    }
}
