import Foundation
import Testing

/// `enforcer run` on db-1 of the Enclave lab: flips at a window's boundary cut what the
/// window granted, and a reload with a broken file keeps the running generation.
@Suite(.serialized)
struct DaemonLiveTests {
    static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    static func hhmm(_ date: Date) -> String {
        let parts = utc.dateComponents([.hour, .minute], from: date)
        return String(format: "%02d:%02d", parts.hour ?? 0, parts.minute ?? 0)
    }

    /// The next whole minute at least `lead` seconds ahead.
    static func nextMinute(lead: TimeInterval) -> Date {
        let now = Date()
        var boundary = utc.dateInterval(of: .minute, for: now)!.end
        if boundary.timeIntervalSince(now) < lead { boundary = boundary.addingTimeInterval(60) }
        return boundary
    }

    /// `enforcer run` for `system`; returns once it has applied.
    static func runDaemon(_ lab: LiveTrafficTests.Lab, _ system: String, log: URL) throws -> Process {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", lab.ns(system), Paths.enforcer, "run", "--dir", lab.policy, "--system", system,
                             "--state-dir", lab.state + "/" + system]
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        lab.servers.append(process)
        try waitFor(log, "applied generation 1", process: process)
        return process
    }

    static func waitFor(_ log: URL, _ text: String, process: Process, seconds: TimeInterval = 10) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? String(contentsOf: log, encoding: .utf8))?.contains(text) == true { return }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        Issue.record("'\(text)' never appeared in the log: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    static func setSREHours(_ lab: LiveTrafficTests.Lab, _ hours: String) throws {
        let path = lab.policy + "/rules.d/30-databases.policy"
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
            of: "allow: tcp/5432, tcp/22, icmp\n", with: "allow: tcp/5432, tcp/22, icmp\n    active-hours: \(hours)\n")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func aWindowClosingOnTimeCutsItsConnectionAtTheBoundary() throws {
        let lab = try LiveTrafficTests.Lab()
        // The example expects SRE around the clock; this test gives SRE a window that closes now.
        try FileManager.default.removeItem(atPath: lab.policy + "/rules.d/90-expectations.policy")
        let boundary = Self.nextMinute(lead: 8)
        try Self.setSREHours(lab, "daily \(Self.hhmm(boundary.addingTimeInterval(-3600)))-\(Self.hhmm(boundary))")
        try lab.serve("db-1", port: 5432)
        try lab.serve("db-1", port: 22)
        let log = URL(fileURLWithPath: lab.policy + "-db-1.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try Self.runDaemon(lab, "db-1", log: log)

        let sre = try lab.longLived(from: "sre-1", to: "10.20.2.11", port: 5432)
        let workstation = try lab.longLived(from: "ws-1", to: "fd00:20:2::11", port: 22)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(sre.isRunning && workstation.isRunning, "both connections should be up before the boundary")
        var cut: Date?
        let deadline = boundary.addingTimeInterval(4)
        while Date() < deadline {
            if !sre.isRunning { cut = Date(); break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        let offset = cut.map { $0.timeIntervalSince(boundary) }
        print("window closed at \(ISO8601DateFormatter().string(from: boundary)); SRE connection cut \(offset.map { String(format: "%+.3f s", $0) } ?? "never")")
        #expect(offset.map { abs($0) <= 1 } == true, "the SRE connection must be cut within 1 s of the boundary, was \(offset.map { "\($0) s" } ?? "never")")
        #expect(workstation.isRunning, "Server access for Workstations has no window: its connection stays")
        #expect(try !lab.echoes(from: "sre-1", to: "10.20.2.11", port: 5432), "a new SRE connection after the window closed")
        try Self.waitFor(log, "flip (time): 'Database Servers for SRE' deactivates (outside active hours", process: daemon)
        #expect(daemon.isRunning)
    }

    @Test func aReloadWithABrokenFileKeepsTheRunningGeneration() throws {
        let lab = try LiveTrafficTests.Lab()
        try lab.serve("db-1", port: 5432)
        let log = URL(fileURLWithPath: lab.policy + "-db-1.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try Self.runDaemon(lab, "db-1", log: log)
        let sre = try lab.longLived(from: "sre-1", to: "fd00:20:2::11", port: 5432)
        Thread.sleep(forTimeInterval: 0.3)

        // A broken file: the reload (on the file change, and again on SIGHUP) is refused.
        try "[policy] half-written: {\n    senders: sre\n".write(toFile: lab.policy + "/rules.d/50-broken.policy", atomically: true, encoding: .utf8)
        try Self.waitFor(log, "reload (files changed under \(lab.policy)) refused", process: daemon)
        kill(daemon.processIdentifier, SIGHUP)
        try Self.waitFor(log, "reload (SIGHUP) refused: 2 errors; generation 1 stays live", process: daemon)
        #expect(try String(contentsOf: log, encoding: .utf8).contains("50-broken.policy:1:"), "the log names the file and line")
        #expect(sre.isRunning, "the running generation must stay live")
        #expect(try lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432) == false)
        #expect(try lab.echoes(from: "sre-1", to: "10.20.2.11", port: 5432))
        let status = try run(Paths.enforcer, ["status", "--state-dir", lab.state + "/db-1"])
        #expect(status.stdout.contains("generation 1"), "\(status.stdout)\(status.stderr)")
        #expect(status.stdout.contains("last reload") && status.stdout.contains("refused"), "\(status.stdout)")

        // Fixed: the next change is applied as a delta and the connection goes on.
        try "[policy] half-written: {\n    senders: workstations\n    receivers: database-servers\n    allow: tcp/5432\n}\n"
            .write(toFile: lab.policy + "/rules.d/50-broken.policy", atomically: true, encoding: .utf8)
        try Self.waitFor(log, "applied generation 2", process: daemon)
        #expect(!(try String(contentsOf: log, encoding: .utf8)).contains("applied generation 2 for db-1: table replaced"), "a reload is a delta")
        #expect(sre.isRunning, "an unrelated reload keeps the SRE connection")
        #expect(try lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432), "the new policy grants ws-1 tcp/5432")

        // `enforcer policy new` checks the draft, saves it and reloads the running daemon.
        let prepared = lab.policy + "-prepared"
        defer { try? FileManager.default.removeItem(atPath: prepared) }
        try "[policy] \"Web for Contractors\": {\n    senders: contractors\n    receivers: database-servers\n    allow: tcp/443\n}\n"
            .write(toFile: prepared, atomically: true, encoding: .utf8)
        let created = try run(Paths.enforcer, ["policy", "new", "60-contractor-web", "--dir", lab.policy, "--state-dir", lab.state + "/db-1"],
                              environment: ["VISUAL": "cp '\(prepared)'"])
        #expect(created.stdout.contains("reloading enforcer run (pid \(daemon.processIdentifier))"), "\(created.stdout)\(created.stderr)")
        try Self.waitFor(log, "reload (SIGHUP)", process: daemon)
        try Self.waitFor(log, "applied generation 3", process: daemon)

        daemon.terminate()
        try Self.waitFor(log, "run: stopped (SIGTERM); the ruleset stays in force", process: daemon)
        let listed = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "nft", "list", "table", "inet", "enforcer"])
        #expect(listed.status == 0, "on_stop keep: the table stays after SIGTERM")
    }

    /// `policy enable --for` is a set element with a kernel timeout: with no enforcer process
    /// running at all, the grant and its connection end on time.
    @Test func aTimedGrantRunsOutInTheKernelWithNoEnforcerRunning() throws {
        let lab = try LiveTrafficTests.Lab()
        try "[policy] \"Break glass for contractors\": {\n    senders: contractors\n    receivers: database-servers\n    allow: tcp/5432\n    enabled: no\n}\n"
            .write(toFile: lab.policy + "/rules.d/40-break-glass.policy", atomically: true, encoding: .utf8)
        try lab.serve("db-1", port: 5432)
        let state = lab.state + "/db-1"
        func apply() throws {
            let applied = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "apply", "--dir", lab.policy, "--system", "db-1", "--state-dir", state])
            try #require(applied.status == 0, "\(applied.stderr)")
        }
        try apply()
        #expect(try !lab.echoes(from: "contractor-1", to: "10.20.2.11", port: 5432), "enabled: no grants nothing")

        // The deadline is set inside the command: somewhere between these two instants plus 5 s.
        let before = Date()
        let enabled = try run(Paths.enforcer, ["policy", "enable", "Break glass for contractors", "--for", "5s", "--dir", lab.policy, "--state-dir", state])
        let after = Date()
        #expect(enabled.status == 0 && enabled.stdout.hasPrefix("'Break glass for contractors' enabled until "), "\(enabled.stdout)\(enabled.stderr)")
        let until = before.addingTimeInterval(5), latest = after.addingTimeInterval(5)
        try apply()
        let timed = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "nft", "list", "set", "inet", "enforcer", "timed_policies"]).stdout
        #expect(timed.contains("timeout") && timed.contains("expires"), "the grant is a kernel element with a timeout: \(timed)")
        #expect(try lab.echoes(from: "contractor-1", to: "fd00:20:2::11", port: 5432), "the grant holds")
        let connection = try lab.longLived(from: "contractor-1", to: "10.20.2.11", port: 5432)
        let status = try run(Paths.enforcer, ["status", "--state-dir", state]).stdout
        #expect(status.contains("override: 'Break glass for contractors' enabled until"), "\(status)")

        var cut: Date?
        while Date() < latest.addingTimeInterval(4) {
            if !connection.isRunning { cut = Date(); break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let offset = cut.map { $0.timeIntervalSince(until) }
        print("timed grant ran out at \(ISO8601DateFormatter().string(from: until)); connection cut \(offset.map { String(format: "%+.3f s", $0) } ?? "never") with no enforcer running")
        let window = latest.timeIntervalSince(until)
        #expect(offset.map { $0 > -0.2 && $0 < window + 1.0 } == true,
                "the kernel must end the grant on time: cut \(offset.map { "\($0) s" } ?? "never") after the earliest possible deadline (window \(window) s)")
        #expect(try !lab.echoes(from: "contractor-1", to: "10.20.2.11", port: 5432), "after the timeout no new connection")
        #expect(try lab.echoes(from: "sre-1", to: "10.20.2.11", port: 5432), "other policies are untouched")
    }

    /// `[run] on_stop = "flush"`: SIGTERM removes enforcer's table; `status --json` reports
    /// the daemon while it runs and after.
    @Test func onStopFlushRemovesTheTableAndStatusSaysSo() throws {
        let lab = try LiveTrafficTests.Lab()
        let conf = lab.policy + "/enforcer.conf"
        try (try String(contentsOfFile: conf, encoding: .utf8) + "\n[run]\non_stop = \"flush\"\n").write(toFile: conf, atomically: true, encoding: .utf8)
        let log = URL(fileURLWithPath: lab.policy + "-db-1.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try Self.runDaemon(lab, "db-1", log: log)
        let state = lab.state + "/db-1"
        let json = try run(Paths.enforcer, ["status", "--state-dir", state, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json.stdout)")
        #expect(json.status == 0, "a daemon runs")
        #expect(object["schema"] as? Int == 1)
        #expect(object["running"] as? Bool == true)
        #expect(object["generation"] as? Int == 1)
        let report = try #require(object["daemon"] as? [String: Any])
        #expect(report["system"] as? String == "db-1")
        #expect(report["started_at"] is String && report["stopped_at"] is NSNull, "snake_case keys, nulls written: \(report.keys.sorted())")
        let policies = try #require(report["policies"] as? [[String: Any]])
        #expect(policies.contains { $0["name"] as? String == "Database Servers for SRE" && $0["active"] as? Bool == true }, "\(policies)")

        daemon.terminate()
        try Self.waitFor(log, "run: stopped (SIGTERM); enforcer's table removed", process: daemon)
        let listed = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "nft", "list", "table", "inet", "enforcer"])
        #expect(listed.status != 0, "on_stop flush: the table is gone")
        let stopped = try run(Paths.enforcer, ["status", "--state-dir", state])
        #expect(stopped.status == 3, "no daemon runs")
        let after = stopped.stdout
        #expect(after.contains("daemon: not running (last report stopped "), "\(after)")
    }

    /// `policy disable NAME --after 3s` with the daemon running: it reloads at once, and the
    /// policy and its connection end when the override begins.
    @Test func aSystemExpiringIsRefusedByItsReceiverOnTime() throws {
        let lab = try LiveTrafficTests.Lab()
        // The example's expectations name sre-1 as a sender; this test lets it expire.
        try FileManager.default.removeItem(atPath: lab.policy + "/rules.d/90-expectations.policy")
        let expiry = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 6).rounded(.up))
        let stamp = ISO8601DateFormatter().string(from: expiry)
        let path = lab.policy + "/rules.d/00-systems.policy"
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
            of: "    address: 10.10.1.31, fd00:10:1::31\n    tags: sre\n",
            with: "    address: 10.10.1.31, fd00:10:1::31\n    tags: sre\n    expires: \(stamp)\n")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try lab.serve("db-1", port: 5432)
        try lab.serve("db-1", port: 22)
        let log = URL(fileURLWithPath: lab.policy + "-db-1.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try Self.runDaemon(lab, "db-1", log: log)
        #expect(try lab.echoes(from: "sre-1", to: "10.20.2.11", port: 5432), "sre-1 reaches db-1 before its expiry")
        let status = try run(Paths.enforcer, ["status", "--state-dir", lab.state + "/db-1"]).stdout
        #expect(status.contains("next flip: \(stamp) 'system sre-1'"), "\(status)")
        let open = try lab.longLived(from: "sre-1", to: "10.20.2.11", port: 5432)
        let other = try lab.longLived(from: "ws-1", to: "fd00:20:2::11", port: 22)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(open.isRunning && other.isRunning, "both connections are up before the expiry")

        try Self.waitFor(log, "flip (time): system 'sre-1' expired", process: daemon, seconds: 12)
        let flipped = Date()
        print("sre-1 expired at \(stamp); flip logged \(String(format: "%+.3f s", flipped.timeIntervalSince(expiry)))")
        #expect(flipped.timeIntervalSince(expiry) < 1.5)
        // The connection sre-1 opened before is cut, as a trust revoke cuts one; ws-1's stays.
        let deadline = Date().addingTimeInterval(2)
        while open.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(!open.isRunning, "sre-1's open connection is cut at its expiry")
        #expect(other.isRunning, "ws-1's connection stays")
        #expect(try !lab.echoes(from: "sre-1", to: "10.20.2.11", port: 5432), "sre-1 is refused after its expiry (IPv4)")
        #expect(try !lab.echoes(from: "sre-1", to: "fd00:20:2::11", port: 22), "sre-1 is refused after its expiry (IPv6)")
        #expect(try lab.echoes(from: "ws-1", to: "fd00:20:2::11", port: 22), "other senders keep their access")
        #expect(daemon.isRunning)
    }

    @Test func disableAfterEndsThePolicyOnTime() throws {
        let lab = try LiveTrafficTests.Lab()
        try lab.serve("db-1", port: 5432)
        let log = URL(fileURLWithPath: lab.policy + "-db-1.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try Self.runDaemon(lab, "db-1", log: log)
        let sre = try lab.longLived(from: "sre-1", to: "10.20.2.11", port: 5432)
        Thread.sleep(forTimeInterval: 0.3)
        let before = Date()
        let disabled = try run(Paths.enforcer, ["policy", "disable", "Database Servers for SRE", "--after", "3s", "--dir", lab.policy,
                                                 "--state-dir", lab.state + "/db-1"])
        #expect(disabled.stdout.contains("'Database Servers for SRE' disabled from ") && disabled.stdout.contains("reloading enforcer run"),
                "\(disabled.stdout)\(disabled.stderr)")
        try Self.waitFor(log, "reload (SIGHUP)", process: daemon)
        #expect(sre.isRunning, "still enabled until the override begins")
        var cut: Date?
        while Date() < before.addingTimeInterval(8) {
            if !sre.isRunning { cut = Date(); break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        let offset = cut.map { $0.timeIntervalSince(before.addingTimeInterval(3)) }
        print("disable --after 3s: SRE connection cut \(offset.map { String(format: "%+.3f s", $0) } ?? "never") after the earliest possible start")
        #expect(offset.map { $0 > -0.2 && $0 < 1.5 } == true, "cut \(offset.map { "\($0) s" } ?? "never")")
        try Self.waitFor(log, "flip (time): 'Database Servers for SRE' deactivates (disabled by `enforcer policy disable`", process: daemon)
        let status = try run(Paths.enforcer, ["status", "--state-dir", lab.state + "/db-1"]).stdout
        #expect(status.contains("override: 'Database Servers for SRE' disabled from"), "\(status)")
        #expect(status.contains("inactive policy 'Database Servers for SRE'"), "\(status)")
    }

    /// The Enclave lab with a policy that needs `trust: mfa` (SRE and contractors to db-1, tcp/2222).
    static func trustLab() throws -> (LiveTrafficTests.Lab, state: String) {
        let lab = try LiveTrafficTests.Lab()
        try "[policy] \"Admin for SRE and contractors\": {\n    senders: sre, contractors\n    receivers: database-servers\n    allow: tcp/2222\n    trust: mfa\n}\n"
            .write(toFile: lab.policy + "/rules.d/40-admin.policy", atomically: true, encoding: .utf8)
        try lab.serve("db-1", port: 2222)
        return (lab, lab.state + "/db-1")
    }

    static func trust(_ arguments: [String], _ lab: LiveTrafficTests.Lab, _ state: String) throws -> CommandResult {
        try run(Paths.enforcer, ["trust"] + arguments + ["--dir", lab.policy, "--state-dir", state])
    }

    /// `enforcer trust grant|revoke`: a policy with `trust: mfa` grants only senders that meet
    /// it; revoking one sender's mfa cuts that sender's connection at once and leaves the other
    /// sender's connection under the same policy up.
    @Test func aTrustRevokeCutsThatSendersConnectionsOnly() throws {
        let (lab, state) = try Self.trustLab()
        func apply() throws {
            let applied = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "apply", "--dir", lab.policy, "--system", "db-1", "--state-dir", state])
            try #require(applied.status == 0, "\(applied.stderr)")
        }
        func trust(_ arguments: [String]) throws -> CommandResult { try Self.trust(arguments, lab, state) }
        try apply()
        #expect(try !lab.echoes(from: "sre-1", to: "10.20.2.11", port: 2222), "without mfa nobody is granted")
        let granted = try trust(["grant", "sre-1", "mfa"])
        #expect(granted.stdout.hasPrefix("sre-1 mfa: granted (required by 'Admin for SRE and contractors')"), "\(granted.stdout)\(granted.stderr)")
        _ = try trust(["grant", "contractor-1", "mfa"])
        try apply()
        let sre = try lab.longLived(from: "sre-1", to: "10.20.2.11", port: 2222)
        let contractor = try lab.longLived(from: "contractor-1", to: "fd00:20:2::11", port: 2222)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(sre.isRunning && contractor.isRunning, "both trusted senders connect")

        _ = try trust(["revoke", "contractor-1", "mfa"])
        try apply()
        let deadline = Date().addingTimeInterval(3)
        while contractor.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        #expect(!contractor.isRunning, "the revoked sender's connection is cut at once")
        #expect(sre.isRunning, "the other sender's connection under the same policy stays up")
        #expect(try !lab.echoes(from: "contractor-1", to: "10.20.2.11", port: 2222), "no new connection after the revoke")
        #expect(try lab.echoes(from: "sre-1", to: "fd00:20:2::11", port: 2222))
        let listed = try trust(["list"]).stdout
        #expect(listed.contains("contractor-1 mfa: revoked") && listed.contains("sre-1 mfa: granted"), "\(listed)")
        let revoked = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "nft", "list", "set", "inet", "enforcer", "revoked_v4"]).stdout
        #expect(revoked.contains("10.10.1.21 . 0x"), "\(revoked)")
    }

    /// `trust grant --for` with the daemon running: when the grant runs out the daemon flips
    /// at once and that sender's connection is cut; the other sender's stays.
    @Test func aTrustGrantRunningOutCutsUnderTheDaemon() throws {
        let (lab, state) = try Self.trustLab()
        let log = URL(fileURLWithPath: lab.policy + "-db-1.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try Self.runDaemon(lab, "db-1", log: log)
        func trust(_ arguments: [String]) throws -> CommandResult { try Self.trust(arguments, lab, state) }
        _ = try trust(["grant", "sre-1", "mfa"])
        let before = Date()
        let granted = try trust(["grant", "contractor-1", "mfa", "--for", "4s"])
        #expect(granted.stdout.contains("reloading enforcer run"), "\(granted.stdout)\(granted.stderr)")
        // Both reloads may come as one: wait for what they grant, not for a generation number.
        let granting = Date().addingTimeInterval(3)
        while try !lab.echoes(from: "contractor-1", to: "10.20.2.11", port: 2222, timeout: 0.5), Date() < granting { Thread.sleep(forTimeInterval: 0.05) }
        let sre = try lab.longLived(from: "sre-1", to: "10.20.2.11", port: 2222)
        let contractor = try lab.longLived(from: "contractor-1", to: "10.20.2.11", port: 2222)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(sre.isRunning && contractor.isRunning)
        var cut: Date?
        while Date() < before.addingTimeInterval(9) {
            if !contractor.isRunning { cut = Date(); break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        let offset = cut.map { $0.timeIntervalSince(before.addingTimeInterval(4)) }
        print("trust grant --for 4s: contractor connection cut \(offset.map { String(format: "%+.3f s", $0) } ?? "never") after the earliest possible end")
        #expect(offset.map { $0 > -0.2 && $0 < 1.5 } == true, "cut \(offset.map { "\($0) s" } ?? "never")")
        #expect(sre.isRunning, "the other sender's connection stays")
        #expect(daemon.isRunning)
    }

    /// The wall clock being set wakes the daemon at once (TFD_TIMER_CANCEL_ON_SET), and it
    /// recomputes the state. The clock is set to itself (a step of microseconds), so nothing
    /// else on the machine notices.
    @Test func settingTheClockMakesTheDaemonRecomputeAtOnce() throws {
        let lab = try LiveTrafficTests.Lab()
        let log = URL(fileURLWithPath: lab.policy + "-db-1.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try Self.runDaemon(lab, "db-1", log: log)
        Thread.sleep(forTimeInterval: 0.2)
        let set = try run("/usr/bin/env", ["python3", "-c", "import time; time.clock_settime(time.CLOCK_REALTIME, time.clock_gettime(time.CLOCK_REALTIME))"])
        try #require(set.status == 0, "clock_settime: \(set.stderr)")
        try Self.waitFor(log, "flip (the wall clock was set): no policy changed state", process: daemon, seconds: 3)
        #expect(daemon.isRunning)
    }
}
