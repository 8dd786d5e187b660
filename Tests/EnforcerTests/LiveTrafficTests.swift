import Foundation
import Testing

/// Real connections between network namespaces on one switch, with rulesets loaded by
/// `enforcer apply`: what a user would observe (a connection that works, one that times out,
/// one that is reset mid-flight), for IPv4 and IPv6 (so neighbour discovery must work).
@Suite(.serialized)
struct LiveTrafficTests {
    /// Enclave systems on one L2 segment (10.0.0.0/8, fd00::/16 on-link).
    static let hosts: [(name: String, v4: String, v6: String)] = [
        ("db-1", "10.20.2.11", "fd00:20:2::11"),
        ("sre-1", "10.10.1.31", "fd00:10:1::31"),
        ("ws-1", "10.10.2.11", "fd00:10:2::11"),
        ("contractor-1", "10.10.1.21", "fd00:10:1::21"),
    ]

    final class Lab {
        let tag = "\(getpid() % 10000)-\(Int.random(in: 0..<1000))"
        let policy: String
        let state: String
        var servers: [Process] = []

        func ns(_ host: String) -> String { "enfl-\(tag)-\(host)" }

        init() throws {
            precondition(getuid() == 0, "LiveTrafficTests build network namespaces and must run as root (CI does)")
            policy = NSTemporaryDirectory() + "enforcer-live-\(tag)"
            state = policy + "-state"
            try FileManager.default.copyItem(atPath: Paths.example("enclave"), toPath: policy)
            let sw = ns("switch")
            try sh("ip netns add \(sw) && ip -n \(sw) link add br0 type bridge && ip -n \(sw) link set br0 up")
            for (index, host) in LiveTrafficTests.hosts.enumerated() {
                let n = ns(host.name)
                try sh("""
                    ip netns add \(n) && ip -n \(n) link set lo up && \
                    ip link add h\(index)-\(tag) netns \(n) type veth peer name p\(index) netns \(sw) && \
                    ip -n \(sw) link set p\(index) master br0 up && \
                    ip -n \(n) link set h\(index)-\(tag) name eth0 && ip -n \(n) link set eth0 up && \
                    ip -n \(n) addr add \(host.v4)/8 dev eth0 && ip -n \(n) addr add \(host.v6)/16 dev eth0 nodad
                    """)
            }
        }

        deinit {
            // SIGTERM is blocked in children of the test process (see GatewayLab.stop).
            for server in servers { GatewayLab.stop(server) }
            for host in LiveTrafficTests.hosts.map(\.name) + ["switch"] { GatewayLab.removeNamespace(ns(host)) }
            try? FileManager.default.removeItem(atPath: policy)
            try? FileManager.default.removeItem(atPath: state)
        }

        @discardableResult
        func apply(_ host: String) throws -> String {
            let result = try run("/usr/sbin/ip", ["netns", "exec", ns(host), Paths.enforcer, "apply", "--dir", policy,
                                                   "--system", host, "--state-dir", state + "/" + host, "--at", "2026-11-24T15:00:00Z"])
            try #require(result.status == 0, "apply \(host): \(result.stderr)")
            return result.stdout
        }

        /// An echo server on `port`, IPv4 and IPv6.
        func serve(_ host: String, port: Int) throws {
            for listen in ["TCP6-LISTEN:\(port),fork,reuseaddr,ipv6only=0"] {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
                process.arguments = ["netns", "exec", ns(host), "socat", listen, "EXEC:/bin/cat"]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                servers.append(process)
            }
            // Listening before the first client (a loaded machine starts socat late).
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                let listening = try run("/usr/sbin/ip", ["netns", "exec", ns(host), "ss", "-Hltn", "sport = :\(port)"])
                if listening.stdout.contains("LISTEN") { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
            Issue.record("socat on \(host) port \(port) did not listen within 5 s")
        }

        /// Whether a line sent to `address`:`port` from `host` comes back. The default 3 s to
        /// connect covers the kernel's first SYN retransmission (1 s): on a loaded machine one
        /// lost SYN must not read as a refusal.
        func echoes(from host: String, to address: String, port: Int, timeout: Double = 3) throws -> Bool {
            let result = try run("/usr/sbin/ip", ["netns", "exec", ns(host), "python3", "-c", Self.oneShot, address, String(port), String(timeout)])
            return result.status == 0
        }

        /// A client that keeps one connection busy (a line every 50 ms) until it fails.
        func longLived(from host: String, to address: String, port: Int) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", ns(host), "python3", "-c", Self.chatter, address, String(port)]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            servers.append(process)
            return process
        }

