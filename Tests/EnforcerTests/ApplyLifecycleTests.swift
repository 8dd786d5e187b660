import Foundation
import Testing

/// `enforcer apply`, `confirm`, `rollback` and `flush` against the real kernel, each test in
/// its own network namespace with its own state directory.
@Suite(.serialized)
struct ApplyLifecycleTests {
    final class Sandbox {
        let namespace: String
        let state: String

        init(_ label: String) throws {
            precondition(getuid() == 0, "ApplyLifecycleTests load rulesets into network namespaces and must run as root (CI does)")
            let suffix = "\(getpid())-\(Int.random(in: 0..<1_000_000))"
            namespace = "enfa-\(label)-\(suffix)"
            state = NSTemporaryDirectory() + "enforcer-state-\(suffix)"
            try require(run("/usr/sbin/ip", ["netns", "add", namespace]))
            try require(run("/usr/sbin/ip", ["netns", "exec", namespace, "ip", "link", "set", "lo", "up"]))
        }

        deinit {
            // An apply with --confirm leaves a watchdog waiting out its time: not past the test.
            _ = try? run("/usr/bin/pkill", ["-KILL", "-f", "confirm-watchdog --state-dir \(state)"])
            _ = try? run("/usr/sbin/ip", ["netns", "del", namespace])
            try? FileManager.default.removeItem(atPath: state)
        }

        /// `enforcer ARGS --state-dir STATE` inside the namespace.
        func enforcer(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
            try run("/usr/sbin/ip", ["netns", "exec", namespace, Paths.enforcer] + arguments + ["--state-dir", state],
                    environment: ["TZ": "UTC"].merging(environment) { $1 })
        }

        func apply(_ system: String, _ extra: [String] = [], environment: [String: String] = [:]) throws -> CommandResult {
            try enforcer(["apply", "--dir", Paths.example("enclave"), "--system", system] + extra, environment: environment)
        }

        /// `enforcer status`, which exits 3 when no daemon runs (none does in a sandbox
        /// unless the test starts one) and 0 when one does.
        func status(_ directory: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
            let result = try enforcer(["status", "--dir", directory])
            try #require(result.status == 0 || result.status == 3, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
            return result
        }

        /// The whole ruleset with handles: any change the kernel made shows here.
        func listing() throws -> String {
            try require(run("/usr/sbin/ip", ["netns", "exec", namespace, "nft", "-a", "list", "ruleset"])).stdout
        }
    }

    @discardableResult
    static func require(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        try #require(result.status == 0, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    @Test func reapplyingAnUnchangedPolicySendsNothing() throws {
        let box = try Sandbox("same")
        let first = try Self.require(box.apply("db-1"))
        #expect(first.stdout.hasPrefix("applied generation 1 for db-1: table replaced"))
        let before = try box.listing()
        let again = try Self.require(box.apply("db-1"))
        #expect(again.stdout == "unchanged: generation 1 is live and matches the policy; nothing sent\n")
        #expect(try box.listing() == before)  // same handles: nothing was re-created
    }

    @Test func aChangeIsSentAsADelta() throws {
        let box = try Sandbox("delta")
        try Self.require(box.apply("db-1"))
        let tableHandle = try box.listing().split(separator: "\n").first ?? ""
        let change = try Self.require(box.apply("srv-1"))
        #expect(change.stdout.contains("applied generation 2 for srv-1: "))
        #expect(!change.stdout.contains("table replaced"), "\(change.stdout)")
        #expect(try box.listing().split(separator: "\n").first ?? "" == tableHandle)  // the table was not re-created
        let replaced = try Self.require(box.apply("srv-1", ["--replace"]))
        #expect(replaced.stdout.contains("unchanged") || replaced.stdout.contains("table replaced"))
    }

