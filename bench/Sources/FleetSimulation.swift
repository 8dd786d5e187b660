// The simulated agents of `enforcer-bench fleet sim` (FleetBenchmark.swift runs them).
//
// What is real in each: its own etcd client (its own HTTP connections), its own watch of
// `desired/` from the revision after the one it read, the chunks it lacks fetched by itself
// with the store's own fetch, its own bookkeeping of the enrolled systems and overrides
// (`EnrolledSystems`, `FleetOverrides`), its presence written under a lease of its own after
// each change, its reconnection delays; the bytes it receives are its client's count.
// What is shared: the manifest's decoding and the chunks its patches make (`unpack`, done
// once per change and counted in every agent's time), and the compile. Hosts that receive the same policies get the same ruleset,
// so one `IncrementalHost` per kind of host takes each change (timed), and every agent of
// that kind waits as long as that compile took, counted from the moment it had the change
// in hand. The kernel is a sink that records the operations of the delta and sleeps the
// apply time measured on real agents.
import Compiler
import Enforcement
import Etcd
import Foundation
import Kernel

/// The chunks' bytes, once for all agents: each agent keeps only the digests it holds.
final class ChunkShelf: @unchecked Sendable {
    private let lock = NSLock()
    private var chunks: [String: Data] = [:]

    func add(_ more: [String: Data]) { lock.withLock { chunks.merge(more) { a, _ in a } } }
    func chunk(_ digest: String) -> Data? { lock.withLock { chunks[digest] } }
}

/// What one change did to one kind of host.
struct KindOutcome: Sendable {
    /// Operations the kernel delta holds: elements added and removed, sets and chains added,
    /// removed or written again (a redefined set counts its elements), counters.
    var operations: Int
    var elementsChanged: Int
    /// The compile's processor time on its thread: what this host's own processor would spend.
    var compileSeconds: Double
    /// Its wall time here, where a thousand agents share two cores.
    var compileWall: Double
    var inFull: Bool
    /// What changed, in words (`RulesetChanges.summary`).
    var summary: String
}

/// The compile shared by the agents of each kind of host, one change after another.
final class SharedCompile: @unchecked Sendable {
    struct Result: Sendable {
        /// The mirror written and loaded: processor time on its thread, and wall time here.
        var parseSeconds: Double
        var parseWall: Double
        var kinds: [String: KindOutcome]
        var edits: Int?
    }

    let mirror: StoreMirror
    let shelf: ChunkShelf
    private let lock = NSLock()
    private var hosts: [String: IncrementalHost]
    private var policySet: PolicySet
    /// The bundle the shared mirror holds: a change writes only the files it changed, as an agent's does.
    private var heldBundle: FleetBundle
    private var results: [String: Task<Result, Never>] = [:]
    /// Each kind's ruleset before the last change, for the check against a full comparison.
    private(set) var before: [String: Ruleset] = [:]
    /// The outcome of the last change computed.
    private(set) var latest: Result?
    private let queue = DispatchQueue(label: "shared-compile")
    let instant: Date

    init(mirror: StoreMirror, shelf: ChunkShelf, policySet: PolicySet, bundle: FleetBundle, hosts: [String: IncrementalHost], at instant: Date) {
        self.mirror = mirror
        self.shelf = shelf
        self.policySet = policySet
        self.hosts = hosts
        heldBundle = bundle
        self.instant = instant
    }

    var kindRulesets: [String: Ruleset] { lock.withLock { hosts.mapValues(\.ruleset) } }

    /// The bundle of a watch event's value and the chunks its patches make from the chunks
    /// `held` (the digests an agent holds, those of the bundle `holding`): worked out by the
    /// first agent that asks and timed, as the parse is; every agent holding the same bundle
    /// gets the same, and one that asks while it is being worked out waits for it. Each
    /// agent does this work on its own processor; done a thousand times over in this one
    /// process, it measured the machine's two cores instead.
    /// `bundle` is nil when the head's edits do not apply to `holding`: that agent reads the
    /// table of files from the store, as a real one does.
    /// `seconds`: how long the caller is to count for it (0 for the agent that did it).
    func unpack(_ value: Data, holding: FleetBundle?, held: Set<String>) async throws -> (bundle: FleetBundle?, made: [String: Data], seconds: Double) {
        let key = UnpackKey(value: value, holding: holding?.digest)
        let (task, first) = lock.withLock { () -> (Task<Unpacked, any Error>, Bool) in
            if let task = unpacked[key] { return (task, false) }
            let task = Task<Unpacked, any Error> {
                // Synchronous from here on: the thread's processor time is this work's.
                let start = threadCPU()
                let bundle = try FleetBundle.Head.decode(value).bundle(holding: holding)
                let made = bundle.map { patched($0, held: held) } ?? [:]
                return Unpacked(bundle: bundle, made: made, seconds: threadCPU() - start)
            }
            unpacked[key] = task
            return (task, true)
        }
        let done = try await task.value
        // The first agent spent that time already; another takes as long as that did.
        return (done.bundle, done.made, first ? 0 : done.seconds)
    }
    private struct UnpackKey: Hashable {
        var value: Data
        var holding: String?
    }
    private struct Unpacked: Sendable {
        var bundle: FleetBundle?
        var made: [String: Data]
        var seconds: Double
    }
    private var unpacked: [UnpackKey: Task<Unpacked, any Error>] = [:]

