// Fleet benchmark (`enforcer-bench fleet --store URL [--agents N] [--changes C] [--sink-ms MS]
// [--restart COMMAND] [--dir DIR]`, run by bench/fleet-bench.sh, which starts etcd): the
// benchmark policy pushed to the store, then in one run
//   1. raw fan-out: N plain watchers (the project's etcd client, nothing else) and the time
//      from just before a put to each watcher's event;
//   2. N simulated agents (FleetSimulation.swift) and C changes of four kinds, in turn: one
//      system's tags, one policy's ports, an enrolment, a revoke of that enrolment; the time
//      from just before the change's write to each affected agent's apply, the kernel
//      operations per host beside the least a delta can hold, the bytes each agent received;
//   3. one agent offline while the store moves 10,000 revisions, then resuming: the bytes it
//      receives beside those of a full snapshot;
//   4. etcd restarted (by COMMAND) under the agents: the time until all have a change made
//      after etcd answers again.
import Compiler
import Enforcement
import Etcd
import Foundation
import Kernel

/// Prints and flushes at once, so a long run shows how far it got through a pipe.
func print(_ line: String) {
    Swift.print(line)
    fflush(nil)
}

enum FleetBenchmark {
    struct Options {
        var store = "http://127.0.0.1:2379"
        var agents = 1000
        var changes = 20
        var sinkMilliseconds = 2.0
        var restart: String?
        var work = "/tmp/enforcer-bench-fleet"
        var offlineRevisions = 10_000
    }

