import Compiler
import Foundation
import Testing

/// One policy for several hosts through a real etcd: hosts in network namespaces on one
/// switch (the enclave example's addresses), etcd in a namespace of its own on the same
/// switch, real agents (`enforcer run --store`) applying to real kernels, and real
/// connections between the hosts to show what each enforces.
@Suite(.serialized)
struct FleetLiveTests {
    typealias Lab = LiveTrafficTests.Lab

    /// etcd at 10.99.0.1 in the lab's `store` namespace, with a fresh data directory.
    final class Store {
        let lab: Lab
        let data: String
        var process: Process?
        static let url = "http://10.99.0.1:2379"
        var namespace: String { lab.ns("store") }

        init(_ lab: Lab) throws {
            self.lab = lab
            data = NSTemporaryDirectory() + "enforcer-fleet-etcd-\(lab.tag)"
            try LiveTrafficTests.sh("""
                ip netns add \(namespace) && ip -n \(namespace) link set lo up && \
                ip link add s-\(lab.tag) netns \(namespace) type veth peer name ps netns \(lab.ns("switch")) && \
                ip -n \(lab.ns("switch")) link set ps master br0 up && \
                ip -n \(namespace) link set s-\(lab.tag) name eth0 && ip -n \(namespace) link set eth0 up && \
                ip -n \(namespace) addr add 10.99.0.1/8 dev eth0
                """)
            try start()
        }