    /// The chunks `bundle`'s patches make from the chunks `held`.
    func patched(_ bundle: FleetBundle, held: Set<String>) -> [String: Data] {
        var have: [String: Data] = [:]
        for patch in bundle.patches.values where held.contains(patch.base) { have[patch.base] = shelf.chunk(patch.base) }
        return bundle.patched(from: have)
    }

    /// The outcome of the policy of `bundle` with the enrolled systems `enrolled`: computed by
    /// the first agent that asks, awaited by the others.
    func result(bundle: FleetBundle, enrolled: String, revision: Int64) async -> Result {
        // The revision too: a revoke may bring back the text of an earlier enrolled file.
        let key = bundle.digest + "|" + SHA256.hex(Data(enrolled.utf8)) + "|\(revision)"
        let task = lock.withLock { () -> Task<Result, Never> in
            if let task = results[key] { return task }
            let task = Task<Result, Never> {
                await withCheckedContinuation { continuation in
                    // Off the concurrency runtime's threads: the agents' tasks keep running.
                    queue.async { continuation.resume(returning: self.compute(bundle: bundle, enrolled: enrolled)) }
                }
            }
            results[key] = task
            return task
        }
        return await task.value
    }

    private func compute(bundle: FleetBundle, enrolled: String) -> Result {
        let start = now(), startCPU = threadCPU()
        do {
            if bundle.digest != heldBundle.digest {
                // As an agent writes its mirror: the files whose chunks did not change are left
                // alone, and only the others are joined from their chunks.
                let held = heldBundle
                let unchanged = Set(bundle.files.keys.filter { held.files[$0] == bundle.files[$0] })
                try mirror.write(paths: bundle.files.keys.sorted(), content: { path in
                    bundle.files[path]!.chunks.reduce(into: Data()) { $0.append(self.shelf.chunk($1) ?? Data()) }
                }, revision: 0, digest: bundle.digest, unchanged: (held.digest, unchanged))
                heldBundle = bundle
            }
            try mirror.writeEnrolled(enrolled)
        } catch {
            fatalError("the shared mirror: \(error)")
        }
        let loaded = mirror.load()
        guard let fresh = loaded.policySet else { fatalError("the shared mirror does not load: \(loaded.diagnostics.prefix(3))") }
        let parseSeconds = threadCPU() - startCPU, parseWall = now() - start
        let edits = policySet.edits(to: fresh)
        var kinds: [String: KindOutcome] = [:]
        var held = lock.withLock { hosts }
        var previous: [String: Ruleset] = [:]
        for (kind, var host) in held {
            previous[kind] = host.ruleset
            let begin = now(), beginCPU = threadCPU()
            let changes: RulesetChanges
            if let edits {
                changes = try! host.apply(edits)
            } else {
                let old = host.ruleset
                host = try! IncrementalHost(policySet: fresh, host: fresh.system(named: host.hostName)!, ids: host.policyIDs, at: instant)
                changes = RulesetChanges.between(old, host.ruleset)
            }
            kinds[kind] = KindOutcome(operations: changes.operations, elementsChanged: changes.elementsAdded + changes.elementsRemoved,
                                      compileSeconds: threadCPU() - beginCPU, compileWall: now() - begin, inFull: edits == nil || changes.compiledInFull,
                                      summary: changes.summary)
            held[kind] = host
        }
        lock.withLock {
            hosts = held
            before = previous
            policySet = fresh
            latest = Result(parseSeconds: parseSeconds, parseWall: parseWall, kinds: kinds, edits: edits?.count)
        }
        return Result(parseSeconds: parseSeconds, parseWall: parseWall, kinds: kinds, edits: edits?.count)
    }
}

extension RulesetChanges {
    /// The kernel operations of the delta these changes make.
    var operations: Int {
        elementsAdded + elementsRemoved + addedSets.count + removedSets.count + redefinedSets.reduce(0) { $0 + 1 + $1.elements.count }
            + addedChains.count + removedChains.count + rewrittenChains.count + redefinedChains.count + addedCounters.count + removedCounters.count
    }