    static func main(_ arguments: [String], generate: (String) throws -> Void) -> Int32 {
        var options = Options()
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { print("fleet: \(flag) needs a value"); return 2 }
            switch flag {
            case "--store": options.store = value
            case "--agents": options.agents = Int(value) ?? options.agents
            case "--changes": options.changes = Int(value) ?? options.changes
            case "--sink-ms": options.sinkMilliseconds = Double(value) ?? options.sinkMilliseconds
            case "--restart": options.restart = value
            case "--dir": options.work = value
            case "--offline-revisions": options.offlineRevisions = Int(value) ?? options.offlineRevisions
            default: print("fleet: unknown option \(flag)"); return 2
            }
        }
        do {
            try? FileManager.default.removeItem(atPath: options.work)
            try FileManager.default.createDirectory(atPath: options.work, withIntermediateDirectories: true)
            try generate(options.work + "/policy")
        } catch {
            print("fleet: cannot write the policy: \(error)")
            return 1
        }
        let box = ResultBox()
        Task.detached {
            do { box.set(try await run(options)) } catch {
                print("fleet: \(error)")
                box.set(1)
            }
        }
        return box.wait()
    }

    final class ResultBox: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var code: Int32 = 0
        func set(_ value: Int32) { code = value; done.signal() }
        func wait() -> Int32 { done.wait(); return code }
    }

    struct Change {
        var name: String
        var revision: Int64
        var start: Double
        /// The bytes of the keys and values the change wrote (new chunks included).
        var changedBytes: Int
    }

    static func run(_ options: Options) async throws -> Int32 {
        let policyDir = options.work + "/policy"
        let layout = try FleetLayout(fleet: "bench")
        let admin = try EtcdGatewayClient(endpoints: [options.store], requestTimeout: .seconds(60))
        let store = FleetStore(client: admin, layout: layout)
        let shelf = ChunkShelf()
        var goals: [(String, Bool)] = []

        // The push, as `fleet push` writes it.
        var pushedChunks = Set<String>()
        var lastPushed: FleetBundle?
        func push(_ message: String) async throws -> (bundle: FleetBundle, newBytes: Int, chunks: [String: Data]) {
            var (bundle, chunks) = FleetBundle.make(try SourceSnapshot(directory: policyDir), pushedBy: "bench", message: message, checkedAt: 0)
            // The patches of the new chunks, as `fleet push` writes them into the manifest.
            if let previous = lastPushed {
                let bases = bundle.patchBases(from: previous)
                bundle = bundle.withPatches(bases: bases, old: bases.values.reduce(into: [:]) { $0[$1] = shelf.chunk($1) }, chunks: chunks)
            }
            lastPushed = bundle
            let fresh = chunks.filter { !pushedChunks.contains($0.key) }
            // The chunks first (as a push does), outside the time measured: the change is the bundle's transaction.
            for (digest, data) in fresh { try await admin.put(layout.chunkKey(digest), data) }
            pushedChunks.formUnion(fresh.keys)
            shelf.add(chunks)
            SimulatedAgent.manifests.withLock { $0[bundle.digest] = bundle }
            return (bundle, fresh.values.reduce(0) { $0 + $1.count }, chunks)
        }
        let pushStart = now()
        let first = try await push("the benchmark policy")
        let current = try await store.bundle()
        _ = try await store.push(first.bundle, chunks: first.chunks, expecting: current.modRevision, previous: current.bundle)
        print(String(format: "store: pushed %d files, %d chunks, %.1f MB in %.1f s", first.bundle.files.count, first.chunks.count,
                     Double(first.chunks.values.reduce(0) { $0 + $1.count }) / 1e6, now() - pushStart))
        var bundle = first.bundle

        // The shared compile: the mirror loaded once, one incremental host per kind.
        let setupStart = now()
        let mirror = StoreMirror(stateDirectory: options.work + "/shared", layout: layout, cache: ParseCache())
        try mirror.write(SourceSnapshot(directory: policyDir).files, revision: 0, digest: bundle.digest)
        let taken = EnrolledSystems.definedNames(in: mirror.pushedFiles().map(\.content))
        let emptyEnrolled = EnrolledSystems().render(taken: taken, now: Date(), grace: 300).text
        try mirror.writeEnrolled(emptyEnrolled)
        guard let set = mirror.load().policySet else { print("fleet: the policy does not load"); return 1 }
        let instant = Date()
        var kindOf: [String: String] = [:]
        var members: [String: [String]] = [:]
        for i in 0..<options.agents {
            let system = set.system(named: "sys-\(i)")!
            let received = set.policies.filter { policy in
                guard case .direct(let receivers) = policy.reach else { return true }
                return receivers.contains { system.tags.contains($0) || $0 == system.name }
            }.map(\.name)
            let kind = received.joined(separator: ",")
            kindOf[system.name] = kind
            members[kind, default: []].append(system.name)
        }
        var hosts: [String: IncrementalHost] = [:]
        for (kind, names) in members { hosts[kind] = try IncrementalHost(policySet: set, host: set.system(named: names[0])!, at: instant) }
        // Hosts of one kind get one ruleset: checked on the kinds with more than one member.
        var checked = 0, differ = 0
        for (kind, names) in members.sorted(by: { $0.key < $1.key }) where names.count > 1 && checked < 5 {
            let other = try IncrementalHost(policySet: set, host: set.system(named: names[1])!, at: instant)
            checked += 1
            if other.ruleset != hosts[kind]!.ruleset { differ += 1 }
        }
        print(String(format: "simulation: %d agents of %d kinds (hosts receiving the same policies); compiled in %.1f s; same ruleset within a kind: %d of %d kinds checked",
                     options.agents, members.count, now() - setupStart, checked - differ, checked))
        let shared = SharedCompile(mirror: mirror, shelf: shelf, policySet: set, bundle: bundle, hosts: hosts, at: instant)

        // 1. Raw fan-out.
        let raw = try await rawFanOut(url: options.store, watchers: options.agents, puts: options.changes, admin: admin)
        print(String(format: "raw fan-out, %d plain watchers, %d puts: put → event p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                     options.agents, options.changes, raw.p(50), raw.p(99), raw.max))

        // 2. The agents.
        let revision = try await admin.range(.key(layout.pushKey)).header.revision
        var agents: [SimulatedAgent] = []
        for i in 0..<options.agents {
            let name = "sys-\(i)"
            let agent = try SimulatedAgent(system: name, kind: kindOf[name]!, url: options.store, layout: layout, shared: shared,
                                           sink: options.sinkMilliseconds / 1000, bundle: bundle, revision: revision,
                                           rendered: emptyEnrolled, taken: taken)
            agents.append(agent)
            agent.start()
        }
        try await Task.sleep(for: .seconds(3))
        print("agents: \(agents.count) following the store; resident \(Int(residentMegabytes())) MB in this process")

        var changes: [Change] = []
        var latencies: [Double] = [], perKind: [String: [Double]] = [:], wallTimes: [Double] = [], receivedTimes: [Double] = []
        var operationsOK = true, unaffectedZero = true
        var excess: [String] = [], parseLines: [String] = []
        var bytesRatios: [String: [Double]] = [:]
        var opsLines: [String] = []
        let systemsFile = policyDir + "/rules.d/10-systems.policy", policiesFile = policyDir + "/rules.d/20-policies.policy"
        func edit(_ path: String, _ body: (inout String) -> Void) throws {
            var text = try String(contentsOfFile: path, encoding: .utf8)
            body(&text)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        func pushChange(_ name: String) async throws -> Change {
            let made = try await push(name)
            let expecting = try await store.bundle().modRevision
            let start = now()
            let rev = try await store.push(made.bundle, chunks: [:], expecting: expecting, previous: bundle)
            // What the push wrote: the watched head, the table of files, the new chunks.
            let written = try made.bundle.head(since: bundle).encoded().count + made.bundle.tableData().count + made.newBytes
            bundle = made.bundle
            return Change(name: name, revision: rev, start: start, changedBytes: written)
        }
        func makeChange(_ index: Int) async throws -> Change {
            let round = index / 4 + 1
            switch index % 4 {
            case 0:
                // sys-(5000+r) moves from team-r to team-(r+100) (or back).
                let system = "sys-\(5000 + round)"
                try edit(systemsFile) { text in
                    let header = "[system] \(system): {\n"
                    let at = text.range(of: header)!
                    let end = text.range(of: "}\n", range: at.upperBound..<text.endIndex)!
                    var block = String(text[at.lowerBound..<end.upperBound])
                    if block.contains("team-\(round),") {
                        block = block.replacingOccurrences(of: "team-\(round),", with: "team-\(round + 100),")
                    } else {
                        block = block.replacingOccurrences(of: "team-\(round + 100),", with: "team-\(round),")
                    }
                    text.replaceSubrange(at.lowerBound..<end.upperBound, with: block)
                }
                return try await pushChange("tags of \(system)")
            case 1:
                // p-(600+r) (team-(r+100) → svc-r) changes its ports.
                let policy = "p-\(600 + round)"
                try edit(policiesFile) { text in
                    let at = text.range(of: "[policy] \(policy): {\n")!
                    let allow = text.range(of: "    allow: ", range: at.upperBound..<text.endIndex)!
                    let line = text.range(of: "\n", range: allow.upperBound..<text.endIndex)!
                    text.replaceSubrange(allow.upperBound..<line.lowerBound, with: "tcp/\(2000 + index), udp/\(3000 + index)")
                }
                return try await pushChange("ports of \(policy)")
            case 2:
                // A host enrols with the tags team-(r+100): the grant was written ahead (as `fleet key create` does),
                // the change is its member record.
                let slot = "bench-\(index)"
                try await admin.put(layout.enrolledKey(slot), "{\"slot\":\"\(slot)\",\"key\":\"bench\",\"tags\":[\"team-\(round + 100)\"],\"createdBy\":\"bench\"}")
                try await Task.sleep(for: .milliseconds(300))
                let value = Data(member(name: "enrolled-\(index)", address: "172.16.\(index).1").utf8)
                let start = now()
                let rev = try await admin.put(layout.memberKey(slot), value).header.revision
                return Change(name: "enrolment of enrolled-\(index)", revision: rev, start: start, changedBytes: layout.memberKey(slot).utf8.count + value.count)
            default:
                // The revoke of the last enrolment: its grant is deleted.
                let slot = "bench-\(index - 1)"
                let start = now()
                let rev = try await admin.delete(.key(layout.enrolledKey(slot))).header.revision
                return Change(name: "revoke of enrolled-\(index - 1)", revision: rev, start: start, changedBytes: layout.enrolledKey(slot).utf8.count)
            }
        }
        func settle(_ change: Change, timeout: Double = 30) async -> Bool {
            let end = now() + timeout
            while now() < end {
                if agents.allSatisfy({ $0.snapshot.seen >= change.revision }) {
                    try? await Task.sleep(for: .milliseconds(300))
                    return true
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return false
        }

        print("change                          affected  p50 ms  p99 ms  max ms   ops/affected host (least possible)  bytes/agent (changed)")
        for index in 0..<options.changes {
            let change = try await makeChange(index)
            changes.append(change)
            let settled = await settle(change)
            var times: [Double] = [], bytes: [Int] = []
            for agent in agents {
                let snap = agent.snapshot
                if let applied = snap.log.last(where: { $0.revision == change.revision }) {
                    if applied.operations > 0 {
                        times.append((applied.applied - change.start) * 1000)
                        wallTimes.append((applied.wall - change.start) * 1000)
                        receivedTimes.append((applied.received - change.start) * 1000)
                    }
                }
                if let after = snap.bytesAt.first(where: { $0.revision >= change.revision }) {
                    let before = snap.bytesAt.last(where: { $0.revision < change.revision })?.bytes ?? after.bytes
                    bytes.append(after.bytes - before)
                }
            }
            // The least each kind's delta can hold, from comparing its rulesets in full.
            guard let outcome = shared.latest else { print("fleet: no compile for \(change.name)"); return 1 }
            let afterRulesets = shared.kindRulesets
            var opsText = ""
            for (kind, result) in outcome.kinds where result.operations > 0 {
                let least = idealOperations(shared.before[kind]!, afterRulesets[kind]!)
                if result.operations > least {
                    operationsOK = false
                    excess.append("\(change.name), a host of \(members[kind]!.count > 0 ? members[kind]![0] : kind)'s kind: \(result.operations) operations where \(least) would do: \(result.summary)")
                }
                if opsText.count < 60 { opsText += "\(result.operations) (\(least)) " }
            }
            for (kind, result) in outcome.kinds where result.operations == 0 {
                let least = idealOperations(shared.before[kind]!, afterRulesets[kind]!)
                if least != 0 { unaffectedZero = false; opsText += "[\(kind.prefix(20)): 0 but \(least) needed] " }
            }
            // Every agent of a kind whose ruleset changed applied it; no other did.
            let missing = agents.filter { agent in
                (outcome.kinds[agent.kind]!.operations > 0) != agent.snapshot.log.contains { $0.revision == change.revision && $0.operations > 0 }
            }.count
            if missing > 0 { opsText += "[\(missing) agents off] "; unaffectedZero = false }
            latencies += times
            let kindName = String(change.name.prefix(while: { $0 != " " }))
            perKind[kindName, default: []] += times
            let medianBytes = bytes.isEmpty ? 0 : bytes.sorted()[bytes.count / 2]
            bytesRatios[kindName, default: []].append(Double(medianBytes) / Double(change.changedBytes))
            opsLines.append(opsText)
            let sorted = times.sorted()
            let slowest = outcome.kinds.max { $0.value.compileSeconds < $1.value.compileSeconds }
            parseLines.append(String(format: "%@: parse (the mirror written and loaded) %.0f ms of processor (%.0f ms wall here); compile per kind max %.1f ms (%@), median %.2f ms of processor (wall max %.1f ms)",
                                     change.name, outcome.parseSeconds * 1000, outcome.parseWall * 1000, (slowest?.value.compileSeconds ?? 0) * 1000,
                                     members[slowest?.key ?? ""]?.first ?? "-",
                                     pct(outcome.kinds.values.map { $0.compileSeconds * 1000 }.sorted(), 50),
                                     (outcome.kinds.values.map(\.compileWall).max() ?? 0) * 1000))
            print(change.name.padding(toLength: 32, withPad: " ", startingAt: 0)
                  + String(format: "%8d %7.1f %7.1f %7.1f   ", times.count, pct(sorted, 50), pct(sorted, 99), sorted.last ?? 0)
                  + opsText.padding(toLength: 36, withPad: " ", startingAt: 0)
                  + " \(medianBytes) (\(change.changedBytes))" + (settled ? "" : "  NOT SETTLED in 30 s"))
        }
        let sorted = latencies.sorted()
        let p50 = pct(sorted, 50), p99 = pct(sorted, 99), maxLatency = sorted.last ?? 0
        print(String(format: "change → every affected host applied, %d changes, %d host applies: p50 %.1f ms (goal ≤ 100: %@), p99 %.1f ms (goal ≤ 250: %@), max %.1f ms (goal ≤ 500: %@)",
                     changes.count, sorted.count, p50, p50 <= 100 ? "met" : "MISSED", p99, p99 <= 250 ? "met" : "MISSED", maxLatency, maxLatency <= 500 ? "met" : "MISSED"))
        print(String(format: "    beside raw fan-out in the same run: p50 %.1f ms, p99 %.1f ms, max %.1f ms (agents / raw: p50 %.1fx, p99 %.1fx)",
                     raw.p(50), raw.p(99), raw.max, p50 / max(raw.p(50), 0.001), p99 / max(raw.p(99), 0.001)))
        let wall = wallTimes.sorted(), got = receivedTimes.sorted()
        print(String(format: "    the change in hand (own watch and chunk fetch): p50 %.1f ms, p99 %.1f ms; wall clock of this one process for all hosts: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                     pct(got, 50), pct(got, 99), pct(wall, 50), pct(wall, 99), wall.last ?? 0))
        for (kind, values) in perKind.sorted(by: { $0.key < $1.key }) {
            let s = values.sorted()
            print(String(format: "    %@: p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d applies", kind, pct(s, 50), pct(s, 99), s.last ?? 0, s.count))
        }
        goals += [("change → applied p50 ≤ 100 ms", p50 <= 100), ("change → applied p99 ≤ 250 ms", p99 <= 250), ("change → applied max ≤ 500 ms", maxLatency <= 500)]
        print("where an affected host's time went (the shared parse and compile, done once per change; each affected host is charged its processor time, which its own processor would spend):")
        for line in parseLines { print("    " + line) }
        for line in excess.prefix(8) { print("    more kernel operations than needed: " + line) }
        print("kernel operations per affected host ≤ the least delta (a full comparison of the rulesets): \(operationsOK ? "met" : "MISSED"); unaffected hosts 0 operations: \(unaffectedZero ? "met" : "MISSED")")
        goals += [("kernel ops ≤ changed elements", operationsOK), ("unaffected hosts 0 ops", unaffectedZero)]
        var bytesMet = true
        for (kind, ratios) in bytesRatios.sorted(by: { $0.key < $1.key }) {
            let worst = ratios.max() ?? 0
            bytesMet = bytesMet && worst <= 2
            print(String(format: "bytes received per agent per change / bytes changed, %@: median agent %.2fx, worst change %.2fx (goal ≤ 2x: %@)", kind,
                         ratios.sorted()[ratios.count / 2], worst, worst <= 2 ? "met" : "MISSED"))
        }
        goals.append(("bytes per agent per change ≤ 2x changed", bytesMet))

        // 3. One agent offline for 10,000 revisions.
        let offline = agents.last!
        await offline.stop()
        let bytesBefore = offline.bytesReceived
        let churnStart = try await admin.range(.key(layout.pushKey)).header.revision
        var pushes = 0, memberUpdates = 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var i = worker
                    while i < options.offlineRevisions {
                        // The other hosts' presences (outside `desired/`), and now and then an enrolled host's new address.
                        if i % 250 == 7 {
                            try await admin.put(layout.memberKey("roaming-\(i % 40)"), member(name: "roaming-\(i % 40)", address: "172.17.\(i % 200).\(i % 250)"))
                        } else {
                            try await admin.put(layout.presenceKey("churn-\(i % 1000)"), "{\"revision\":\(i)}")
                        }
                        i += 16
                    }
                }
            }
            try await group.waitForAll()
        }
        memberUpdates = (0..<options.offlineRevisions).filter { $0 % 250 == 7 }.count
        // And pushes: one system's tags changed now and then (10 in all).
        for k in 0..<10 {
            try edit(systemsFile) { text in
                let header = "[system] sys-\(6000 + k): {\n"
                let at = text.range(of: header)!
                let end = text.range(of: "}\n", range: at.upperBound..<text.endIndex)!
                text.replaceSubrange(at.lowerBound..<end.upperBound, with: String(text[at.lowerBound..<end.upperBound]).replacingOccurrences(of: "    tags: ", with: "    tags: moved-\(k), "))
            }
            _ = try await pushChange("offline push \(k)")
            pushes += 1
        }
        let churnEnd = try await admin.range(.key(layout.pushKey)).header.revision
        offline.start()
        let resumeStart = now()
        while offline.snapshot.seen < churnEnd && now() - resumeStart < 60 { try await Task.sleep(for: .milliseconds(20)) }
        let resumeSeconds = now() - resumeStart
        try await Task.sleep(for: .milliseconds(500))
        let delta = offline.bytesReceived - bytesBefore
        // A full snapshot: what a cold agent reads (every key of `desired/`, every chunk of the bundle).
        let cold = try EtcdGatewayClient(endpoints: [options.store])
        _ = try await cold.range(.prefix(layout.desiredPrefix))
        _ = try await FleetStore(client: cold, layout: layout).chunks(Array(Set(bundle.files.values.flatMap(\.chunks))))
        let full = cold.bytesReceived
        await cold.shutdown()
        let share = Double(delta) / Double(full)
        print(String(format: "offline %lld revisions (%d pushes, %d member updates, the rest presences): resumed in %.2f s with %d bytes; a full snapshot is %d bytes: %.1f%% (goal ≤ 10%%: %@)",
                     churnEnd - churnStart, pushes, memberUpdates, resumeSeconds, delta, full, share * 100, share <= 0.10 ? "met" : "MISSED"))
        goals.append(("offline resume ≤ 10% of a snapshot", share <= 0.10))

        // 4. etcd restarted under the agents.
        if let restart = options.restart {
            let reconnectsBefore = agents.reduce(0) { $0 + $1.reconnections }
            let killed = now()
            // On a thread of its own: the command blocks until etcd answers again.
            let status = await withCheckedContinuation { continuation in
                Thread.detachNewThread { continuation.resume(returning: system(restart)) }
            }
            guard status == 0 else { print("etcd restart: \(restart) failed (\(status))"); return 1 }
            let up = now()
            print(String(format: "etcd restart: etcd answers again after %.1f s", up - killed))
            try await Task.sleep(for: .milliseconds(100))
            var change: Change?
            for _ in 0..<50 {
                do {
                    let policy = "p-\(650)"
                    try edit(policiesFile) { text in
                        let at = text.range(of: "[policy] \(policy): {\n")!
                        let allow = text.range(of: "    allow: ", range: at.upperBound..<text.endIndex)!
                        let line = text.range(of: "\n", range: allow.upperBound..<text.endIndex)!
                        text.replaceSubrange(allow.upperBound..<line.lowerBound, with: "tcp/4444")
                    }
                    change = try await pushChange("after the restart")
                    break
                } catch { try await Task.sleep(for: .milliseconds(100)) }
            }
            guard let change else { print("etcd restart: could not write after the restart"); return 1 }
            let end = up + 60
            while now() < end, !agents.allSatisfy({ $0.snapshot.seen >= change.revision }) { try await Task.sleep(for: .milliseconds(50)) }
            let behind = agents.filter { $0.snapshot.seen < change.revision }.count
            let seconds = now() - up
            print(String(format: "etcd restarted under %d agents (down for %.1f s): all %d in sync %.1f s after it answered again (goal ≤ 10 s: %@); %d reconnections",
                         agents.count, up - killed, agents.count - behind, seconds, behind == 0 && seconds <= 10 ? "met" : "MISSED",
                         agents.reduce(0) { $0 + $1.reconnections } - reconnectsBefore))
            goals.append(("etcd restart: all in sync ≤ 10 s", behind == 0 && seconds <= 10))
        }
        print("agents: resident \(Int(residentMegabytes())) MB in this process at the end")
        print("summary: " + goals.map { "\($0.0): \($0.1 ? "met" : "MISSED")" }.joined(separator: "; "))
        // The process ends here: its connections close with it.
        return 0
    }

    struct Latencies {
        var values: [Double]
        func p(_ q: Double) -> Double { pct(values.sorted(), q) }
        var max: Double { values.max() ?? 0 }
    }

    /// N watchers of one prefix, each with a client of its own; `puts` puts, each timed from
    /// just before the put to each watcher's event.
    static func rawFanOut(url: String, watchers: Int, puts: Int, admin: EtcdGatewayClient) async throws -> Latencies {
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var at: [Int64: [Double]] = [:]
            func add(_ revision: Int64, _ time: Double) { lock.withLock { at[revision, default: []].append(time) } }
            func count(_ revision: Int64) -> Int { lock.withLock { at[revision]?.count ?? 0 } }
        }
        let seen = Seen()
        var clients: [EtcdGatewayClient] = []
        var tasks: [Task<Void, Never>] = []
        final class Ready: @unchecked Sendable {
            let lock = NSLock()
            var count = 0, failed = 0
        }
        let ready = Ready()
        for _ in 0..<watchers {
            let client = try EtcdGatewayClient(endpoints: [url])
            clients.append(client)
            tasks.append(Task.detached {
                do {
                    let watch = try await client.watch(.prefix("/bench/raw/"))
                    ready.lock.withLock { ready.count += 1 }
                    for try await response in watch {
                        let time = now()
                        for event in response.events { seen.add(event.kv.modRevision, time) }
                    }
                } catch { ready.lock.withLock { ready.failed += 1 } }
            })
        }
        while ready.lock.withLock({ ready.count + ready.failed }) < watchers { try await Task.sleep(for: .milliseconds(20)) }
        if ready.failed > 0 { print("raw fan-out: \(ready.failed) watches failed") }
        var out: [Double] = []
        for i in 0..<puts {
            let start = now()
            let revision = try await admin.put("/bench/raw/key", String(repeating: "x", count: 100) + "\(i)").header.revision
            let end = now() + 10
            while seen.count(revision) < watchers && now() < end { try await Task.sleep(for: .milliseconds(5)) }
            out += seen.lock.withLock { seen.at[revision] ?? [] }.map { ($0 - start) * 1000 }
            try await Task.sleep(for: .milliseconds(200))
        }
        for task in tasks { task.cancel() }
        for client in clients { await client.shutdown() }
        return Latencies(values: out)
    }

    static func residentMegabytes() -> Double { IncrementalBenchmark.residentMegabytes() }
}

func pct(_ sorted: [Double], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((Double(sorted.count) * q / 100).rounded(.up))
    return sorted[min(sorted.count, max(rank, 1)) - 1]
}

/// An enrolled host's member record, as `enforcer enrol` writes it.
func member(name: String, address: String) -> String {
    "{\"name\":\"\(name)\",\"addresses\":[\"\(address)\"],\"updatedAt\":\"\(ISO8601.string(Date()))\"}"
}