        func start() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, "/usr/bin/etcd", "--name", "lab", "--data-dir", data,
                                 "--listen-client-urls", "\(Self.url),http://127.0.0.1:2379", "--advertise-client-urls", Self.url,
                                 "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                                 "--initial-cluster", "lab=http://127.0.0.1:2380", "--heartbeat-interval", "20", "--election-timeout", "200"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.process = process
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline {
                let answer = try run("/usr/sbin/ip", ["netns", "exec", namespace, "curl", "-s", "-m", "1", "-X", "POST",
                                                      "http://127.0.0.1:2379/v3/maintenance/status", "-d", "{}"])
                if answer.stdout.contains("\"version\"") { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
            Issue.record("etcd did not answer within 15 s")
        }

        /// As a crash would: at once, keeping the data.
        func kill() {
            guard let process, process.isRunning else { return }
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        deinit {
            kill()
            GatewayLab.removeNamespace(namespace)
            try? FileManager.default.removeItem(atPath: data)
        }

        /// `enforcer fleet ARGS` run inside the store's namespace.
        func fleet(_ arguments: [String]) throws -> CommandResult {
            try run("/usr/sbin/ip", ["netns", "exec", namespace, Paths.enforcer, "fleet"] + arguments + ["--store", "http://127.0.0.1:2379", "--fleet", "lab"] + login,
                    environment: ["TZ": "UTC"])
        }

        /// After `fleet init`: every command logs in as root.
        var login: [String] = []
    }

    /// `enforcer run --store` on `host`, logging to a file.
    final class Agent {
        let process = Process()
        let log: String
        let state: String

        /// `named`: run with `--system host` (an enrolled host knows its name from its enrolment).
        init(_ lab: Lab, _ host: String, named: Bool = true, arguments: [String] = []) throws {
            state = lab.state + "/" + host
            log = lab.state + "-" + host + ".log"
            try FileManager.default.createDirectory(atPath: lab.state, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", lab.ns(host), Paths.enforcer, "run", "--store", Store.url, "--fleet", "lab",
                                 "--state-dir", state] + (named ? ["--system", host] : []) + arguments
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        var text: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        /// Seconds until the log holds `line` (polled every 2 ms), nil after `timeout`.
        func wait(for line: String, timeout: Double = 10) -> Double? {
            let start = Date()
            while Date().timeIntervalSince(start) < timeout {
                if text.contains(line) { return Date().timeIntervalSince(start) }
                Thread.sleep(forTimeInterval: 0.002)
            }
            return nil
        }

        /// Seconds from now until each agent's log holds its line (all polled together), nil
        /// for those that did not within `timeout`.
        static func wait(for lines: [(Agent, String)], timeout: Double = 10) -> [Double?] {
            let start = Date()
            var seen = [Double?](repeating: nil, count: lines.count)
            while Date().timeIntervalSince(start) < timeout, seen.contains(where: { $0 == nil }) {
                for (index, (agent, line)) in lines.enumerated() where seen[index] == nil && agent.text.contains(line) {
                    seen[index] = Date().timeIntervalSince(start)
                }
                Thread.sleep(forTimeInterval: 0.002)
            }
            return seen
        }

        deinit {
            GatewayLab.stop(process)
            try? FileManager.default.removeItem(atPath: log)
        }
    }

    /// Replaces `old` by `new` in the lab's copy of `rules.d/20-servers.policy`.
    static func edit(_ lab: Lab, _ old: String, _ new: String) throws {
        let path = lab.policy + "/rules.d/20-servers.policy"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try #require(text.contains(old))
        try text.replacingOccurrences(of: old, with: new).write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test("a push is applied by every agent within 250 ms; etcd down: each keeps enforcing; etcd back: in sync again")
    func pushesReachEveryAgent() throws {
        let lab = try Lab()
        let store = try Store(lab)
        let first = try store.fleet(["push", "--dir", lab.policy, "--message", "first"])
        #expect(first.status == 0 && first.stdout.contains("pushed revision "), "\(first.stdout)\(first.stderr)")
        try lab.serve("db-1", port: 22)
        try lab.serve("db-1", port: 5432)
        // db-1 receives from the workstations; sre-1 does not, so the change below leaves its
        // part of the policy as it was: its agent sends nothing to its kernel.
        let agents = try ["db-1", "sre-1"].map { try Agent(lab, $0) }
        for agent in agents { #expect(agent.wait(for: "applied generation 1") != nil, "\(agent.text)") }
        #expect(try lab.echoes(from: "ws-1", to: "10.20.2.11", port: 22))
        #expect(try !lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432, timeout: 1))

        // Workstations may now reach the servers' 5432: both agents apply it.
        try Self.edit(lab, "allow: tcp/22, tcp/443", "allow: tcp/22, tcp/443, tcp/5432")
        let second = try store.fleet(["push", "--dir", lab.policy, "--message", "5432 for workstations"])
        #expect(second.status == 0, "\(second.stderr)")
        let latencies = Agent.wait(for: [(agents[0], "applied generation 2"), (agents[1], "5432 for workstations (new chunks: 1 made from patches, 0 fetched)): unchanged: generation 1 is live")])
        print("push → applied: " + zip(["db-1", "sre-1 (its part unchanged)"], latencies).map { "\($0) \($1.map { String(format: "%.0f ms", $0 * 1000) } ?? "never")" }.joined(separator: ", "))
        for (agent, latency) in zip(agents, latencies) { #expect(latency != nil && latency! < 0.25, "\(agent.text)") }
        let line = agents[0].text.split(separator: "\n").first { $0.contains("applied generation 2") } ?? ""
        #expect(line.contains("elements added") && !line.contains("table replaced"), "the change is a delta: \(line)")
        // The edited chunk came in the manifest's patch: the agent fetched nothing.
        #expect(line.contains("5432 for workstations (new chunks: 1 made from patches, 0 fetched)"), "\(line)")
        #expect(try lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432))
        let status = try store.fleet(["status"]).stdout
        #expect(status.components(separatedBy: ", in sync").count == 3, "\(status)")
        let history = try store.fleet(["history"]).stdout
        #expect(history.contains("\"5432 for workstations\"") && history.contains("\"first\""), "\(history)")

        // etcd goes down: a push fails, the agents keep enforcing what they have.
        store.kill()
        try Self.edit(lab, "allow: tcp/22, tcp/443, tcp/5432", "allow: tcp/22, tcp/443")
        let refused = try store.fleet(["push", "--dir", lab.policy])
        #expect(refused.status == 1 && refused.stderr.contains("cannot read the bundle of fleet lab"), "\(refused.stderr)")
        #expect(try lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432))
        var hostStatus = ""
        #expect(try ConfirmPromiseTests.eventually(5) {
            hostStatus = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "status", "--state-dir", agents[0].state]).stdout
            return hostStatus.contains("store: \(Store.url) (fleet lab): policy of revision") && hostStatus.contains("unreachable")
        }, "\(hostStatus)")

        // etcd is back: the next push reaches both again.
        try store.start()
        let third = try store.fleet(["push", "--dir", lab.policy, "--message", "5432 closed again"])
        #expect(third.status == 0, "\(third.stderr)")
        #expect(agents[0].wait(for: "applied generation 3", timeout: 20) != nil, "\(agents[0].text)")
        #expect(agents[1].wait(for: "5432 closed again (new chunks: 1 made from patches, 0 fetched)): unchanged", timeout: 20) != nil, "\(agents[1].text)")
        #expect(try !lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432, timeout: 1))
    }

    @Test("pushes: unchanged, a conflict told to check again, a policy with errors refused, diff, rollback, a 3 MB file in chunks")
    func pushesAreCheckedAndGuarded() throws {
        let lab = try Lab()
        let store = try Store(lab)
        let first = try store.fleet(["push", "--dir", lab.policy])
        #expect(first.status == 0, "\(first.stderr)")
        let revision = try #require(first.stdout.split(separator: " ").dropFirst(2).first.flatMap { Int($0) })
        #expect(try store.fleet(["push", "--dir", lab.policy]).stdout.hasPrefix("unchanged: revision \(revision) of fleet lab holds this policy"))

        // Two administrators checked against the same revision: the second is refused.
        try Self.edit(lab, "allow: tcp/22, tcp/443", "allow: tcp/22, tcp/443, tcp/8443")
        #expect(try store.fleet(["diff", "--dir", lab.policy]).stdout.contains("changed  rules.d/20-servers.policy: line 5: 1 line out, 1 line in"))
        #expect(try store.fleet(["push", "--dir", lab.policy, "--if-revision", String(revision)]).status == 0)
        try Self.edit(lab, "tcp/8443", "tcp/9443")
        let late = try store.fleet(["push", "--dir", lab.policy, "--if-revision", String(revision)])
        #expect(late.status == 1 && late.stderr.contains("another push landed since this one was checked (revision ")
                && late.stderr.contains("check the policy against it and push again"), "\(late.stderr)")

        // A policy that does not check is not pushed.
        try "[system] broken: {\n    address: 10.999.0.1\n}\n".write(toFile: lab.policy + "/rules.d/90-broken.policy", atomically: true, encoding: .utf8)
        let broken = try store.fleet(["push", "--dir", lab.policy])
        #expect(broken.status == 1 && broken.stderr.contains("90-broken.policy:2:"), "\(broken.stderr)")
        try FileManager.default.removeItem(atPath: lab.policy + "/rules.d/90-broken.policy")

        // A file larger than etcd takes in one request goes in chunks and comes back whole.
        var systems = ""
        for index in 0..<40_000 { systems += "[system] bulk-\(index): {\n    address: 11.\(index / 65536).\(index / 256 % 256).\(index % 256)\n    tags: bulk\n}\n" }
        try systems.write(toFile: lab.policy + "/rules.d/50-bulk.policy", atomically: true, encoding: .utf8)
        let bulk = try store.fleet(["push", "--dir", lab.policy, "--message", "bulk"])
        #expect(bulk.status == 0, "\(bulk.stderr)")
        #expect(try store.fleet(["diff", "--dir", lab.policy]).stdout.hasPrefix("no difference"))

        // Rollback to the first revision: a new push of its bundle.
        let rollback = try store.fleet(["rollback", String(revision)])
        #expect(rollback.status == 0 && rollback.stdout.contains("the policy of revision \(revision)"), "\(rollback.stdout)\(rollback.stderr)")
        let diff = try store.fleet(["diff", "--dir", lab.policy]).stdout
        #expect(diff.contains("added    rules.d/50-bulk.policy") && diff.contains("changed  rules.d/20-servers.policy"), "\(diff)")
        let history = try store.fleet(["history"]).stdout.split(separator: "\n")
        #expect(history.count == 4 && history[0].contains("\"rollback to revision \(revision)\"") && history[1].contains("\"bulk\""), "\(history)")
    }

    /// `enforcer ARGS --store … --fleet lab` run inside the store's namespace (overrides:
    /// `trust`, `policy enable|disable`).
    static func overriding(_ arguments: [String], _ store: Store) throws -> CommandResult {
        try run("/usr/sbin/ip", ["netns", "exec", store.namespace, Paths.enforcer] + arguments + ["--store", "http://127.0.0.1:2379", "--fleet", "lab"],
                environment: ["TZ": "UTC"])
    }

