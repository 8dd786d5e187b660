import Foundation
import Testing

/// `enforcer run` puts its tables back when another process changes them, against the real
/// kernel in a network namespace of the test's own: each kind of tampering, undone within
/// a second, with foreign tables left alone; and with `on_drift = "report"`, only logged.
@Suite(.serialized)
struct DriftRepairTests {
    typealias Sandbox = ApplyLifecycleTests.Sandbox

    /// enforcer's own table, as `nft list` prints it without handles, sets and chains in
    /// name order (a listing of the whole ruleset would include the foreign table).
    static func ours(_ box: Sandbox) throws -> [String] {
        let listing = try run("/usr/sbin/ip", ["netns", "exec", box.namespace, "nft", "-a", "list", "table", "inet", "enforcer"])
        return listing.status == 0 ? ApplyLifecycleTests.normalized(listing.stdout) : ["(no table)"]
    }

    static func nft(_ box: Sandbox, _ command: String) throws {
        try ApplyLifecycleTests.require(run("/usr/sbin/ip", ["netns", "exec", box.namespace, "nft", command]))
    }

    /// A copy of the enclave example with `extra` added to enforcer.conf's [kernel] section.
    static func policy(kernel extra: String) throws -> String {
        let copy = NSTemporaryDirectory() + "enforcer-drift-policy-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try ApplyLifecycleTests.require(run("/bin/cp", ["-r", Paths.example("enclave"), copy]))
        let conf = copy + "/enforcer.conf"
        let text = try String(contentsOfFile: conf, encoding: .utf8).replacingOccurrences(of: "[kernel]\n", with: "[kernel]\n\(extra)\n")
        try text.write(toFile: conf, atomically: true, encoding: .utf8)
        return copy
    }

    final class Daemon {
        let process = Process()
        let log: URL
        init(_ box: Sandbox, policy: String) throws {
            log = URL(fileURLWithPath: box.state + "-run.log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", box.namespace, Paths.enforcer, "run", "--dir", policy, "--system", "db-1", "--state-dir", box.state]
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            try DaemonLiveTests.waitFor(log, "applied generation 1", process: process)
        }
        var text: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        deinit {
            if process.isRunning { process.terminate(); process.waitUntilExit() }
            try? FileManager.default.removeItem(at: log)
        }
    }