    /// A replacement's changes, when the edits could not be said: everything counts.
    static func between(_ old: Ruleset, _ new: Ruleset) -> RulesetChanges {
        var out = RulesetChanges()
        out.compiledInFull = true
        out.redefinedSets = new.table.sets
        out.removedSets = old.table.sets.map(\.name)
        out.redefinedChains = new.table.chains
        return out
    }
}

/// The least a delta from `old` to `new` can hold: elements that differ, sets and chains that
/// come, go or differ, counters that come or go. Computed by comparing the two in full.
func idealOperations(_ old: Ruleset, _ new: Ruleset) -> Int {
    var count = 0
    let oldSets = Dictionary(old.table.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let newSets = Dictionary(new.table.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    for (name, set) in newSets {
        guard let was = oldSets[name] else { count += 1 + set.elements.count; continue }
        if was == set { continue }
        let a = Set(was.elements), b = Set(set.elements)
        count += a.symmetricDifference(b).count
        var bare = was, bareNew = set
        bare.elements = []; bareNew.elements = []
        if bare != bareNew { count += 1 }
    }
    count += oldSets.keys.filter { newSets[$0] == nil }.count
    let oldChains = Dictionary(old.table.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    for chain in new.table.chains where oldChains[chain.name] != chain { count += 1 }
    let newChains = Set(new.table.chains.map(\.name))
    count += old.table.chains.filter { !newChains.contains($0.name) }.count
    count += Set(old.table.counters).symmetricDifference(Set(new.table.counters)).count
    return count
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// The processor time of the calling thread. Work shared by the simulated agents is charged
/// to each of them by this, not by its wall time here: each agent would do it on its own
/// processor, not on two cores shared with a thousand others and etcd.
func threadCPU() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

/// One simulated host's agent.
final class SimulatedAgent: @unchecked Sendable {
    /// What the agent did with one watch response that changed its policy.
    struct Applied: Sendable {
        var revision: Int64
        /// When its own watch and fetch had the change in hand, and when the sink finished.
        var received: Double
        /// When this host would have applied it: received, plus the parse and its kind's
        /// compile as long as they took here, plus the sink's sleep. The same as `wall`
        /// unless the shared compile of all kinds (one process for every host) finished
        /// later than this host's own would have.
        var applied: Double
        var wall: Double
        var operations: Int
        var kind: String
    }

    let system: String
    let kind: String
    let client: EtcdGatewayClient
    let store: FleetStore
    let layout: FleetLayout
    let shared: SharedCompile
    let sinkSeconds: Double

    private let lock = NSLock()
    private var heldDigest: String
    private var held: Set<String>
    private var enrolled = EnrolledSystems()
    private var taken: Set<String>
    private var rendered: String
    private var overrides = FleetOverrides()
    private var next: Int64
    private var task: Task<Void, Never>?
    private var presenceTask: Task<Void, Never>?
    private(set) var log: [Applied] = []
    /// After each watch response: the highest revision in it and the client's byte count.
    private(set) var bytesAt: [(revision: Int64, bytes: Int)] = []
    private(set) var seenRevision: Int64 = 0
    private(set) var reconnections = 0
    private var presence: (revision: Int64, version: Int) = (0, 0)

    init(system: String, kind: String, url: String, layout: FleetLayout, shared: SharedCompile, sink: Double,
         bundle: FleetBundle, revision: Int64, rendered: String, taken: Set<String>) throws {
        self.system = system
        self.kind = kind
        client = try EtcdGatewayClient(endpoints: [url], requestTimeout: .seconds(30))
        store = FleetStore(client: client, layout: layout)
        self.layout = layout
        self.shared = shared
        sinkSeconds = sink
        heldDigest = bundle.digest
        held = Set(bundle.files.values.flatMap(\.chunks))
        self.rendered = rendered
        self.taken = taken
        next = revision + 1
        seenRevision = revision
    }

    var bytesReceived: Int { client.bytesReceived }

    /// Follows the store, as `FleetAgent.follow` does, and keeps a presence under a lease.
    func start() {
        task = Task.detached { [self] in await follow() }
        presenceTask = Task.detached { [self] in await keepPresence() }
    }

    /// Stops following (the host goes offline); `start` resumes from the last revision seen.
    func stop() async {
        task?.cancel(); presenceTask?.cancel()
        _ = await task?.value; _ = await presenceTask?.value
        task = nil; presenceTask = nil
    }

    func shutdown() async {
        await stop()
        await client.shutdown()
    }

    var snapshot: (log: [Applied], bytesAt: [(revision: Int64, bytes: Int)], seen: Int64) {
        lock.withLock { (log, bytesAt, seenRevision) }
    }

    private func follow() async {
        var delay = 0.25
        while !Task.isCancelled {
            do {
                let watch = try await client.watch(.prefix(layout.desiredPrefix), from: lock.withLock { next }, progressNotify: true)
                lock.withLock { bytesAt.append((next - 1, client.bytesReceived)) }
                delay = 0.25
                for try await response in watch {
                    try await take(response)
                }
                if Task.isCancelled { return }
            } catch {
                if Task.isCancelled { return }
                lock.withLock { reconnections += 1 }
                // The agent's own delays: 0.25 s doubling up to `FleetAgent.longestDelay`, jittered.
                try? await Task.sleep(for: .seconds(delay * Double.random(in: 0.5...1.5)))
                delay = min(delay * 2, FleetAgent.longestDelay)
            }
        }
    }

    private func take(_ response: WatchResponse) async throws {
        var changed = false
        var ownSeconds = 0.0
        for event in response.events {
            let key = event.kv.keyString
            if key == layout.pushKey {
                guard event.kind == .put else { continue }
                // The manifest decoded and what its patches make from the chunks held (timed once, see `unpack`).
                var (bundle, made, unpackSeconds) = try await shared.unpack(event.kv.value, holding: try? await currentBundle(), held: held)
                if bundle == nil {
                    let read = try await store.resolve(event.kv.value).bundle
                    (bundle, made) = (read, shared.patched(read, held: held))
                }
                guard let bundle, bundle.digest != heldDigest else { continue }
                ownSeconds += unpackSeconds
                let named = Set(bundle.files.values.flatMap(\.chunks))
                let fetched = try await store.chunks(Array(named.subtracting(held).subtracting(made.keys)))
                shared.shelf.add(made)
                shared.shelf.add(fetched)
                held = named
                heldDigest = bundle.digest
                changed = true
            } else {
                let value = event.kind == .put ? event.kv.value : nil
                if !overrides.take(key: key, value: value, layout: layout) {
                    enrolled.take(key: key, value: value, layout: layout)
                }
            }
        }
        let text = enrolled.render(taken: taken, now: Date(), grace: 300).text
        if text != rendered { rendered = text; changed = true }
        let revision = response.header.revision
        if changed {
            let received = now() + ownSeconds
            let bundle = try await currentBundle()
            let result = await shared.result(bundle: bundle, enrolled: text, revision: revision)
            let outcome = result.kinds[kind]!
            // This host's own parse and compile take as long as the shared one did.
            let ready = received + result.parseSeconds + outcome.compileSeconds
            if ready > now() { try? await Task.sleep(for: .seconds(ready - now())) }
            let sink = outcome.operations > 0 ? sinkSeconds : 0
            if sink > 0 { try? await Task.sleep(for: .seconds(sink)) }
            let applied = Applied(revision: revision, received: received, applied: ready + sink, wall: now(), operations: outcome.operations, kind: kind)
            lock.withLock {
                log.append(applied)
                presence = (revision, presence.version + 1)
            }
        }
        lock.withLock {
            next = max(next, revision + 1)
            seenRevision = max(seenRevision, revision)
            bytesAt.append((revision, client.bytesReceived))
        }
    }

    var renderedText: String { lock.withLock { rendered } }

    /// The bundle held, from the manifests the bench registered.
    private func currentBundle() async throws -> FleetBundle {
        if let bundle = SimulatedAgent.manifests.withLock({ $0[heldDigest] }) { return bundle }
        fatalError("no manifest for \(heldDigest)")
    }

    /// Manifests by digest, registered by whoever pushes (the bench), so agents need not keep one each.
    static let manifests = LockedDictionary()

    private func keepPresence() async {
        var lease: Int64 = 0
        var announced = 0
        var renewed = now()
        while !Task.isCancelled {
            let (revision, version) = lock.withLock { presence }
            do {
                if lease == 0 {
                    lease = try await client.grantLease(ttl: 30).id
                    announced = 0
                    renewed = now()
                }
                if version != announced {
                    try await store.announce(FleetStore.Presence(host: system, system: system, revision: revision, generation: version,
                                                                 appliedAt: Date(), error: nil), lease: lease)
                    announced = version
                }
                if now() - renewed >= 10 {
                    _ = try await client.keepAliveOnce(lease: lease)
                    renewed = now()
                }
            } catch {
                if Task.isCancelled { return }
                lease = 0
                try? await Task.sleep(for: .seconds(1))
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

final class LockedDictionary: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: FleetBundle] = [:]
    func withLock<T>(_ body: (inout [String: FleetBundle]) -> T) -> T { lock.withLock { body(&values) } }
}