        static let oneShot = """
            import socket, sys
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
            s.sendall(b"hello\\n")
            sys.exit(0 if s.recv(16) == b"hello\\n" else 1)
            """
        static let chatter = """
            import socket, sys, time
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
            while True:
                s.sendall(b"ping\\n")
                if s.recv(16) != b"ping\\n": sys.exit(1)
                time.sleep(0.05)
            """
    }

    @discardableResult
    static func sh(_ command: String) throws -> CommandResult {
        let result = try run("/bin/sh", ["-c", command])
        try #require(result.status == 0, "\(command): \(result.stderr)")
        return result
    }

    @Test func receiverEnforcementWithRealConnections() throws {
        let lab = try Lab()
        for host in Self.hosts.map(\.name) { try lab.apply(host) }
        try lab.serve("db-1", port: 22)
        try lab.serve("db-1", port: 5432)
        try lab.serve("sre-1", port: 22)
        struct Row { var from: String; var port: Int; var to: String; var expected: Bool; var why: String }
        var rows: [Row] = []
        for (family, db, sre) in [("v4", "10.20.2.11", "10.10.1.31"), ("v6", "fd00:20:2::11", "fd00:10:1::31")] {
            rows += [
                Row(from: "sre-1", port: 5432, to: db, expected: true, why: "Database Servers for SRE (\(family))"),
                Row(from: "sre-1", port: 22, to: db, expected: true, why: "Database Servers for SRE (\(family))"),
                Row(from: "ws-1", port: 22, to: db, expected: true, why: "Server access for Workstations (\(family))"),
                Row(from: "ws-1", port: 5432, to: db, expected: false, why: "port ACL is per policy (\(family))"),
                Row(from: "contractor-1", port: 22, to: db, expected: false, why: "no policy: default deny (\(family))"),
                Row(from: "db-1", port: 22, to: sre, expected: false, why: "receiver cannot initiate (\(family))"),
            ]
        }
        var table = "from → to:port  expected  observed  because\n"
        for row in rows {
            let observed = try lab.echoes(from: row.from, to: row.to, port: row.port)
            table += "\(row.from) → \(row.to):\(row.port)  \(row.expected ? "connect" : "refused")  \(observed ? "connect" : "refused")  \(row.why)\n"
            #expect(observed == row.expected, "\(row.from) → \(row.to):\(row.port): \(row.why)")
        }
        print(table)
    }

