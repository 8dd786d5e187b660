import Foundation
import Testing

/// `enforcer run` under a service manager: what it says on `NOTIFY_SOCKET` (read by a
/// stand-in for systemd, `Support/notify_socket.py`), and the shipped unit's sandbox.
@Suite(.serialized)
struct ServiceManagerLiveTests {
    static let receiver = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/notify_socket.py").path
    static let unit = Paths.example("service/enforcer.service")

    struct Message: Decodable {
        var at: Double
        var message: String
        var table: Bool?
        var fields: [String: String] {
            Dictionary(message.split(separator: "\n").map { line in
                let parts = line.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }, uniquingKeysWith: { _, last in last })
        }
    }

    /// A namespace with the Enclave example, a receiver on a notification socket, and
    /// `enforcer run` as db-1 told to notify it.
    final class Setup {
        let tag = "\(getpid() % 10000)-\(Int.random(in: 0..<1000))"
        var namespace: String { "enfsd-\(tag)" }
        let root: String
        var policy: String { root + "/policy" }
        var messages: String { root + "/messages.jsonl" }
        var log: URL { URL(fileURLWithPath: root + "/run.log") }
        var processes: [Process] = []

        init() throws {
            root = NSTemporaryDirectory() + "enforcer-notify-\(tag)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Paths.example("enclave"), toPath: policy)
            _ = try run("/usr/sbin/ip", ["netns", "add", namespace])
            FileManager.default.createFile(atPath: messages, contents: nil)
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let receiver = Process()
            receiver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            receiver.arguments = [ServiceManagerLiveTests.receiver, root + "/notify", messages, namespace]
            try receiver.run()
            processes.append(receiver)
            let deadline = Date().addingTimeInterval(5)
            while !FileManager.default.fileExists(atPath: root + "/notify") && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        }

        deinit {
            for process in processes { GatewayLab.stop(process) }
            GatewayLab.removeNamespace(namespace)
            try? FileManager.default.removeItem(atPath: root)
        }

