import Foundation
import Testing

/// `apply --confirm` as a promise the system keeps, and a state directory only root can
/// write, against the real kernel: each test in its own network namespace and state
/// directory (`ApplyLifecycleTests.Sandbox`).
@Suite(.serialized)
struct ConfirmPromiseTests {
    typealias Sandbox = ApplyLifecycleTests.Sandbox
    @discardableResult
    static func require(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        try ApplyLifecycleTests.require(result, sourceLocation: sourceLocation)
    }
    static func normalized(_ listing: String) -> [String] { ApplyLifecycleTests.normalized(listing) }
    static let enclave = Paths.example("enclave")

    /// Polls `condition` every 0.1 s for up to `seconds`; whether it became true.
    static func eventually(_ seconds: TimeInterval, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return try condition()
    }

    static func pendingFile(_ box: Sandbox) -> String { box.state + "/pending-confirm.json" }

    /// Kills every watchdog of this sandbox's state directory (they are processes of their own session).
    static func killWatchdogs(_ box: Sandbox) throws {
        _ = try run("/usr/bin/pkill", ["-KILL", "-f", "confirm-watchdog --state-dir \(box.state)"])
    }

    @Test("a later apply confirms a pending one: A, --confirm B, C leaves C for good")
    func aLaterApplyConfirms() throws {
        let box = try Sandbox("later")
        try Self.require(box.apply("db-1"))
        let armed = try Self.require(box.apply("srv-1", ["--confirm", "2"]))
        #expect(armed.stdout.contains("run `enforcer confirm` within 2 s, or generation 1 is restored"), "\(armed.stdout)")
        let third = try Self.require(box.apply("ws-1"))
        #expect(third.stdout.contains("confirmed generation 2 applied with --confirm: a later apply confirms it"), "\(third.stdout)")
        #expect(!FileManager.default.fileExists(atPath: Self.pendingFile(box)))
        let c = Self.normalized(try box.listing())
        Thread.sleep(forTimeInterval: 3)  // past the deadline: the watchdog finds nothing to keep
        #expect(Self.normalized(try box.listing()) == c)
        let status = try box.status(Self.enclave)
        #expect(status.stdout.contains("generation 3 is live") && !status.stdout.contains("pending confirm"), "\(status.stdout)")
    }

    @Test("a killed watchdog does not break the promise: status shows it, the next command keeps it")
    func killedWatchdog() throws {
        let box = try Sandbox("orphan")
        try Self.require(box.apply("db-1"))
        let a = Self.normalized(try box.listing())
        try Self.require(box.apply("srv-1", ["--confirm", "2"]))
        try Self.killWatchdogs(box)
        let waiting = try box.status(Self.enclave)
        #expect(waiting.stdout.contains("pending confirm: generation 2, applied with --confirm by pid"), "\(waiting.stdout)")
        #expect(waiting.stdout.contains("unless confirmed, generation 1 is restored at"))
        Thread.sleep(forTimeInterval: 2.5)
        #expect(Self.normalized(try box.listing()) != a)  // nobody kept it yet: the watchdog is dead
        let status = try box.status(Self.enclave)
        #expect(status.stderr.contains("enforcer: generation 2 was not confirmed by "), "\(status.stderr)")
        #expect(status.stderr.contains("restored generation 1 as generation 3"), "\(status.stderr)")
        #expect(status.stdout.contains("generation 3 is live") && !status.stdout.contains("pending confirm"), "\(status.stdout)")
        #expect(Self.normalized(try box.listing()) == a)
        let log = try String(contentsOfFile: box.state + "/watchdog.log", encoding: .utf8)
        #expect(log.contains("generation 2 was not confirmed by"), "\(log)")
    }