    @Test func reloadsKeepUnaffectedConnectionsAndDeactivationCutsAtOnce() throws {
        let lab = try Lab()
        try lab.apply("db-1")
        try lab.serve("db-1", port: 22)
        try lab.serve("db-1", port: 5432)
        let sre = try lab.longLived(from: "sre-1", to: "fd00:20:2::11", port: 5432)
        let ws = try lab.longLived(from: "ws-1", to: "10.20.2.11", port: 22)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(sre.isRunning && ws.isRunning)

        // An unrelated change (a new system with a new tag) is a delta; both connections go on.
        try "[system] ws-9: {\n    address: 10.10.2.98\n    tags: workstations\n}\n"
            .write(toFile: lab.policy + "/rules.d/15-more-systems.policy", atomically: true, encoding: .utf8)
        let delta = try lab.apply("db-1")
        #expect(delta.contains("applied generation 2") && !delta.contains("table replaced"), "\(delta)")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(sre.isRunning, "the SRE connection did not survive an unrelated reload")
        #expect(ws.isRunning, "the workstation connection did not survive an unrelated reload")

        // The SRE policy is switched off: its connection is cut at once, the other stays.
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: lab.policy + "/rules.d").first { name in
            (try? String(contentsOfFile: lab.policy + "/rules.d/" + name, encoding: .utf8))?.contains("\"Database Servers for SRE\": {") ?? false
        })
        let path = lab.policy + "/rules.d/" + file
        let text = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "\"Database Servers for SRE\": {", with: "\"Database Servers for SRE\": {\n    enabled: no")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        // The example's own expectation says SRE reaches db-1 around the clock: apply refuses.
        let refused = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "apply", "--dir", lab.policy,
                                                "--system", "db-1", "--state-dir", lab.state + "/db-1"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("expectation 'sre-db-around-the-clock' failed"))
        #expect(sre.isRunning)
        try FileManager.default.removeItem(atPath: lab.policy + "/rules.d/90-expectations.policy")
        try lab.apply("db-1")
        let deadline = Date().addingTimeInterval(3)
        while sre.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!sre.isRunning, "the SRE connection survived its policy being disabled")
        #expect(ws.isRunning, "the workstation connection was cut although its policy is unchanged")
        #expect(try !lab.echoes(from: "sre-1", to: "10.20.2.11", port: 5432))
    }

    /// A policy that gains a port would add a jump element to the main table's class map,
    /// and the kernel would then validate every sender element of the table; instead the
    /// class moves whole to `enforcer_recent` with its new map (forced here with
    /// `recent_from = 0`). The senders get the new port, keep the old ones and their open
    /// connection, others do not get it, and `apply --replace` folds the class back in.
    /// Fails if the main table kept the class's senders or the recent table's class lost a port.
    @Test func aPolicyGainingAPortMovesItsClassToTheRecentTable() throws {
        let lab = try Lab()
        let conf = lab.policy + "/enforcer.conf"
        try (try String(contentsOfFile: conf, encoding: .utf8)).replacingOccurrences(of: "mark_mask = 0x00ffff00", with: "mark_mask = 0x00ffff00\nrecent_from = 0")
            .write(toFile: conf, atomically: true, encoding: .utf8)
        try lab.apply("db-1")
        for port in [22, 443, 5432] { try lab.serve("db-1", port: port) }
        let open = try lab.longLived(from: "sre-1", to: "10.20.2.11", port: 5432)
        #expect(try !lab.echoes(from: "sre-1", to: "10.20.2.11", port: 443))

        let databases = lab.policy + "/rules.d/30-databases.policy"
        try (try String(contentsOfFile: databases, encoding: .utf8)).replacingOccurrences(of: "allow: tcp/5432, tcp/22, icmp", with: "allow: tcp/5432, tcp/22, tcp/443, icmp")
            .write(toFile: databases, atomically: true, encoding: .utf8)
        let delta = try lab.apply("db-1")
        #expect(delta.contains("applied generation 2") && delta.contains("2 senders in table inet enforcer_recent"), "\(delta)")
        let main = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "nft", "list", "map", "inet", "enforcer", "in_hosts_v4"])
        #expect(main.status == 0 && !main.stdout.contains("10.10.1.31"), "\(main.stdout)\(main.stderr)")

        for address in ["10.20.2.11", "fd00:20:2::11"] {
            #expect(try lab.echoes(from: "sre-1", to: address, port: 443), "the new port is refused to \(address)")
            #expect(try lab.echoes(from: "sre-1", to: address, port: 22))
            #expect(try lab.echoes(from: "sre-1", to: address, port: 5432))
            #expect(try !lab.echoes(from: "contractor-1", to: address, port: 443), "a sender outside the policy got its new port")
        }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(open.isRunning, "the SRE connection opened before the change was cut")

        let replaced = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "apply", "--dir", lab.policy, "--system", "db-1",
                                                "--state-dir", lab.state + "/db-1", "--at", "2026-11-24T15:00:00Z", "--replace"])
        #expect(replaced.status == 0 && replaced.stdout.contains("table replaced"), "\(replaced.stdout)\(replaced.stderr)")
        #expect(try lab.echoes(from: "sre-1", to: "10.20.2.11", port: 443))
        #expect(try !lab.echoes(from: "contractor-1", to: "10.20.2.11", port: 443))
    }

    /// A delta of a large table puts the senders it adds into `enforcer_recent` (forced here
    /// with `recent_from = 0`): the moved sender connects from its new address and no longer
    /// from its old one, an unaffected connection goes on, and `apply --replace` folds the
    /// recent table back in. Fails if the recent table classified after the main table (its
    /// senders would be dropped) or if the main table kept the old address.
    @Test func aDeltaPutsAddedSendersInTheRecentTable() throws {
        let lab = try Lab()
        let conf = lab.policy + "/enforcer.conf"
        try (try String(contentsOfFile: conf, encoding: .utf8)).replacingOccurrences(of: "mark_mask = 0x00ffff00", with: "mark_mask = 0x00ffff00\nrecent_from = 0")
            .write(toFile: conf, atomically: true, encoding: .utf8)
        try lab.apply("db-1")
        try lab.serve("db-1", port: 22)
        try lab.serve("db-1", port: 5432)
        let ws = try lab.longLived(from: "ws-1", to: "10.20.2.11", port: 22)
        #expect(try lab.echoes(from: "sre-1", to: "10.20.2.11", port: 5432))

        // sre-1 moves from 10.10.1.31 to 10.10.1.32; its old address goes to contractor-1.
        let systems = lab.policy + "/rules.d/00-systems.policy"
        try (try String(contentsOfFile: systems, encoding: .utf8)).replacingOccurrences(of: "10.10.1.31, fd00:10:1::31", with: "10.10.1.32, fd00:10:1::32")
            .write(toFile: systems, atomically: true, encoding: .utf8)
        let sre = lab.ns("sre-1"), contractor = lab.ns("contractor-1")
        try Self.sh("ip -n \(sre) addr del 10.10.1.31/8 dev eth0 && ip -n \(sre) addr add 10.10.1.32/8 dev eth0")
        try Self.sh("ip -n \(sre) addr del fd00:10:1::31/16 dev eth0 && ip -n \(sre) addr add fd00:10:1::32/16 dev eth0 nodad")
        try Self.sh("ip -n \(contractor) addr add 10.10.1.31/8 dev eth0 && ip -n \(contractor) addr add fd00:10:1::31/16 dev eth0 nodad")
        let delta = try lab.apply("db-1")
        #expect(delta.contains("applied generation 2") && delta.contains("2 senders in table inet enforcer_recent"), "\(delta)")
        let recent = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "nft", "list", "map", "inet", "enforcer_recent", "in_hosts_v4"])
        #expect(recent.stdout.contains("10.10.1.32 : jump"), "\(recent.stdout)\(recent.stderr)")
        let main = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "nft", "list", "map", "inet", "enforcer", "in_hosts_v4"])
        #expect(!main.stdout.contains("10.10.1.31") && !main.stdout.contains("10.10.1.32"), "\(main.stdout)")

        func connects(from host: String, source: String, port: Int) throws -> Bool {
            let db = source.contains(":") ? "fd00:20:2::11" : "10.20.2.11"
            return try run("/usr/sbin/ip", ["netns", "exec", lab.ns(host), "nc", "-z", "-w", "3", "-s", source, db, String(port)]).status == 0
        }
        for (new, old) in [("10.10.1.32", "10.10.1.31"), ("fd00:10:1::32", "fd00:10:1::31")] {
            #expect(try connects(from: "sre-1", source: new, port: 5432), "the moved sender is refused from its new address \(new)")
            #expect(try connects(from: "sre-1", source: new, port: 22))
            #expect(try !connects(from: "contractor-1", source: old, port: 5432), "the old address \(old) still gets the policy")
            #expect(try !connects(from: "sre-1", source: new, port: 443), "port 443 is not granted to SRE")
        }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(ws.isRunning, "an unaffected connection did not survive the delta")
        let status = try run(Paths.enforcer, ["status", "--state-dir", lab.state + "/db-1"]).stdout
        #expect(status.contains("recent table: 2 senders added by deltas"), "\(status)")

        // Someone deletes the recent table: the next apply sees the drift and loads it all.
        try Self.sh("ip netns exec \(lab.ns("db-1")) nft delete table inet enforcer_recent")
        #expect(try !connects(from: "sre-1", source: "10.10.1.32", port: 5432))
        let repaired = try lab.apply("db-1")
        #expect(repaired.contains("table replaced"), "\(repaired)")
        #expect(try connects(from: "sre-1", source: "10.10.1.32", port: 5432))

        // The recent table again, then a full load folds it back in.
        try (try String(contentsOfFile: systems, encoding: .utf8)).replacingOccurrences(of: "10.10.1.32, fd00:10:1::32", with: "10.10.1.33, fd00:10:1::32")
            .write(toFile: systems, atomically: true, encoding: .utf8)
        try Self.sh("ip -n \(sre) addr add 10.10.1.33/8 dev eth0")
        #expect(try lab.apply("db-1").contains("1 sender in table inet enforcer_recent"))
        #expect(try connects(from: "sre-1", source: "10.10.1.33", port: 5432))
        #expect(try !connects(from: "sre-1", source: "10.10.1.32", port: 5432))
        let replaced = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "apply", "--dir", lab.policy, "--system", "db-1",
                                                "--state-dir", lab.state + "/db-1", "--at", "2026-11-24T15:00:00Z", "--replace"])
        #expect(replaced.status == 0 && replaced.stdout.contains("table replaced"), "\(replaced.stdout)\(replaced.stderr)")
        let tables = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "nft", "list", "tables"])
        #expect(!tables.stdout.contains("enforcer_recent"), "\(tables.stdout)")
        #expect(try connects(from: "sre-1", source: "10.10.1.33", port: 5432))
        #expect(try connects(from: "sre-1", source: "fd00:10:1::32", port: 5432))
        #expect(try !connects(from: "sre-1", source: "10.10.1.32", port: 5432))
        #expect(try !connects(from: "contractor-1", source: "10.10.1.31", port: 5432))
    }

    /// The gateway of examples/enforcegate: forwarded web flows go to the queue through the
    /// xt NFQUEUE target (this kernel has no nft queue). With no worker listening, queue_fail
    /// "open" lets them through (bypass) and "closed" holds them: both observed with curl.
    @Test func gatewayQueuesWebFlowsFailOpenAndClosed() throws {
        let lab = try GatewayLab()
        try lab.serveHTTP()
        func apply() throws {
            let result = try lab.apply()
            try #require(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("queue via xt NFQUEUE") || result.stdout.contains("queue via native"))
        }
        try apply()
        #expect(try lab.fetch("http://203.0.113.10/").succeeded, "fail-open: the flow should pass while no worker listens")
        #expect(try lab.fetch("http://[2001:db8:1::10]/").succeeded, "fail-open over IPv6")
        #expect(try !lab.fetch("http://203.0.113.10:22/").succeeded, "tcp/22 is not granted by 'Internet for Office'")
        let back = try run("/usr/sbin/ip", ["netns", "exec", lab.web, "nc", "-z", "-w", "3", "192.168.50.11", "22"])
        #expect(back.status != 0, "the Internet side must not initiate to the office")

        try lab.edit("enforcer.conf") { $0.replacingOccurrences(of: "queue_fail = \"open\"", with: "queue_fail = \"closed\"") }
        try apply()
        #expect(try lab.fetch("http://203.0.113.10/") == .failed(28), "fail-closed: without a worker the request must not get through")
    }
}