    @Test("trust grant/revoke and policy disable through the store: every receiver applies them within 250 ms; a revoke cuts that sender's connections only")
    func runtimeChangesReachEveryReceiver() throws {
        let lab = try Lab()
        defer { GatewayLab.removeNamespace(lab.ns("srv-1")) }
        try Self.addHost(lab, "srv-1", v4: "10.20.1.11", v6: "fd00:20:1::11")
        try "[policy] \"Admin for SRE and contractors\": {\n    senders: sre, contractors\n    receivers: database-servers, servers\n    allow: tcp/2222\n    trust: mfa\n}\n"
            .write(toFile: lab.policy + "/rules.d/40-admin.policy", atomically: true, encoding: .utf8)
        let store = try Store(lab)
        let pushed = try store.fleet(["push", "--dir", lab.policy])
        try #require(pushed.status == 0, "\(pushed.stdout)\(pushed.stderr)")
        // Granted before any agent starts: each plans with it from its first generation.
        for sender in ["sre-1", "contractor-1"] {
            let granted = try Self.overriding(["trust", "grant", sender, "mfa"], store)
            #expect(granted.status == 0 && granted.stdout.contains("\(sender) mfa: granted (required by 'Admin for SRE and contractors') in fleet lab"),
                    "\(granted.stdout)\(granted.stderr)")
        }
        let unknown = try Self.overriding(["trust", "grant", "nosuch-1", "mfa"], store)
        #expect(unknown.status == 1 && unknown.stderr.contains("no system named 'nosuch-1' in fleet lab"), "\(unknown.stderr)")
        for host in ["db-1", "srv-1"] { try lab.serve(host, port: 2222) }
        let agents = try ["db-1", "srv-1"].map { try Agent(lab, $0) }
        for agent in agents { #expect(agent.wait(for: "applied generation 1") != nil, "\(agent.text)") }
        var connections: [String: Process] = [:]
        for sender in ["sre-1", "contractor-1"] {
            for (receiver, address) in [("db-1", "10.20.2.11"), ("srv-1", "fd00:20:1::11")] {
                connections["\(sender)→\(receiver)"] = try lab.longLived(from: sender, to: address, port: 2222)
            }
        }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(connections.values.allSatisfy { $0.isRunning }, "every trusted sender connects to both receivers")

        // The revoke: both receivers apply it within 250 ms, and contractor-1's connections end.
        let revoked = try Self.overriding(["trust", "revoke", "contractor-1", "mfa"], store)
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let latencies = Agent.wait(for: agents.map { ($0, "runtime overrides changed): applied generation 2") })
        print("trust revoke through the store → applied: " + zip(["db-1", "srv-1"], latencies).map { "\($0) \($1.map { String(format: "%.0f ms", $0 * 1000) } ?? "never")" }.joined(separator: ", "))
        for (agent, latency) in zip(agents, latencies) { #expect(latency != nil && latency! < 0.25, "\(agent.text)") }
        let deadline = Date().addingTimeInterval(4)
        while Date() < deadline && (connections["contractor-1→db-1"]!.isRunning || connections["contractor-1→srv-1"]!.isRunning) {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(!connections["contractor-1→db-1"]!.isRunning && !connections["contractor-1→srv-1"]!.isRunning, "the revoked sender's connections are cut")
        #expect(connections["sre-1→db-1"]!.isRunning && connections["sre-1→srv-1"]!.isRunning, "the other sender's stay up")
        #expect(try !lab.echoes(from: "contractor-1", to: "10.20.2.11", port: 2222, timeout: 1))
        let listed = try Self.overriding(["trust", "list"], store).stdout
        #expect(listed.contains("contractor-1 mfa: revoked") && listed.contains("sre-1 mfa: granted"), "\(listed)")
        let hostList = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "trust", "list", "--dir", lab.policy, "--state-dir", agents[0].state]).stdout
        #expect(hostList.contains("contractor-1 mfa: revoked"), "the agent keeps the fleet's records in its state directory: \(hostList)")

        // A policy switched off for the fleet: sre-1's connections end too.
        let disabled = try Self.overriding(["policy", "disable", "Admin for SRE and contractors"], store)
        #expect(disabled.status == 0 && disabled.stdout.contains("'Admin for SRE and contractors' disabled in fleet lab"), "\(disabled.stdout)\(disabled.stderr)")
        for agent in agents { #expect(agent.wait(for: "runtime overrides changed): applied generation 3", timeout: 5) != nil, "\(agent.text)") }
        #expect(try !lab.echoes(from: "sre-1", to: "10.20.2.11", port: 2222, timeout: 1))
        let none = try Self.overriding(["policy", "disable", "No such policy"], store)
        #expect(none.status == 1 && none.stderr.contains("no policy named 'No such policy'"), "\(none.stderr)")
    }

    /// A host namespace of its own on the lab's switch, not in the pushed policy.
    /// `link`: tells the veth pairs of several added hosts apart.
    static func addHost(_ lab: Lab, _ host: String, v4: String, v6: String, link: String = "") throws {
        let n = lab.ns(host)
        try LiveTrafficTests.sh("""
            ip netns add \(n) && ip -n \(n) link set lo up && \
            ip link add e\(link)-\(lab.tag) netns \(n) type veth peer name pe\(link) netns \(lab.ns("switch")) && \
            ip -n \(lab.ns("switch")) link set pe\(link) master br0 up && \
            ip -n \(n) link set e\(link)-\(lab.tag) name eth0 && ip -n \(n) link set eth0 up && \
            ip -n \(n) addr add \(v4)/8 dev eth0 && ip -n \(n) addr add \(v6)/16 dev eth0 nodad
            """)
    }

    /// Puts `key` with etcd's HTTP gateway as `user`: etcd's answer.
    static func put(as user: String, password: String, key: String, in store: Store) throws -> String {
        let script = """
            import base64, json, sys, urllib.request
            def call(path, body, token=None):
                request = urllib.request.Request("http://127.0.0.1:2379" + path, data=json.dumps(body).encode(), headers={"Authorization": token} if token else {})
                try:
                    return json.loads(urllib.request.urlopen(request).read())
                except urllib.error.HTTPError as error:
                    return json.loads(error.read())
            token = call("/v3/auth/authenticate", {"name": sys.argv[1], "password": sys.argv[2]})["token"]
            answer = call("/v3/kv/put", {"key": base64.b64encode(sys.argv[3].encode()).decode(), "value": base64.b64encode(b"mine").decode()}, token)
            print(answer.get("error") or answer.get("message") or "ok")
            """
        return try run("/usr/sbin/ip", ["netns", "exec", store.namespace, "python3", "-c", script, user, password, key]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("enrolment: a key enrols a new host, receivers open to it, etcd refuses what its credentials may not write, fleet tag, lease expiry removes it")
    func enrolment() throws {
        let lab = try Lab()
        let store = try Store(lab)
        defer { GatewayLab.removeNamespace(lab.ns("app-1")) }
        let rootPassword = lab.state + "-root-password"
        try "root secret\n".write(toFile: rootPassword, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: rootPassword) }
        let initialized = try store.fleet(["init", "--root-password-file", rootPassword])
        #expect(initialized.status == 0 && initialized.stdout.contains("authentication enabled"), "\(initialized.stdout)\(initialized.stderr)")
        // Authentication is on: without a login nothing is pushed.
        #expect(try store.fleet(["push", "--dir", lab.policy]).status == 1)
        store.login = ["--store-user", "root", "--store-password-file", rootPassword]
        #expect(try store.fleet(["push", "--dir", lab.policy]).status == 0)
        try lab.serve("db-1", port: 22)
        // db-1, a host of the pushed policy, logs in as a user of its own.
        let added = try store.fleet(["host", "add", "db-1", "--password-file", rootPassword])
        #expect(added.status == 0 && added.stdout.contains("user enforcer.lab.system.db-1"), "\(added.stdout)\(added.stderr)")
        let db = try Agent(lab, "db-1", arguments: ["--store-user", "enforcer.lab.system.db-1", "--store-password-file", rootPassword, "--lease-grace", "1s"])
        #expect(db.wait(for: "applied generation 1") != nil, "\(db.text)")

        let created = try store.fleet(["key", "create", "--tags", "servers", "--uses", "1", "--expires", "1h"])
        #expect(created.status == 0, "\(created.stderr)")
        let key = String(created.stdout.split(separator: "\n").first ?? "")
        #expect(try store.fleet(["key", "list"]).stdout.contains("tags servers  1 of 1 unused"))

        try Self.addHost(lab, "app-1", v4: "10.20.3.11", v6: "fd00:20:3::11")
        try lab.serve("app-1", port: 22)
        try lab.serve("app-1", port: 443)
        let appState = lab.state + "/app-1"
        #expect(try !lab.echoes(from: "app-1", to: "10.20.2.11", port: 22, timeout: 1))
        let enrolled = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("app-1"), Paths.enforcer, "enrol", "--store", Store.url, "--fleet", "lab",
                                                 "--key", key, "--name", "app-1", "--state-dir", appState])
        let enrolledAt = Date()
        #expect(enrolled.status == 0 && enrolled.stdout.contains("enrolled in fleet lab as app-1"), "\(enrolled.stdout)\(enrolled.stderr)")
        // db-1 opens to the new server (servers reach servers) within the latency goal.
        let opened = db.wait(for: "enrolled systems: app-1 added")
        let line = db.text.split(separator: "\n").first { $0.contains("app-1 added") } ?? ""
        #expect(opened != nil && line.contains("applied generation 2"), "\(db.text)")
        print("enrol → applied on db-1: \(String(format: "%.0f ms", Date().timeIntervalSince(enrolledAt) * 1000 - 0)) (upper bound, polled)")
        #expect(try lab.echoes(from: "app-1", to: "10.20.2.11", port: 22))

        // The new host enforces its own part: workstations reach it on 22, contractors not on 443.
        let app = try Agent(lab, "app-1", named: false, arguments: ["--lease-ttl", "5"])
        #expect(app.wait(for: "applied generation 1") != nil, "\(app.text)")
        #expect(try lab.echoes(from: "ws-1", to: "10.20.3.11", port: 22))
        #expect(try !lab.echoes(from: "contractor-1", to: "10.20.3.11", port: 443, timeout: 1))

        // A key of one use enrols nothing more.
        let again = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("app-1"), Paths.enforcer, "enrol", "--store", Store.url, "--fleet", "lab",
                                               "--key", key, "--name", "app-2", "--state-dir", appState + "-2"])
        #expect(again.status == 1 && again.stderr.contains("has no use left"), "\(again.stderr)")
        defer { try? FileManager.default.removeItem(atPath: appState + "-2") }

