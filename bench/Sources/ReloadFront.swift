import Compiler
import Foundation

/// `enforcer-bench reload-front [DIR]`: the daemon's reload up to the kernel, in one
/// process and without it: the policy directory loaded through a `ParseCache`, the edits
/// from the policy before, and the kept compile taking them (host sys-0), for a one-system
/// change (a system's first address, in the 14 MB systems file), a one-policy change (a
/// port of p-601, in the policies file) and for a reload of an unchanged directory. Medians of RUNS (default 15) changes, each phase timed on its own,
/// so that a change to one of them shows beside the others in the same run. `KINDS` (comma
/// separated) runs only those kinds.
enum ReloadFrontBenchmark {
    static func main(_ arguments: [String]) -> Int32 {
        let source = arguments.dropFirst().first ?? "/tmp/enforcer-bench-policy"
        let runs = Int(ProcessInfo.processInfo.environment["RUNS"] ?? "") ?? 15
        let root = NSTemporaryDirectory() + "enforcer-reload-front-\(getpid())"
        let fm = FileManager.default
        defer { try? fm.removeItem(atPath: root) }
        do { try fm.copyItem(atPath: source, toPath: root) } catch {
            print("no policy at \(source) (run enforcer-bench first): \(error)")
            return 1
        }
        let systemsFile = root + "/rules.d/10-systems.policy"
        guard var text = try? [UInt8](Data(contentsOf: URL(fileURLWithPath: systemsFile))) else { print("cannot read \(systemsFile)"); return 1 }
        let cache = ParseCache()
        guard var policy = PolicyLoader.load(directory: root, cache: cache).policySet, let host = policy.system(named: "sys-0") else {
            print("the policy at \(source) does not load"); return 1
        }
        let instant = try! Instant.parse("2026-11-23T10:00:00Z", defaultZone: TimeZone(identifier: "UTC")!)
        var model = try! IncrementalHost(policySet: policy, host: host, at: instant)

        // The first address of sys-101's block, rewritten in place (same length) each run.
        let marker = Array("[system] sys-101: {\n    address: ".utf8)
        guard let at = text.indices.first(where: { text[$0] == marker[0] && text[$0..<min(text.count, $0 + marker.count)].elementsEqual(marker) }) else {
            print("no sys-101 in \(systemsFile)"); return 1
        }
        let addressStart = at + marker.count
        let policiesFile = root + "/rules.d/20-policies.policy"
        guard var policies = try? [UInt8](Data(contentsOf: URL(fileURLWithPath: policiesFile))) else { print("cannot read \(policiesFile)"); return 1 }
        // The last digit of p-601's port range (tcp/8000-8100 → 8101 …), rewritten in place each run.
        let portMarker = Array("[policy] p-601: {\n    senders: team-101\n    receivers: svc-1\n    allow: tcp/443, tcp/8000-810".utf8)
        guard let portAt = policies.indices.first(where: { policies[$0] == portMarker[0] && policies[$0..<min(policies.count, $0 + portMarker.count)].elementsEqual(portMarker) }) else {
            print("no p-601 with ports tcp/443, tcp/8000-810x in \(policiesFile)"); return 1
        }
        let portDigit = portAt + portMarker.count
        func timed<T>(_ body: () -> T) -> (T, Double) {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = body()
            return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        var phases: [String: [Double]] = [:]
        // KINDS="one policy" runs that kind alone (for a profile).
        let kinds = ProcessInfo.processInfo.environment["KINDS"].map { $0.split(separator: ",").map(String.init) } ?? ["one system", "one policy", "unchanged"]
        for run in 0..<(kinds.count * runs) {
            let label = kinds[run % kinds.count]
            if label == "one system" {
                // 10.x.y.z → a neighbour of the same length: the digit before the comma cycles.
                var end = addressStart
                while text[end] != UInt8(ascii: ",") { end += 1 }
                text[end - 1] = UInt8(ascii: "0") + (text[end - 1] - UInt8(ascii: "0") + 1) % 10
                try! Data(text).write(to: URL(fileURLWithPath: systemsFile))
            } else if label == "one policy" {
                policies[portDigit] = UInt8(ascii: "0") + (policies[portDigit] - UInt8(ascii: "0") + 1) % 10
                try! Data(policies).write(to: URL(fileURLWithPath: policiesFile))
            }
            let (loaded, loadMs) = timed { PolicyLoader.load(directory: root, cache: cache) }
            guard let next = loaded.policySet else { print(loaded.diagnostics.prefix(3).map(\.description).joined(separator: "\n")); return 1 }
            let (edits, editsMs) = timed { policy.edits(to: next) }
            guard let edits else { print("no edits from the policy before"); return 1 }
            let (_, compileMs) = timed { try! model.apply(edits) }
            policy = next
            phases["\(label): load", default: []].append(loadMs)
            phases["\(label): edits", default: []].append(editsMs)
            phases["\(label): compile", default: []].append(compileMs)
            phases["\(label): total", default: []].append(loadMs + editsMs + compileMs)
        }
        // Beside it, the obvious alternative: the same directory loaded whole, without a cache.
        var scratch: [Double] = []
        for _ in 0..<5 {
            let (loaded, ms) = timed { PolicyLoader.load(directory: root) }
            precondition(loaded.policySet != nil)
            scratch.append(ms)
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        print("reload front (load with the parse cache, edits, incremental compile; host sys-0), medians of \(runs):")
        for label in kinds {
            let line = ["load", "edits", "compile", "total"].map { String(format: "%@ %.1f ms", $0, median(phases["\(label): \($0)"]!)) }
            print("  \(label.padding(toLength: 11, withPad: " ", startingAt: 0)) " + line.joined(separator: " | "))
        }
        var whole = String(format: "  the same directory loaded whole, without the cache: %.1f ms (median of 5)", median(scratch))
        if let load = phases["one system: load"] { whole += String(format: "; one-system load / whole load = %.3fx", median(load) / median(scratch)) }
        print(whole)
        return 0
    }
}
