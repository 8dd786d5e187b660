// Compile benchmark: a generated policy of 10,000 systems, 1,000 policies and 1,000,000
// sender addresses, compiled for the system that receives from all of them.
// `enforcer-bench domains [DIR]` runs the domain-list benchmark instead (Domains.swift);
// `enforcer-bench inspect` the worker's per-packet work without the queue (Inspect.swift);
// `enforcer-bench fleet --store URL …` the fleet's agents against etcd (FleetBenchmark.swift);
// `enforcer-bench incremental` one-system and one-policy edits of the same policy, compiled
// incrementally and in full (Incremental.swift); `enforcer-bench reload-front` the daemon's
// reload before the kernel: the cached load, the edits, the kept compile (ReloadFront.swift).
import Compiler
import Foundation
#if canImport(Glibc)
import Glibc
#endif

if let mode = CommandLine.arguments.dropFirst().first, mode == "domains" || mode == "domains-load" || mode == "domains-count" {
    exit(DomainBenchmark.main(Array(CommandLine.arguments.dropFirst())))
}
if CommandLine.arguments.dropFirst().first == "digest" {
    exit(DigestBenchmark.main(Array(CommandLine.arguments.dropFirst())))
}
if CommandLine.arguments.dropFirst().first == "reload-front" {
    exit(ReloadFrontBenchmark.main(Array(CommandLine.arguments.dropFirst())))
}
if CommandLine.arguments.dropFirst().first == "inspect" {
    exit(InspectBenchmark.main(Array(CommandLine.arguments.dropFirst())))
}

let systems = 10_000, policies = 1_000, addressesPerSystem = 100, teams = 500
let incremental = CommandLine.arguments.dropFirst().first == "incremental"
let root = incremental ? "/tmp/enforcer-bench-incremental" : (CommandLine.arguments.dropFirst().first ?? "/tmp/enforcer-bench-policy")
let fm = FileManager.default

func generate(_ dir: String = root) throws {
    try? fm.removeItem(atPath: dir)
    try fm.createDirectory(atPath: dir + "/rules.d", withIntermediateDirectories: true)
    try "[policy]\ntime_window_tz = \"utc\"\n".write(toFile: dir + "/enforcer.conf", atomically: true, encoding: .utf8)
    var text = ""
    text.reserveCapacity(systems * addressesPerSystem * 14)
    for i in 0..<systems {
        let addresses = (0..<addressesPerSystem).map { j -> String in
            let n = UInt32(0x0A00_0000) + UInt32(i * addressesPerSystem + j) * 2
            return "\(n >> 24).\((n >> 16) & 255).\((n >> 8) & 255).\(n & 255)"
        }
        var tags = ["team-\(i % teams)", "svc-\(i % 200)"]
        if i == 0 { tags.append("core") }
        text += "[system] sys-\(i): {\n    address: \(addresses.joined(separator: ", "))\n    tags: \(tags.joined(separator: ", "))\n}\n"
    }
    try text.write(toFile: dir + "/rules.d/10-systems.policy", atomically: true, encoding: .utf8)
    var rules = ""
    for k in 0..<policies {
        let receivers = k < teams ? "core" : "svc-\(k % 200)"
        let allow = ["tcp/22", "tcp/443, tcp/8000-8100", "udp/53, icmp", "any"][k % 4]
        let hours = k % 10 == 0 ? "\n    active-hours: weekdays 08:00-18:00" : ""
        rules += "[policy] p-\(k): {\n    senders: team-\(k % teams)\n    receivers: \(receivers)\n    allow: \(allow)\(hours)\n}\n"
    }
    try rules.write(toFile: dir + "/rules.d/20-policies.policy", atomically: true, encoding: .utf8)
}

if CommandLine.arguments.dropFirst().first == "fleet" {
    exit(FleetBenchmark.main(Array(CommandLine.arguments.dropFirst(2)), generate: { try generate($0) }))
}

func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func time<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = DispatchTime.now()
    let value = try body()
    return (value, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
}

if incremental {
    exit(IncrementalBenchmark.main(root: root, generate: { try generate() }))
}

try generate()
let baseline = peakRSSMegabytes()
let (loaded, loadSeconds) = time { PolicyLoader.load(directory: root) }
guard let set = loaded.policySet else {
    print(loaded.diagnostics.prefix(5).map(\.description).joined(separator: "\n"))
    exit(1)
}
let (graph, graphSeconds) = time { AccessGraph(set) }
let instant = try Instant.parse("2026-11-23T10:00:00Z", defaultZone: TimeZone(identifier: "UTC")!)
let (compiled, compileSeconds) = try time { try HostCompiler(graph: graph, system: set.system(named: "sys-0")!, at: instant).compile() }
let (text, renderSeconds) = time { NFTText.render(compiled.ruleset) }
let (pairs, pairSeconds) = time { graph.entries.reduce(0) { $0 + $1.connectedPairs } }
let total = loadSeconds + graphSeconds + compileSeconds + pairSeconds
let elements = compiled.ruleset.table.sets.reduce(0) { $0 + $1.elements.count }
let peak = peakRSSMegabytes()
print(String(format: "policy: %d systems, %d policies, %d sender addresses", systems, policies, systems * addressesPerSystem))
print(String(format: "load+check %.2f s | access graph %.2f s | compile %.2f s | pair counts %.2f s (%d pairs)",
             loadSeconds, graphSeconds, compileSeconds, pairSeconds, pairs))
print(String(format: "compile total %.2f s (goal < 3 s: %@) | peak RSS %.0f MB (goal < 500 MB: %@; process baseline %.0f MB)",
             total, total < 3 ? "met" : "MISSED", peak, peak < 500 ? "met" : "MISSED", baseline))
print(String(format: "ruleset: %d sets, %d chains, %d elements; nft text %.1f MB rendered in %.2f s",
             compiled.ruleset.table.sets.count, compiled.ruleset.table.chains.count, elements, Double(text.utf8.count) / 1e6, renderSeconds))
