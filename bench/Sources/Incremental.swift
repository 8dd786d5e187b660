// Incremental compile benchmark (`enforcer-bench incremental`): the benchmark policy
// (10,000 systems, 1,000 policies, 1,000,000 sender addresses), held by an `IncrementalHost`
// for sys-0, which receives from all of them. Each edit is made there and back several
// times; the incremental compile of each is timed against a full compile (access graph and
// `HostCompiler`, the load left out of both) of the same policy in the same run, and the
// two rulesets are compared once per kind of edit. Then the resident memory of the process
// holding the model, against the full compile's peak.
import Compiler
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum IncrementalBenchmark {
    static let runs = 9, fullRuns = 3

    static func main(root: String, generate: () throws -> Void) -> Int32 {
        do { try generate() } catch {
            print("cannot write the policy: \(error)")
            return 1
        }
        let loaded = PolicyLoader.load(directory: root)
        guard var set = loaded.policySet, let host = set.system(named: "sys-0") else {
            print(loaded.diagnostics.prefix(5).map(\.description).joined(separator: "\n"))
            return 1
        }
        let instant = try! Instant.parse("2026-11-23T10:00:00Z", defaultZone: TimeZone(identifier: "UTC")!)
        let afterLoad = residentMegabytes()
        // The full compile's peak (the policy set it reads included: the daemon holds that too).
        var fullSeconds = 0.0
        do {
            let start = now()
            let compiled = try! HostCompiler(graph: AccessGraph(set), system: host, at: instant).compile()
            fullSeconds = now() - start
            precondition(!compiled.ruleset.table.sets.isEmpty)
        }
        let compilePeak = peakMegabytes()
        let buildStart = now()
        var model = try! IncrementalHost(policySet: set, host: host, at: instant)
        let buildSeconds = now() - buildStart
        let holding = residentMegabytes()
        print(String(format: "incremental: %d systems, %d policies, %d sender addresses; host sys-0", set.systems.count, set.policies.count,
                     set.systems.reduce(0) { $0 + $1.addresses.count }))
        print(String(format: "first build (a full compile and the indexes) %.0f ms; full compile alone %.0f ms", buildSeconds * 1000, fullSeconds * 1000))

        let moved = set.system(named: "sys-5000")!
        let odd = IPAddress(v4: UInt32(truncatingIfNeeded: moved.addresses[0].address.value) + 1)
        func withAddress(_ first: AddressBlock) -> SystemDefinition {
            SystemDefinition(name: moved.name, location: moved.location, addresses: [first] + moved.addresses.dropFirst(), tags: moved.tags)
        }
        func withTags(_ tags: [String]) -> SystemDefinition {
            SystemDefinition(name: moved.name, location: moved.location, addresses: moved.addresses, tags: tags)
        }
        let policyIndex = set.policies.firstIndex { $0.name == "p-7" }!
        let original = set.policies[policyIndex]
        var ports = original
        ports.allow = [try! Service.parse("tcp/2222")]
        var senders = original
        senders.senders = ["team-8"]

        let kinds: [(name: String, there: PolicyEdit, back: PolicyEdit, goalMilliseconds: Double)] = [
            ("one system: an address moves", .setSystem(withAddress(AddressBlock(odd))), .setSystem(moved), 20),
            ("one system: its tags change", .setSystem(withTags(["team-1", "svc-0"])), .setSystem(moved), 20),
            ("one policy: its ports change", .setPolicy(ports), .setPolicy(original), 50),
            ("one policy: its senders change", .setPolicy(senders), .setPolicy(original), 50),
        ]
        var allMet = true
        print("edit                              incremental (median of \(runs))   full compile (median of \(fullRuns))   incremental / full   goal (compile part)")
        for kind in kinds {
            var times: [Double] = [], fullTimes: [Double] = []
            var summary = ""
            var same = true
            for run in 0..<runs {
                let edit = run % 2 == 0 ? kind.there : kind.back
                make(edit, in: &set)
                let start = now()
                let changes = try! model.apply([edit])
                times.append(now() - start)
                if run == 0 { summary = changes.summary }
                if run < fullRuns {
                    let fullStart = now()
                    let full = try! HostCompiler(graph: AccessGraph(set, ids: model.policyIDs), system: host, at: instant).compile()
                    fullTimes.append(now() - fullStart)
                    same = same && full.ruleset == model.ruleset
                }
            }
            let median = times.sorted()[runs / 2] * 1000, fullMedian = fullTimes.sorted()[fullRuns / 2] * 1000
            let met = median <= kind.goalMilliseconds && same
            allMet = allMet && met
            print(kind.name.padding(toLength: 34, withPad: " ", startingAt: 0)
                  + String(format: "%8.2f ms%@%8.1f ms%@%8.4f            ≤ %.0f ms: %@", median, String(repeating: " ", count: 18), fullMedian,
                           String(repeating: " ", count: 18), median / fullMedian, kind.goalMilliseconds, met ? "met" : "MISSED")
                  + (same ? "" : " (ruleset differs from the full compile!)"))
            print("    first run: \(summary)")
        }
        let ratio = holding / compilePeak
        allMet = allMet && ratio <= 1.5
        print(String(format: "memory: resident %.0f MB holding the model (%.0f MB after the load, before any compile); full compile's peak %.0f MB; ratio %.2f (goal ≤ 1.5×: %@)",
                     holding, afterLoad, compilePeak, ratio, ratio <= 1.5 ? "met" : "MISSED"))
        print("fallbacks to a full compile: \(model.fallbacks.isEmpty ? "none" : "\(model.fallbacks)"); incremental edits \(model.incrementalEdits)")
        return allMet ? 0 : 1
    }

    static func make(_ edit: PolicyEdit, in set: inout PolicySet) {
        switch edit {
        case .setSystem(let system): set.systems[set.systems.firstIndex { $0.name == system.name }!] = system
        case .setPolicy(let policy): set.policies[set.policies.firstIndex { $0.name == policy.name }!] = policy
        default: fatalError("not used here")
        }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    static func peakMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// Resident memory now (`/proc/self/statm`, second field, in pages).
    static func residentMegabytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }
}