    @Test func sshSessionGuard() throws {
        let box = try Sandbox("ssh")
        try Self.require(box.apply("db-1"))
        let before = try box.listing()
        // contractor-1 has no policy to srv-1's sshd: applying srv-1's ruleset would cut this session.
        let session = ["SSH_CONNECTION": "10.10.1.21 50022 10.20.1.11 22"]
        let refused = try box.apply("srv-1", environment: session)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("refusing to apply: this ruleset would cut the SSH session it runs in (from 10.10.1.21 port 50022 to 10.20.1.11 port 22; found by SSH_CONNECTION); use --confirm DURATION to have it undone unless `enforcer confirm` follows in time, or --force to apply anyway"), "\(refused.stderr)")
        #expect(try box.listing() == before)
        // ws-1 may reach srv-1 on tcp/22 ("Server access for Workstations"): allowed through.
        try Self.require(box.apply("srv-1", environment: ["SSH_CONNECTION": "10.10.2.11 50022 10.20.1.11 22"]))
        let forced = try box.apply("db-1", ["--force"], environment: ["SSH_CONNECTION": "10.10.1.21 50022 10.20.2.11 22"])
        #expect(forced.status == 0, "\(forced.stderr)")
    }

    @Test func unconfirmedApplyIsRolledBack() throws {
        let box = try Sandbox("confirm")
        try Self.require(box.apply("db-1"))
        let generationOne = try box.listing()
        let start = Date()
        let armed = try Self.require(box.apply("srv-1", ["--confirm", "2"]))
        #expect(armed.stdout.contains("run `enforcer confirm` within 2 s, or generation 1 is restored"))
        #expect(try box.listing().contains("Servers full mesh"))
        // Wait for the watchdog (a detached process: the apply above has exited already).
        var restored = false
        while Date().timeIntervalSince(start) < 15 {
            if Self.normalized(try box.listing()) == Self.normalized(generationOne) { restored = true; break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        #expect(restored, "generation 1 was not restored")
        #expect(Date().timeIntervalSince(start) >= 2)
        let log = (try? String(contentsOfFile: box.state + "/watchdog.log", encoding: .utf8)) ?? ""
        #expect(log.contains("generation 2 was not confirmed by ") && log.contains("; restored generation 1 as generation 3"), "\(log)")
        #expect(Self.normalized(try box.listing()) == Self.normalized(generationOne))
    }

    @Test func confirmedApplyStays() throws {
        let box = try Sandbox("kept")
        try Self.require(box.apply("db-1"))
        try Self.require(box.apply("srv-1", ["--confirm", "2"]))
        let confirmed = try Self.require(box.enforcer(["confirm", "--dir", Paths.example("enclave")]))
        #expect(confirmed.stdout == "confirmed generation 2; nothing will be restored\n")
        let after = try box.listing()
        Thread.sleep(forTimeInterval: 3)
        #expect(try box.listing() == after)
    }

    @Test func rollbackAndFlush() throws {
        let box = try Sandbox("rollback")
        // A foreign table, as iptables-nft would leave it; enforcer must never touch it.
        try Self.require(run("/usr/sbin/ip", ["netns", "exec", box.namespace, "nft", "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }; add rule ip filter FORWARD counter accept"]))
        // Byte for byte, handles included: `nft -a list table ip filter` before and after each step.
        func foreign() throws -> String {
            try Self.require(run("/usr/sbin/ip", ["netns", "exec", box.namespace, "nft", "-a", "list", "table", "ip", "filter"])).stdout
        }
        let untouched = try foreign()
        try Self.require(box.apply("db-1"))
        #expect(try foreign() == untouched, "apply changed the foreign table")
        try Self.require(box.apply("db-1"))
        #expect(try foreign() == untouched, "re-apply changed the foreign table")
        let one = Self.normalized(try box.listing())
        try Self.require(box.apply("srv-1"))
        #expect(try foreign() == untouched, "a delta changed the foreign table")
        let back = try Self.require(box.enforcer(["rollback", "--dir", Paths.example("enclave")]))
        #expect(try foreign() == untouched, "rollback changed the foreign table")
        #expect(back.stdout.hasPrefix("restored generation 1 as generation 3"), "\(back.stdout)")
        #expect(Self.normalized(try box.listing()) == one)
        let missing = try box.enforcer(["rollback", "99", "--dir", Paths.example("enclave")])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("generation 99 is not kept"))
        try Self.require(box.enforcer(["flush", "--dir", Paths.example("enclave")]))
        let tables = try Self.require(run("/usr/sbin/ip", ["netns", "exec", box.namespace, "nft", "list", "tables"])).stdout
        #expect(tables == "table ip filter\n")
        #expect(try foreign() == untouched, "flush changed the foreign table")
        // After a flush nothing is current: the next apply creates the table again.
        #expect(try Self.require(box.apply("db-1")).stdout.contains("table replaced"))
    }

    /// The listing without handles and the generation mark, with sets and chains in name
    /// order: a delta appends new sets and chains, so the kernel's order differs from a
    /// fresh load's.
    static func normalized(_ listing: String) -> [String] {
        let text = listing.replacingOccurrences(of: #" # handle \d+"#, with: "", options: .regularExpression)
        var blocks: [String] = [], current = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("\tset ") || line.hasPrefix("\tmap ") || line.hasPrefix("\tchain ") || line.hasPrefix("table ") {
                if !current.isEmpty { blocks.append(current) }
                current = ""
            }
            current += line + "\n"
        }
        blocks.append(current)
        // The generation mark names the generation, which differs between two loads of the
        // same ruleset.
        return blocks.filter { !$0.hasPrefix("\tset generation ") }.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.sorted()
    }
}