    @Test("each kind of tampering is logged and undone within a second; foreign tables stay as they are")
    func restores() throws {
        let box = try Sandbox("drift")
        // A foreign table, as iptables-nft would leave it.
        try Self.nft(box, "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }")
        let foreign = { try run("/usr/sbin/ip", ["netns", "exec", box.namespace, "nft", "-a", "list", "table", "ip", "filter"]).stdout }
        let untouched = try foreign()
        let daemon = try Daemon(box, policy: Paths.example("enclave"))
        let good = try Self.ours(box)
        #expect(good.contains { $0.contains("chain input") })
        // An element of the sender map, as nft prints it, to delete.
        let listing = try run("/usr/sbin/ip", ["netns", "exec", box.namespace, "nft", "list", "map", "inet", "enforcer", "in_hosts_v4"]).stdout
        let element = try #require(listing.range(of: #"\d+\.\d+\.\d+\.\d+(/\d+)? : jump in_[0-9a-f]+"#, options: .regularExpression).map { String(listing[$0]) })
        let address = String(element.prefix { $0 != " " })

        let tampering: [(String, String)] = [
            ("a rule inserted", "insert rule inet enforcer input accept"),
            ("the input policy set to accept", "chain inet enforcer input { policy accept; }"),
            ("a sender map element deleted", "delete element inet enforcer in_hosts_v4 { \(address) }"),
            ("a sender map element added", "add element inet enforcer in_hosts_v4 { 192.0.2.99 : accept }"),
            ("the table deleted", "delete table inet enforcer"),
            ("the whole ruleset flushed", "flush ruleset"),
        ]
        var seconds: [String] = []
        for (kind, command) in tampering {
            let logged = daemon.text.components(separatedBy: "drift: restored").count
            let start = Date()
            // The daemon usually repairs before a listing could show the change; the new
            // "drift: restored" line below is what proves it saw one.
            try Self.nft(box, command)
            var restoredAt: Date?
            while Date().timeIntervalSince(start) < 3 {
                if try Self.ours(box) == good, daemon.text.components(separatedBy: "drift: restored").count > logged { restoredAt = Date(); break }
                Thread.sleep(forTimeInterval: 0.02)
            }
            let took = restoredAt.map { $0.timeIntervalSince(start) }
            #expect(took != nil && took! < 1, "\(kind): not restored within 1 s (\(took.map { String(format: "%.2f s", $0) } ?? "never")); log:\n\(daemon.text)")
            seconds.append("\(kind) \(took.map { String(format: "%.0f ms", $0 * 1000) } ?? "never")")
            if command != "flush ruleset" { #expect(try foreign() == untouched, "\(kind): the foreign table changed") }
        }
        print("drift restored: " + seconds.joined(separator: ", "))
        let log = daemon.text
        #expect(log.contains("drift: rule added to chain input in table inet enforcer by nft (pid "), "\(log)")
        #expect(log.contains("drift: chain input set with policy accept in table inet enforcer by nft"), "\(log)")
        #expect(log.contains("drift: elements removed from set in_hosts_v4 in table inet enforcer by nft"), "\(log)")
        #expect(log.contains("drift: table deleted in table inet enforcer by nft"), "\(log)")
        let status = try box.status(Paths.example("enclave")).stdout
        #expect(status.contains("drift: 6 changes to enforcer's tables by other processes, 6 restored"), "\(status)")
        // And on record: six drift events, each with what changed and the generation that restored it.
        let history = try ApplyLifecycleTests.require(box.enforcer(["history", "--kind", "drift", "--dir", Paths.example("enclave")])).stdout
        #expect(history.components(separatedBy: "by another process; restored as generation").count == 7, "\(history)")
        #expect(history.contains("    chain input set with policy accept in table inet enforcer by nft"), "\(history)")
        // enforcer's own commands are not drift: an apply by another enforcer process stays.
        try ApplyLifecycleTests.require(box.apply("db-1", ["--replace"]))
        Thread.sleep(forTimeInterval: 0.5)
        #expect(!daemon.text.contains("drift: table deleted in table inet enforcer by enforcer"))
        #expect(daemon.text.components(separatedBy: "drift: restored").count == 7)
    }

    @Test("without a daemon, apply and status doubt a table that anyone may have changed since; the daemon vouches for commits that left it alone")
    func theRecordIsTrustedOnlyWhileNobodyElseCommitted() throws {
        let box = try Sandbox("driftcli")
        try ApplyLifecycleTests.require(box.apply("db-1"))
        let good = try Self.ours(box)
        // A rule inserted by hand leaves the table's mark and handle as they were.
        try Self.nft(box, "insert rule inet enforcer input accept")
        let status = try box.status(Paths.example("enclave")).stdout
        #expect(status.contains("generation 1 is live (the kernel's table says so too); but nftables has changed since it was applied"), "\(status)")
        let repaired = try ApplyLifecycleTests.require(box.apply("db-1")).stdout
        #expect(repaired.hasPrefix("applied generation 2 for db-1: nftables changed since generation 1 was applied (another program committed, and no enforcer daemon watched what); table replaced"), "\(repaired)")
        #expect(try Self.ours(box) == good)
        #expect(try ApplyLifecycleTests.require(box.apply("db-1")).stdout.hasPrefix("unchanged: generation 2 is live"))

        // With `enforcer run` watching, a commit that leaves enforcer's tables alone keeps the
        // record trusted: the next apply is still "unchanged", not a whole replacement.
        let watched = try Sandbox("driftwatched")
        let daemon = try Daemon(watched, policy: Paths.example("enclave"))
        try Self.nft(watched, "add table inet someone_else")
        #expect(try ConfirmPromiseTests.eventually(2) {
            let text = (try? watched.enforcer(["status", "--dir", Paths.example("enclave")]).stdout) ?? ""
            return text.contains("(the kernel's table says so too)") && !text.contains("nftables has changed since")
        }, "\(daemon.text)")
        let again = try ApplyLifecycleTests.require(watched.apply("db-1")).stdout
        #expect(again.hasPrefix("unchanged: generation 1 is live"), "\(again)")
    }

    @Test("on_drift = report: logged and counted, left as it is")
    func reportsOnly() throws {
        let box = try Sandbox("driftreport")
        let policy = try Self.policy(kernel: "on_drift = \"report\"")
        defer { try? FileManager.default.removeItem(atPath: policy) }
        let daemon = try Daemon(box, policy: policy)
        try Self.nft(box, "insert rule inet enforcer input accept")
        #expect(try ConfirmPromiseTests.eventually(2) { daemon.text.contains("drift: left as it is ([kernel] on_drift is report)") }, "\(daemon.text)")
        let listing = try run("/usr/sbin/ip", ["netns", "exec", box.namespace, "nft", "list", "chain", "inet", "enforcer", "input"]).stdout
        #expect(listing.contains("\t\taccept\n"), "\(listing)")
        let status = try box.status(policy).stdout
        #expect(status.contains("drift: 1 change to enforcer's tables by other processes, 0 restored"), "\(status)")
    }
}