        // The host cannot grant itself anything: etcd refuses its writes to another host's
        // presence, its own tags, the policy and an override; its own presence it may write.
        let credentials = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: appState + "/fleet/lab/credentials"))) as! [String: Any]
        let user = credentials["user"] as! String, password = credentials["password"] as! String, slot = credentials["slot"] as! String
        for refused in ["/enforcer/lab/presence/db-1", "/enforcer/lab/desired/enrolled/\(slot)", "/enforcer/lab/desired/bundle",
                        "/enforcer/lab/desired/overrides/trust", "/enforcer/lab/keys/mine"] {
            #expect(try Self.put(as: user, password: password, key: refused, in: store).contains("permission denied"), "\(refused)")
        }
        // db-1's own user likewise: not app-1's records, not the policy.
        for refused in ["/enforcer/lab/presence/\(slot)", "/enforcer/lab/desired/members/\(slot)", "/enforcer/lab/desired/bundle"] {
            #expect(try Self.put(as: "enforcer.lab.system.db-1", password: "root secret", key: refused, in: store).contains("permission denied"), "\(refused)")
        }
        #expect(try Self.put(as: user, password: password, key: "/enforcer/lab/presence/\(slot)", in: store) == "ok")

        // An administrator tags it: contractors now reach it as one of the Kubernetes pods.
        let tagged = try store.fleet(["tag", "app-1", "+kubernetes-pods"])
        #expect(tagged.status == 0 && tagged.stdout.contains("app-1: tags servers, kubernetes-pods"), "\(tagged.stdout)\(tagged.stderr)")
        #expect(app.wait(for: "app-1 changed") != nil, "\(app.text)")
        #expect(try lab.echoes(from: "contractor-1", to: "10.20.3.11", port: 443))

        // The host goes away without a word: after its lease (5 s) and db-1's grace (1 s),
        // db-1 removes it.
        Glibc.kill(app.process.processIdentifier, SIGKILL)
        #expect(db.wait(for: "app-1 removed", timeout: 20) != nil, "\(db.text)")
        #expect(try !lab.echoes(from: "app-1", to: "10.20.2.11", port: 22, timeout: 1))

        // What the departed host left, its grant and its etcd login, an administrator clears
        // with --departed; db-1's own login is no departed host's and stays.
        #expect(try Self.login(as: user, password: password, in: store) == "ok")
        let cleared = try store.fleet(["remove", "--departed"])
        #expect(cleared.status == 0 && cleared.stdout.contains("removed \(slot): ") && cleared.stdout.contains("etcd user \(user) deleted"),
                "\(cleared.stdout)\(cleared.stderr)")
        #expect(try Self.login(as: user, password: password, in: store).contains("authentication failed"))
        #expect(try Self.login(as: "enforcer.lab.system.db-1", password: "root secret", in: store) == "ok")
        let nothingLeft = try store.fleet(["remove", "--departed"])
        #expect(nothingLeft.status == 0 && nothingLeft.stdout.contains("no departed enrolled system in fleet lab"), "\(nothingLeft.stdout)\(nothingLeft.stderr)")
    }

    /// Logs in with etcd's HTTP gateway as `user`: "ok", or etcd's error.
    static func login(as user: String, password: String, in store: Store) throws -> String {
        let script = """
            import json, sys, urllib.request
            request = urllib.request.Request("http://127.0.0.1:2379/v3/auth/authenticate", data=json.dumps({"name": sys.argv[1], "password": sys.argv[2]}).encode())
            try:
                answer = json.loads(urllib.request.urlopen(request).read())
            except urllib.error.HTTPError as error:
                answer = json.loads(error.read())
            print("ok" if answer.get("token") else answer.get("error") or answer.get("message"))
            """
        return try run("/usr/sbin/ip", ["netns", "exec", store.namespace, "python3", "-c", script, user, password]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The JSON values of the keys under `prefix`, as root reads them with etcd's HTTP gateway.
    static func valuesAsRoot(under prefix: String, rootPassword: String, in store: Store) throws -> [[String: Any]] {
        let script = """
            import base64, json, sys, urllib.request
            def call(path, body, token=None):
                request = urllib.request.Request("http://127.0.0.1:2379" + path, data=json.dumps(body).encode(), headers={"Authorization": token} if token else {})
                return json.loads(urllib.request.urlopen(request).read())
            token = call("/v3/auth/authenticate", {"name": "root", "password": sys.argv[1]})["token"]
            prefix = sys.argv[2].encode()
            end = prefix[:-1] + bytes([prefix[-1] + 1])
            answer = call("/v3/kv/range", {"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode()}, token)
            for kv in answer.get("kvs", []):
                print(kv["value"])
            """
        let lines = try run("/usr/sbin/ip", ["netns", "exec", store.namespace, "python3", "-c", script, rootPassword, prefix]).stdout.split(separator: "\n")
        return try lines.compactMap { Data(base64Encoded: String($0)) }.map { try JSONSerialization.jsonObject(with: $0) as! [String: Any] }
    }

    /// The unused slots of key `id` as root reads them: slot name → (user, password).
    static func slots(of id: String, rootPassword: String, in store: Store) throws -> [String: (user: String, password: String)] {
        let values = try valuesAsRoot(under: "/enforcer/lab/slots/\(id)/", rootPassword: rootPassword, in: store)
        return Dictionary(uniqueKeysWithValues: values.map { ($0["slot"] as! String, (user: $0["user"] as! String, password: $0["password"] as! String)) })
    }

    /// The `expires` of each grant (`desired/enrolled/<slot>`) of key `id`, as root reads them.
    static func grants(of id: String, rootPassword: String, in store: Store) throws -> [String?] {
        try valuesAsRoot(under: "/enforcer/lab/desired/enrolled/\(id)-", rootPassword: rootPassword, in: store).map { $0["expires"] as? String }
    }

    /// An enrolled host's credentials file: its etcd user, password and slot.
    static func credentials(_ state: String) throws -> (user: String, password: String, slot: String) {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state + "/fleet/lab/credentials"))) as! [String: Any]
        return (object["user"] as! String, object["password"] as! String, object["slot"] as! String)
    }

    @Test("key revoke and fleet remove delete etcd logins: the key's, its unused enrolment's, a removed host's; receivers drop that host, the others keep theirs; fleet expire drops one at its time")
    func revokeAndRemoveDeleteLogins() throws {
        let lab = try Lab()
        let store = try Store(lab)
        defer { for host in ["app-1", "app-2"] { GatewayLab.removeNamespace(lab.ns(host)) } }
        let rootPasswordFile = lab.state + "-root-password"
        try "root secret\n".write(toFile: rootPasswordFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: rootPasswordFile) }
        try #require(try store.fleet(["init", "--root-password-file", rootPasswordFile]).status == 0)
        store.login = ["--store-user", "root", "--store-password-file", rootPasswordFile]
        try #require(try store.fleet(["push", "--dir", lab.policy]).status == 0)
        try lab.serve("db-1", port: 22)
        try #require(try store.fleet(["host", "add", "db-1", "--password-file", rootPasswordFile]).status == 0)
        let db = try Agent(lab, "db-1", arguments: ["--store-user", "enforcer.lab.system.db-1", "--store-password-file", rootPasswordFile])
        #expect(db.wait(for: "applied generation 1") != nil, "\(db.text)")

        let created = try store.fleet(["key", "create", "--tags", "servers", "--uses", "3"])
        try #require(created.status == 0, "\(created.stderr)")
        let key = String(created.stdout.split(separator: "\n").first ?? "")
        let (id, secret) = (String(key.split(separator: ".")[0]), String(key.split(separator: ".")[1]))
        var agents: [String: Agent] = [:]
        for (host, v4, v6) in [("app-1", "10.20.3.11", "fd00:20:3::11"), ("app-2", "10.20.3.12", "fd00:20:3::12")] {
            try Self.addHost(lab, host, v4: v4, v6: v6, link: String(host.suffix(1)))
            let enrolled = try run("/usr/sbin/ip", ["netns", "exec", lab.ns(host), Paths.enforcer, "enrol", "--store", Store.url, "--fleet", "lab",
                                                     "--key", key, "--name", host, "--state-dir", lab.state + "/" + host])
            try #require(enrolled.status == 0, "\(enrolled.stdout)\(enrolled.stderr)")
            agents[host] = try Agent(lab, host, named: false, arguments: ["--lease-ttl", "3"])
            #expect(db.wait(for: "\(host) added") != nil, "\(db.text)")
        }
        let (app1, app2) = (try Self.credentials(lab.state + "/app-1"), try Self.credentials(lab.state + "/app-2"))
        let unused = try Self.slots(of: id, rootPassword: "root secret", in: store)
        try #require(unused.count == 1, "\(unused)")
        let (unusedSlot, unusedLogin) = unused.first!
        // Before: every one of these logs in.
        for (user, password) in [(app1.user, app1.password), (app2.user, app2.password), (unusedLogin.user, unusedLogin.password), ("enforcer.lab.key.\(id)", secret)] {
            #expect(try Self.login(as: user, password: password, in: store) == "ok", "\(user)")
        }

        // Revoke: the key's login and its unused enrolment's are gone; the enrolled hosts keep theirs.
        let revoked = try store.fleet(["key", "revoke", id])
        #expect(revoked.status == 0 && revoked.stdout.contains("1 unused enrolment removed (\(unusedSlot))")
                && revoked.stdout.contains("enforcer.lab.host.\(unusedSlot)") && revoked.stdout.contains("enforcer.lab.key.\(id)"), "\(revoked.stdout)\(revoked.stderr)")
        for (user, password) in [(unusedLogin.user, unusedLogin.password), ("enforcer.lab.key.\(id)", secret)] {
            #expect(try Self.login(as: user, password: password, in: store).contains("authentication failed"), "\(user)")
        }
        for login in [app1, app2] {
            #expect(try Self.login(as: login.user, password: login.password, in: store) == "ok")
            #expect(try Self.put(as: login.user, password: login.password, key: "/enforcer/lab/presence/\(login.slot)", in: store) == "ok")
        }

        // Remove app-1 while its agent runs: db-1 drops it at once, its login fails, app-2 is untouched.
        #expect(try lab.echoes(from: "app-1", to: "10.20.2.11", port: 22))
        let removed = try store.fleet(["remove", "app-1"])
        #expect(removed.status == 0 && removed.stdout.contains("removed app-1 (slot \(app1.slot))")
                && removed.stdout.contains("etcd user \(app1.user) deleted"), "\(removed.stdout)\(removed.stderr)")
        #expect(db.wait(for: "app-1 removed") != nil, "\(db.text)")
        #expect(try !lab.echoes(from: "app-1", to: "10.20.2.11", port: 22, timeout: 1))
        #expect(try lab.echoes(from: "app-2", to: "10.20.2.11", port: 22))
        #expect(try Self.login(as: app1.user, password: app1.password, in: store).contains("authentication failed"))
        #expect(try Self.login(as: app2.user, password: app2.password, in: store) == "ok")
        #expect(try Self.put(as: app2.user, password: app2.password, key: "/enforcer/lab/presence/\(app2.slot)", in: store) == "ok")
        // (app-2's presence holds what the test wrote above, so `fleet status` skips it.)
        let status = try store.fleet(["status"]).stdout
        #expect(!status.contains("(system app-1)") && status.contains("(system db-1)"), "\(status)")
        // The removed host's agent, renewing every second, cannot bring its records back.
        Thread.sleep(forTimeInterval: 3)
        #expect(db.text.components(separatedBy: "app-1 added").count == 2, "app-1 was added once only: \(db.text)")
        #expect(try !store.fleet(["status"]).stdout.contains("(system app-1)"))
        #expect(agents["app-2"]!.process.isRunning)

        // app-2 expires in 3 s: db-1 drops it then, by its own clock.
        let expiring = try store.fleet(["expire", "app-2", "--after", "3s"])
        #expect(expiring.status == 0 && expiring.stdout.contains("app-2 (slot \(app2.slot)): expires "), "\(expiring.stdout)\(expiring.stderr)")
        #expect(try lab.echoes(from: "app-2", to: "10.20.2.11", port: 22))
        let expiredAt = Date()
        let dropped = db.wait(for: "flip (time): system 'app-2' expired", timeout: 10)
        #expect(dropped != nil && Date().timeIntervalSince(expiredAt) > 1.5, "dropped at the expiry, not before: \(db.text)")
        print("fleet expire --after 3s → app-2 dropped by db-1 after \(String(format: "%.2f s", Date().timeIntervalSince(expiredAt)))")
        #expect(try !lab.echoes(from: "app-2", to: "10.20.2.11", port: 22, timeout: 1))
        // A key whose systems expire: each of its enrolments carries that time in the grant
        // written now (what `fleet expire` rewrites, and what db-1 dropped app-2 by above).
        let expiringKey = try store.fleet(["key", "create", "--tags", "servers", "--uses", "2", "--system-expires", "720h"])
        #expect(expiringKey.status == 0 && expiringKey.stdout.contains("the systems it enrols expire at "), "\(expiringKey.stdout)\(expiringKey.stderr)")
        let expiringID = String(expiringKey.stdout.split(separator: ".")[0])
        let grants = try Self.grants(of: expiringID, rootPassword: "root secret", in: store)
        let month = Date().addingTimeInterval(720 * 3600)
        #expect(grants.count == 2 && grants.allSatisfy { abs(($0.flatMap(ISO8601.date) ?? .distantPast).timeIntervalSince(month)) < 60 }, "\(grants)")
        let listed = try store.fleet(["key", "list"]).stdout
        #expect(listed.split(separator: "\n").contains { $0.hasPrefix(expiringID) && $0.contains("  systems expire ") }, "\(listed)")

        // A name that is nothing: a clear error; a system of the pushed policy loses its login.
        let unknown = try store.fleet(["remove", "nosuch-1"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no enrolled system nosuch-1 is present in fleet lab"), "\(unknown.stderr)")
        let pushed = try store.fleet(["remove", "db-1"])
        #expect(pushed.status == 0 && pushed.stdout.contains("a system of the pushed policy"), "\(pushed.stdout)\(pushed.stderr)")
        #expect(try Self.login(as: "enforcer.lab.system.db-1", password: "root secret", in: store).contains("authentication failed"))
    }

    @Test("fleet tag on a system of the pushed policy: a checked, guarded push of that one line; receivers follow; history shows it")
    func tagAPushedSystem() throws {
        let lab = try Lab()
        let store = try Store(lab)
        let first = try store.fleet(["push", "--dir", lab.policy, "--message", "first"])
        try #require(first.status == 0, "\(first.stderr)")
        let firstRevision = try #require(first.stdout.split(separator: " ").dropFirst(2).first.flatMap { Int($0) })
        try lab.serve("db-1", port: 5432)
        try lab.serve("db-1", port: 22)
        let db = try Agent(lab, "db-1")
        #expect(db.wait(for: "applied generation 1") != nil, "\(db.text)")
        #expect(try !lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432, timeout: 1))

        // ws-1 joins sre: db-1 opens 5432 to it.
        let tagged = try store.fleet(["tag", "ws-1", "+sre"])
        #expect(tagged.status == 0 && tagged.stdout.contains("ws-1: tags workstations, sre (were workstations; rules.d/00-systems.policy)")
                && tagged.stdout.contains("pushed revision "), "\(tagged.stdout)\(tagged.stderr)")
        #expect(db.wait(for: "applied generation 2") != nil, "\(db.text)")
        #expect(try lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432))
        // Only that line changed: the lab's directory differs from the store there alone.
        let diff = try store.fleet(["diff", "--dir", lab.policy]).stdout
        #expect(diff.contains("changed  rules.d/00-systems.policy: line 21: 1 line out, 1 line in") && diff.split(separator: "\n").count == 2, "\(diff)")
        let history = try store.fleet(["history"]).stdout.split(separator: "\n")
        #expect(history.count == 2 && history[0].contains("\"fleet tag ws-1 +sre\"") && history[0].contains("  root, pid "), "\(history)")

        // The whole policy is checked: a tag that breaks an expectation is not pushed.
        let breaking = try store.fleet(["tag", "ws-1", "+servers"])
        #expect(breaking.status == 1 && breaking.stderr.contains("port-acl-is-per-policy") && breaking.stderr.contains("nothing was pushed"),
                "\(breaking.stdout)\(breaking.stderr)")
        // Guarded as a push: checked against an older revision, it is refused.
        let late = try store.fleet(["tag", "ws-1", "-sre", "--if-revision", String(firstRevision)])
        #expect(late.status == 1 && late.stderr.contains("another push landed since this one was checked")
                && late.stderr.contains("check the policy against it and push again"), "\(late.stderr)")
        // An unknown system: a clear error and a near name.
        let unknown = try store.fleet(["tag", "ws-11", "+sre"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no system ws-11 in fleet lab") && unknown.stderr.contains("did you mean ws-1?"), "\(unknown.stderr)")
        #expect(try store.fleet(["history"]).stdout.split(separator: "\n").count == 2, "nothing refused was pushed")

        // And back: db-1 closes 5432 to it again.
        let untagged = try store.fleet(["tag", "ws-1", "-sre"])
        #expect(untagged.status == 0, "\(untagged.stderr)")
        #expect(db.wait(for: "applied generation 3") != nil, "\(db.text)")
        #expect(try !lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432, timeout: 1))
        #expect(try store.fleet(["diff", "--dir", lab.policy]).stdout.hasPrefix("no difference"))

        // ws-1 expires in 3 s: a push of its block's `expires:` line; db-1 drops it then, by
        // its own clock, and cuts the connection it has open.
        #expect(try lab.echoes(from: "ws-1", to: "10.20.2.11", port: 22))
        let open = try lab.longLived(from: "ws-1", to: "10.20.2.11", port: 22)
        let expiring = try store.fleet(["expire", "ws-1", "--after", "3s"])
        #expect(expiring.status == 0 && expiring.stdout.contains("ws-1: expires ") && expiring.stdout.contains("(had no expiry; rules.d/00-systems.policy)")
                && expiring.stdout.contains("pushed revision "), "\(expiring.stdout)\(expiring.stderr)")
        // The push changes nothing in the kernel until the expiry comes.
        #expect(db.wait(for: "unchanged: generation 3 is live") != nil, "\(db.text)")
        #expect(db.wait(for: "flip (time): system 'ws-1' expired — applied generation 4", timeout: 10) != nil, "\(db.text)")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(!open.isRunning, "ws-1's open connection is cut at its expiry")
        #expect(try !lab.echoes(from: "ws-1", to: "10.20.2.11", port: 22, timeout: 1))
        #expect(try store.fleet(["history"]).stdout.split(separator: "\n").first?.contains("\"fleet expire ws-1 20") == true)
        // And never: the line goes again, ws-1 is back.
        let never = try store.fleet(["expire", "ws-1", "--never"])
        #expect(never.status == 0 && never.stdout.contains("ws-1: does not expire (was "), "\(never.stdout)\(never.stderr)")
        #expect(db.wait(for: "applied generation 5") != nil, "\(db.text)")
        #expect(try lab.echoes(from: "ws-1", to: "10.20.2.11", port: 22))
        #expect(try store.fleet(["diff", "--dir", lab.policy]).stdout.hasPrefix("no difference"))
    }

    /// Puts `/enforcer/lab/chunk/<sha256>` of `text` as a push writes its chunks before its
    /// transaction (no authentication in this store); prints etcd's answer or the key's state.
    static func chunk(_ text: String, put: Bool, in store: Store) throws -> String {
        let script = """
            import base64, hashlib, json, sys, urllib.request
            data = sys.argv[1].encode()
            key = "/enforcer/lab/chunk/" + hashlib.sha256(data).hexdigest()
            def call(path, body):
                return json.loads(urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:2379" + path, data=json.dumps(body).encode())).read())
            if sys.argv[2] == "put":
                call("/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(data).decode()})
            print("present" if call("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode()}).get("kvs") else "absent")
            """
        return try run("/usr/sbin/ip", ["netns", "exec", store.namespace, "python3", "-c", script, text, put ? "put" : "get"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("fleet gc: keeps the chunks of the kept revisions and of a push in progress, deletes the rest; a rollback to a collected revision is refused")
    func garbageCollection() throws {
        let lab = try Lab()
        let store = try Store(lab)
        let extra = lab.policy + "/rules.d/50-extra.policy"
        let textA = "[system] gc-a: {\n    address: 10.77.0.1\n    tags: servers\n}\n"
        let textB = "[system] gc-b: {\n    address: 10.77.0.2\n    tags: servers\n}\n"
        try textA.write(toFile: extra, atomically: true, encoding: .utf8)
        let pushedA = try store.fleet(["push", "--dir", lab.policy, "--message", "A"])
        try #require(pushedA.status == 0, "\(pushedA.stderr)")
        let revisionA = try #require(pushedA.stdout.split(separator: " ").dropFirst(2).first.flatMap { Int($0) })
        try textB.write(toFile: extra, atomically: true, encoding: .utf8)
        try #require(try store.fleet(["push", "--dir", lab.policy, "--message", "B"]).status == 0)
        #expect(try Self.chunk(textA, put: false, in: store) == "present" && Self.chunk(textB, put: false, in: store) == "present")

        // The default keeps ten revisions: both are kept, nothing goes.
        let kept = try store.fleet(["gc"])
        #expect(kept.status == 0 && kept.stdout.hasPrefix("deleted 0 chunks (0 bytes)") && kept.stdout.contains("named by the last 2 revisions"), "\(kept.stdout)\(kept.stderr)")

        // A push in progress: its chunk is written, its transaction not yet.
        let inProgress = "[system] gc-c: {\n    address: 10.77.0.3\n}\n"
        #expect(try Self.chunk(inProgress, put: true, in: store) == "present")

        // Keeping only the current revision: A's own chunk and its table of files go, B's and the new one stay.
        let dry = try store.fleet(["gc", "--keep-revisions", "1", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.hasPrefix("would delete 2 chunks ("), "\(dry.stdout)\(dry.stderr)")
        #expect(try Self.chunk(textA, put: false, in: store) == "present", "a dry run deletes nothing")
        let collected = try store.fleet(["gc", "--keep-revisions", "1"])
        #expect(collected.status == 0 && collected.stdout.hasPrefix("deleted 2 chunks (") && collected.stdout == dry.stdout.replacingOccurrences(of: "would delete", with: "deleted")
                && collected.stdout.contains("and 1 chunk written since the current push (a push in progress)"), "\(collected.stdout)\(collected.stderr)")
        #expect(try Self.chunk(textA, put: false, in: store) == "absent")
        #expect(try Self.chunk(textB, put: false, in: store) == "present" && Self.chunk(inProgress, put: false, in: store) == "present")
        // B is whole: an agent applies it.
        let db = try Agent(lab, "db-1")
        #expect(db.wait(for: "applied generation 1") != nil, "\(db.text)")

        // A cannot come back from the store; B's history entry still can.
        let rollback = try store.fleet(["rollback", String(revisionA)])
        #expect(rollback.status == 1 && rollback.stderr.contains("revision \(revisionA) cannot be restored: its files were removed by `fleet gc`"),
                "\(rollback.stdout)\(rollback.stderr)")
        let history = try store.fleet(["history"]).stdout.split(separator: "\n")
        #expect(history.count == 2, "nothing was pushed")
        // A was the first push: its head carries its small table, so its entry still counts its files.
        #expect(history.last?.contains("revision \(revisionA) ") == true && history.last?.contains(" files, digest ") == true, "\(history)")
        // A push after the gc writes what the store lacks again.
        try textA.write(toFile: extra, atomically: true, encoding: .utf8)
        #expect(try store.fleet(["push", "--dir", lab.policy, "--message", "A again"]).status == 0)
        #expect(try Self.chunk(textA, put: false, in: store) == "present")
        #expect(db.wait(for: "applied generation 2") != nil, "\(db.text)")
    }

    @Test("fleet ca init and issue: etcd serves the made certificate with --client-cert-auth; push and status with a client certificate work, without one they are refused")
    func certificatesMadeByFleetCA() throws {
        let tag = "\(getpid() % 10000)-\(Int.random(in: 0..<1000))"
        let namespace = "enfl-\(tag)-tls", base = NSTemporaryDirectory() + "enforcer-fleet-ca-\(tag)"
        let ca = base + "/ca", data = base + "/etcd", policy = base + "/policy"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        try LiveTrafficTests.sh("ip netns add \(namespace) && ip -n \(namespace) link set lo up")
        defer { GatewayLab.removeNamespace(namespace) }
        func enforcer(_ arguments: [String]) throws -> CommandResult {
            try run("/usr/sbin/ip", ["netns", "exec", namespace, Paths.enforcer] + arguments, environment: ["TZ": "UTC"])
        }

        let made = try enforcer(["fleet", "ca", "init", "--dir", ca, "--server-ip", "127.0.0.1", "--server-name", "localhost"])
        #expect(made.status == 0 && made.stdout.contains("--client-cert-auth"), "\(made.stdout)\(made.stderr)")
        let issued = try enforcer(["fleet", "ca", "issue", "admin", "--dir", ca])
        #expect(issued.status == 0 && issued.stdout.contains("--store-cert \(ca)/admin.pem"), "\(issued.stdout)\(issued.stderr)")
        for key in ["ca-key.pem", "server-key.pem", "admin-key.pem"] {
            let mode = try FileManager.default.attributesOfItem(atPath: ca + "/" + key)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(key): \(String(mode ?? 0, radix: 8))")
        }
        #expect(try FileManager.default.attributesOfItem(atPath: ca)[.posixPermissions] as? Int == 0o700)
        let again = try enforcer(["fleet", "ca", "init", "--dir", ca, "--server-ip", "127.0.0.1"])
        #expect(again.status == 1 && again.stderr.contains("a CA is already made in"), "\(again.stderr)")
        #expect(try enforcer(["fleet", "ca", "issue", "admin", "--dir", ca]).stderr.contains("exists: choose another name"))

        let etcd = Process()
        etcd.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        etcd.arguments = ["netns", "exec", namespace, "/usr/bin/etcd", "--name", "tls", "--data-dir", data,
                          "--listen-client-urls", "https://127.0.0.1:2379", "--advertise-client-urls", "https://127.0.0.1:2379",
                          "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                          "--initial-cluster", "tls=http://127.0.0.1:2380", "--heartbeat-interval", "20", "--election-timeout", "200",
                          "--cert-file", ca + "/server.pem", "--key-file", ca + "/server-key.pem", "--trusted-ca-file", ca + "/ca.pem", "--client-cert-auth"]
        etcd.standardOutput = FileHandle.nullDevice
        etcd.standardError = FileHandle.nullDevice
        try etcd.run()
        defer { GatewayLab.stop(etcd) }

        let store = ["--store", "https://127.0.0.1:2379", "--fleet", "tls", "--store-ca", ca + "/ca.pem"]
        let client = ["--store-cert", ca + "/admin.pem", "--store-key", ca + "/admin-key.pem"]
        var status = CommandResult(status: -1, stdout: "", stderr: "")
        #expect(try ConfirmPromiseTests.eventually(15) {
            status = try enforcer(["fleet", "status"] + store + client)
            return status.status == 0
        }, "\(status.stdout)\(status.stderr)")
        #expect(status.stdout.contains("fleet tls: no policy pushed"), "\(status.stdout)")
        try FileManager.default.copyItem(atPath: Paths.example("enclave"), toPath: policy)
        let pushed = try enforcer(["fleet", "push", "--dir", policy, "--message", "over TLS"] + store + client)
        #expect(pushed.status == 0 && pushed.stdout.contains("pushed revision "), "\(pushed.stdout)\(pushed.stderr)")
        #expect(try enforcer(["fleet", "history"] + store + client).stdout.contains("\"over TLS\""))

        // Without a client certificate etcd refuses the handshake; nothing is pushed.
        let refused = try enforcer(["fleet", "push", "--dir", policy] + store)
        #expect(refused.status == 1 && refused.stderr.contains("cannot read the bundle of fleet tls"), "\(refused.stdout)\(refused.stderr)")
        // Nor does a client that does not trust the CA reach it.
        let untrusted = try enforcer(["fleet", "status", "--store", "https://127.0.0.1:2379", "--fleet", "tls", "--store-ca", "/etc/ssl/certs/ca-certificates.crt"] + client)
        #expect(untrusted.status == 1, "\(untrusted.stdout)\(untrusted.stderr)")
    }
}