        /// Starts the daemon with `environment` on top of the notification socket's.
        func start(system: String = "db-1", environment: [String: String] = [:], arguments: [String] = []) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, Paths.enforcer, "run", "--dir", policy, "--system", system, "--state-dir", root + "/state"] + arguments
            var env = ProcessInfo.processInfo.environment
            env["NOTIFY_SOCKET"] = root + "/notify"
            for (key, value) in environment { env[key] = value }
            process.environment = env
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
            processes.append(process)
            return process
        }

        func received() -> [Message] {
            let text = (try? String(contentsOfFile: messages, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Message.self, from: Data($0.utf8)) }
        }

        /// Waits until a message after the first `after` ones satisfies `match`; returns it.
        func waitFor(after: Int = 0, seconds: Double = 10, _ what: String, _ match: (Message) -> Bool) -> Message? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let found = received().dropFirst(after).first(where: match) { return found }
                Thread.sleep(forTimeInterval: 0.02)
            }
            Issue.record("no \(what) within \(seconds) s; received: \(received().map(\.message)); log: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            return nil
        }
    }

    @Test("Type=notify: READY=1 once the ruleset is in the kernel, RELOADING=1 and READY=1 around reloads with STATUS=, WATCHDOG=1 from the loop, STOPPING=1")
    func notifiesItsServiceManager() throws {
        let setup = try Setup()
        let daemon = try setup.start(environment: ["WATCHDOG_USEC": "400000"])
        let ready = try #require(setup.waitFor("READY=1") { $0.fields["READY"] == "1" })
        #expect(ready.table == true, "READY=1 came before enforcer's table was in the kernel")
        #expect(ready.fields["STATUS"]?.hasPrefix("generation 1 live for db-1") == true, "\(ready.message)")
        #expect(ready.fields["MAINPID"] == "\(daemon.processIdentifier)", "\(ready.message)")
        #expect(!setup.received().contains { $0.at < ready.at && $0.fields["READY"] != nil })

        // The watchdog every 0.2 s (half of WATCHDOG_USEC).
        let before = setup.received().count
        Thread.sleep(forTimeInterval: 1.2)
        let pings = setup.received().dropFirst(before).filter { $0.message == "WATCHDOG=1" }
        #expect(pings.count >= 3 && pings.count <= 8, "\(pings.count) watchdog pings in 1.2 s")

        // SIGHUP: reloading, then ready again with the generation.
        var count = setup.received().count
        kill(daemon.processIdentifier, SIGHUP)
        let reloading = setup.waitFor(after: count, "RELOADING=1") { $0.fields["RELOADING"] == "1" }
        #expect(reloading?.fields["MONOTONIC_USEC"].flatMap(UInt64.init) != nil, "\(reloading?.message ?? "")")
        let reloaded = setup.waitFor(after: count, "READY=1 after the reload") { $0.fields["READY"] == "1" }
        if let reloading, let reloaded { #expect(reloading.at <= reloaded.at) }
        #expect(reloaded?.fields["STATUS"]?.contains("live for db-1") == true, "\(reloaded?.message ?? "")")

        // A broken file: the reload is refused, and the status says so and which generation stays.
        count = setup.received().count
        try "[policy] half-written: {\n    senders: sre\n".write(toFile: setup.policy + "/rules.d/50-broken.policy", atomically: true, encoding: .utf8)
        let refused = setup.waitFor(after: count, "a status saying the reload was refused") {
            $0.fields["READY"] == "1" && $0.fields["STATUS"]?.contains("last reload refused") == true
        }
        #expect(refused?.fields["STATUS"]?.contains("50-broken.policy:") == true, "\(refused?.message ?? "")")
        #expect(refused?.fields["STATUS"]?.hasPrefix("generation ") == true, "\(refused?.message ?? "")")
        #expect(refused?.message.contains("RELOADING=1") == false)

        count = setup.received().count
        kill(daemon.processIdentifier, SIGTERM)
        let stopping = setup.waitFor(after: count, "STOPPING=1") { $0.fields["STOPPING"] == "1" }
        #expect(stopping?.fields["STATUS"]?.contains("stopping (SIGTERM)") == true, "\(stopping?.message ?? "")")
    }

    @Test("a daemon that cannot start never says READY=1, and without WATCHDOG_USEC it sends no pings")
    func aFailedStartIsNeverReady() throws {
        let setup = try Setup()
        let failing = try setup.start(system: "no-such-system")
        failing.waitUntilExit()
        #expect(failing.terminationStatus == 1)
        #expect(setup.received().isEmpty, "\(setup.received().map(\.message))")

        let daemon = try setup.start()
        _ = setup.waitFor("READY=1") { $0.fields["READY"] == "1" }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(!setup.received().contains { $0.message.contains("WATCHDOG") })
        kill(daemon.processIdentifier, SIGTERM)
        _ = setup.waitFor("STOPPING=1") { $0.fields["STOPPING"] == "1" }
    }

    @Test("logs: under systemd's journal each line starts with its priority and no time, elsewhere with a time ending in Z; logfmt; --log-level")
    func logsFitWhereTheyGo() throws {
        let setup = try Setup()
        // Standard error is the log file: JOURNAL_STREAM naming that file is what systemd sets.
        let attributes = try FileManager.default.attributesOfItem(atPath: setup.log.path)
        let stream = "\(attributes[.systemNumber]!):\(attributes[.systemFileNumber]!)"
        var daemon = try setup.start(environment: ["JOURNAL_STREAM": stream])
        _ = setup.waitFor("READY=1") { $0.fields["READY"] == "1" }
        kill(daemon.processIdentifier, SIGTERM)
        _ = setup.waitFor("STOPPING=1") { $0.fields["STOPPING"] == "1" }
        daemon.waitUntilExit()
        var lines = try String(contentsOf: setup.log, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("<6>level=info msg=\"applied generation 1 for db-1") && $0.contains(" event=start generation=1") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("<6>level=info msg=\"run: stopped (SIGTERM)") }, "\(lines)")
        #expect(lines.allSatisfy { $0.hasPrefix("<") }, "every line carries its priority: \(lines)")

        // Not the journal (the variable names another file): a time in UTC with its Z; and
        // --log-level warning keeps only the warnings and errors.
        try Data().write(to: setup.log)
        daemon = try setup.start(environment: ["JOURNAL_STREAM": "1:1"], arguments: ["--log-level", "warning"])
        _ = setup.waitFor(after: setup.received().count, "READY=1") { $0.fields["READY"] == "1" }
        let count = setup.received().count
        try "[policy] half-written: {\n    senders: sre\n".write(toFile: setup.policy + "/rules.d/50-broken.policy", atomically: true, encoding: .utf8)
        _ = setup.waitFor(after: count, "the refused reload") { $0.fields["STATUS"]?.contains("last reload refused") == true }
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        lines = try String(contentsOf: setup.log, encoding: .utf8).split(separator: "\n")
        let stamped = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(error|warning) msg=/
        #expect(!lines.isEmpty && lines.allSatisfy { $0.firstMatch(of: stamped) != nil }, "\(lines)")
        #expect(lines.contains { $0.contains("level=warning msg=\"reload (files changed under") && $0.contains("outcome=refused") }, "\(lines)")
        #expect(lines.contains { $0.contains("level=error msg=\"") && $0.contains("50-broken.policy:") }, "\(lines)")
        #expect(!lines.contains { $0.contains("applied generation 1") }, "info lines are left out at --log-level warning: \(lines)")
    }

    @Test("the shipped unit: Type=notify with a watchdog, and systemd-analyze's offline security score at most 2.5")
    func theUnitIsSandboxed() throws {
        let text = try String(contentsOfFile: Self.unit, encoding: .utf8)
        for line in ["Type=notify", "NotifyAccess=main", "WatchdogSec=", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW"] {
            #expect(text.contains("\n" + line), "the unit lacks \(line)")
        }
        #expect(!text.contains("\nMemoryDenyWriteExecute="), "PCRE2's JIT needs writable then executable memory")
        let analysed = try run("/usr/bin/systemd-analyze", ["security", "--offline=yes", "--no-pager", Self.unit])
        let line = try #require(analysed.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(analysed.stdout)\(analysed.stderr)")
        let score = try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }, "\(line)")
        #expect(score <= 2.5, "\(line)")
    }
}