    @Test("apply --confirm killed at any point: after the deadline kernel, record and status agree on A")
    func killedConfirmingApply() throws {
        var outcomes: [String: Int] = [:]
        for round in 0..<8 {
            let box = try Sandbox("kill\(round)")
            try Self.require(box.apply("db-1"))
            let a = Self.normalized(try box.listing())
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", box.namespace, Paths.enforcer, "apply", "--dir", Self.enclave, "--system", "srv-1",
                                 "--confirm", "1", "--state-dir", box.state]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // From the start of the process to well after its commit.
            Thread.sleep(forTimeInterval: Double(round) * 0.03)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try Self.killWatchdogs(box)
            let changed = Self.normalized(try box.listing()) != a
            outcomes[changed ? "killed after its commit" : "killed before its commit", default: 0] += 1
            Thread.sleep(forTimeInterval: 1.2)
            let status = try box.status(Self.enclave)
            #expect(Self.normalized(try box.listing()) == a, "round \(round): the kernel does not hold A; \(status.stderr)")
            #expect(!status.stdout.contains("pending confirm"), "round \(round): \(status.stdout)")
            // The generation live by the record is A's ruleset: a plain apply of A sends nothing.
            let again = try Self.require(box.apply("db-1"))
            #expect(again.stdout.hasPrefix("unchanged"), "round \(round): \(again.stdout)")
        }
        // Both kinds of kill happened (the rounds span the whole apply).
        #expect(outcomes.count == 2, "\(outcomes)")
    }

    @Test("apply killed at 20 points: the kernel holds the old or the new ruleset, status names the one it holds, the next apply agrees")
    func killedApply() throws {
        var seen: [String: Int] = [:]
        for round in 0..<20 {
            let box = try Sandbox("killed\(round)")
            try Self.require(box.apply("db-1"))
            let a = Self.normalized(try box.listing())
            // How long the apply to be killed takes here and now, to spread the kills over it.
            let started = Date()
            try Self.require(box.apply("srv-1"))
            let duration = Date().timeIntervalSince(started)
            let b = Self.normalized(try box.listing())
            try Self.require(box.apply("db-1"))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", box.namespace, Paths.enforcer, "apply", "--dir", Self.enclave, "--system", "srv-1", "--state-dir", box.state]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: duration * 1.2 * Double(round) / 19)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let now = Self.normalized(try box.listing())
            #expect(now == a || now == b, "round \(round): the kernel holds neither the old nor the new ruleset")
            let status = try box.status(Self.enclave).stdout
            let line = status.split(separator: "\n").first.map(String.init) ?? ""
            // Generations: 1 A, 2 B, 3 A again, 4 the one killed.
            if now == b {
                #expect(line.contains("generation 4 is live"), "round \(round): \(line)")
                seen[line.contains("interrupted before it was recorded") ? "B in the kernel, not recorded" : "B in the kernel and recorded", default: 0] += 1
            } else {
                #expect(line.contains("generation 3 is live (the kernel's table says so too)"), "round \(round): \(line)")
                seen["A still in the kernel", default: 0] += 1
            }
            let again = try Self.require(box.apply("srv-1"))
            #expect(Self.normalized(try box.listing()) == b, "round \(round): \(again.stdout)")
            let after = try box.status(Self.enclave).stdout
            #expect(after.hasPrefix("generation: generation ") && after.contains("is live (the kernel's table says so too)"), "round \(round): \(after)")
        }
        print("killed apply outcomes: \(seen)")
        #expect(seen["A still in the kernel"] != nil && seen.count >= 2, "the kills did not span the apply: \(seen)")
    }

    @Test("applies at the same moment are serialised: distinct generations, every one recorded")
    func concurrentApplies() throws {
        let box = try Sandbox("race")
        try Self.require(box.apply("db-1"))
        let systems = ["srv-1", "ws-1", "db-1", "srv-1"]
        // All started at once by one shell, each writing its output to files of its own.
        let outputs = box.state + "-race"
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outputs) }
        let script = systems.enumerated().map { index, system in
            "/usr/sbin/ip netns exec \(box.namespace) \(Paths.enforcer) apply --replace --dir \(Self.enclave) --system \(system) --state-dir \(box.state) > \(outputs)/\(index).out 2> \(outputs)/\(index).err; echo $? > \(outputs)/\(index).status &"
        }.joined(separator: "\n") + "\nwait\n"
        try Self.require(run("/bin/sh", ["-c", script]))
        let results = try systems.indices.map { index in
            CommandResult(status: Int32(try String(contentsOfFile: "\(outputs)/\(index).status", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1,
                          stdout: try String(contentsOfFile: "\(outputs)/\(index).out", encoding: .utf8),
                          stderr: try String(contentsOfFile: "\(outputs)/\(index).err", encoding: .utf8))
        }
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        let numbers = results.compactMap { result -> Int? in
            guard let range = result.stdout.range(of: #"generation \d+"#, options: .regularExpression) else { return nil }
            return Int(result.stdout[range].dropFirst("generation ".count))
        }
        #expect(Set(numbers).count == systems.count, "\(results.map(\.stdout))")
        let kept = try Self.require(run("/usr/bin/sqlite3", [box.state + "/state.sqlite", "SELECT number FROM generation WHERE recorded = 1"]))
            .stdout.split(separator: "\n")
        #expect(kept.count == systems.count + 1, "\(kept)")
        // And the history has each of them, as an apply with its generation.
        let applies = try Self.require(run("/usr/bin/sqlite3", [box.state + "/state.sqlite", "SELECT generation FROM event WHERE kind = 'apply' ORDER BY id"]))
            .stdout.split(separator: "\n").compactMap { Int($0) }
        #expect(Set(applies) == Set(numbers + [1]), "\(applies)")

        // One that finds the lock taken says by whom, waits, then goes on.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = ["-x", box.state + "/lock", "-c", "echo 'pid 1 (a test holding it)' > \(box.state)/lock; sleep 1"]
        try holder.run()
        Thread.sleep(forTimeInterval: 0.2)
        let start = Date()
        let waited = try Self.require(box.apply("ws-1"))
        #expect(Date().timeIntervalSince(start) > 0.6)
        #expect(waited.stderr.contains("enforcer: waiting for the state lock, held by pid 1 (a test holding it)"), "\(waited.stderr)")
        holder.waitUntilExit()
    }

    @Test("a state directory others can write, or with a symbolic link, is refused; what enforcer creates is 0600/0700")
    func stateDirectoryAttacks() throws {
        // Whatever the umask, what enforcer makes is root's alone.
        let box = try Sandbox("modes")
        try Self.require(run("/bin/sh", ["-c", "umask 000; exec /usr/sbin/ip netns exec \(box.namespace) \(Paths.enforcer) apply --dir \(Self.enclave) --system db-1 --state-dir \(box.state)"]))
        let modes = try Self.require(run("/usr/bin/find", [box.state, "-printf", "%m %y %p\n"])).stdout
        for line in modes.split(separator: "\n") {
            let mode = line.split(separator: " ")[0], kind = line.split(separator: " ")[1]
            #expect(mode == (kind == "d" ? "700" : "600"), "\(line)")
        }
        let before = try box.listing()
        func refused(_ reason: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try box.apply("srv-1")
            #expect(result.status == 1, sourceLocation: sourceLocation)
            #expect(result.stderr.contains("refusing the state directory: ") && result.stderr.contains(reason), "\(result.stderr)",
                    sourceLocation: sourceLocation)
            #expect(try box.listing() == before, sourceLocation: sourceLocation)
        }
        // Owned by another user: that user could swap the generations root loads.
        try Self.require(run("/bin/chown", ["65534", box.state]))
        try refused("\(box.state) is owned by uid 65534; it must be owned by root")
        try Self.require(run("/bin/chown", ["0", box.state]))
        // Writable by others.
        try Self.require(run("/bin/chmod", ["0777", box.state]))
        try refused("is writable by group or others (mode 777)")
        try Self.require(run("/bin/chmod", ["0700", box.state]))
        // A symbolic link where the state database is.
        let elsewhere = box.state + "-elsewhere"
        defer { try? FileManager.default.removeItem(atPath: elsewhere) }
        try FileManager.default.moveItem(atPath: box.state + "/state.sqlite", toPath: elsewhere)
        try FileManager.default.createSymbolicLink(atPath: box.state + "/state.sqlite", withDestinationPath: elsewhere)
        try refused("\(box.state)/state.sqlite is a symbolic link")
        try FileManager.default.removeItem(atPath: box.state + "/state.sqlite")
        try FileManager.default.moveItem(atPath: elsewhere, toPath: box.state + "/state.sqlite")
        // A parent others can write (no sticky bit): they could replace the state directory itself.
        let parent = NSTemporaryDirectory() + "enforcer-parent-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        try Self.require(run("/bin/chmod", ["0777", parent]))
        let nested = try run("/usr/sbin/ip", ["netns", "exec", box.namespace, Paths.enforcer, "apply", "--dir", Self.enclave, "--system", "srv-1",
                                               "--state-dir", parent + "/state"])
        #expect(nested.status == 1 && nested.stderr.contains("\(parent) is writable by group or others (mode 777)"), "\(nested.stderr)")
        #expect(try box.listing() == before)
        // And it works again once the directory is root's.
        try Self.require(box.apply("srv-1"))
    }

    @Test("the daemon keeps a promise made while it runs, and one that broke while it was down")
    func daemonKeepsPromises() throws {
        let box = try Sandbox("daemon")
        let log = URL(fileURLWithPath: box.state + "-run.log")
        defer { try? FileManager.default.removeItem(at: log) }
        func startDaemon() throws -> Process {
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", box.namespace, Paths.enforcer, "run", "--dir", Self.enclave, "--system", "db-1",
                                 "--state-dir", box.state]
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            #expect(try Self.eventually(10) { (try? String(contentsOf: log, encoding: .utf8))?.contains(" generation ") == true })
            return process
        }
        var daemon = try startDaemon()
        defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }
        #expect(try Self.eventually(5) { try box.listing().contains("table inet enforcer") })
        let a = Self.normalized(try box.listing())
        let armed = try Self.require(box.apply("srv-1", ["--confirm", "2"]))
        #expect(armed.stdout.contains("(by enforcer run, pid \(daemon.processIdentifier))"), "\(armed.stdout)")
        #expect(try Self.eventually(6) { Self.normalized(try box.listing()) == a }, "the daemon did not restore")
        #expect(try Self.eventually(2) { (try String(contentsOf: log, encoding: .utf8)).contains("confirm: generation ") })

        // Down while the deadline passes: the daemon keeps the promise as it starts.
        kill(daemon.processIdentifier, SIGKILL)
        daemon.waitUntilExit()
        try Self.require(box.apply("srv-1", ["--confirm", "1"]))
        try Self.killWatchdogs(box)
        Thread.sleep(forTimeInterval: 1.5)
        #expect(Self.normalized(try box.listing()) != a)
        daemon = try startDaemon()
        // `enforcer run` keeps it before it starts anything else.
        #expect(try Self.eventually(5) { (try String(contentsOf: log, encoding: .utf8)).contains(" was not confirmed by ") }, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        #expect(Self.normalized(try box.listing()) == a)
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
    }
}
