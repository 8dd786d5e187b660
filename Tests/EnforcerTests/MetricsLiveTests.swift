import Foundation
import Testing

/// `enforcer run` on db-1 of the Enclave lab, scraped by Debian's own Prometheus in db-1's
/// namespace: the flows each policy granted, the default deny's drops and the reloads, read
/// back through Prometheus's HTTP API, are what the traffic and the signals did.
@Suite(.serialized)
struct MetricsLiveTests {
    /// Prometheus's answer to an instant query: each series' labels and value.
    static func query(_ lab: LiveTrafficTests.Lab, _ expression: String) throws -> [(labels: [String: String], value: Double)] {
        let encoded = expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? expression
        let answer = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "curl", "-s", "--max-time", "2",
                                              "http://127.0.0.1:9090/api/v1/query?query=\(encoded)"])
        guard let object = try? JSONSerialization.jsonObject(with: Data(answer.stdout.utf8)) as? [String: Any],
              let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else { return [] }
        return result.compactMap { series in
            guard let labels = series["metric"] as? [String: String], let pair = series["value"] as? [Any], pair.count == 2,
                  let text = pair[1] as? String, let value = Double(text) else { return nil }
            return (labels, value)
        }
    }

    /// The value of the one series of `expression` once `accept` takes it, within `seconds`.
    static func await(_ lab: LiveTrafficTests.Lab, _ expression: String, seconds: TimeInterval = 20, _ accept: (Double) -> Bool) throws -> Double? {
        let deadline = Date().addingTimeInterval(seconds)
        var last: Double?
        while Date() < deadline {
            last = try query(lab, expression).first?.value
            if let last, accept(last) { return last }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return last
    }

    @Test func prometheusReadsWhatTheTrafficDid() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus") else {
            Issue.record("Debian's prometheus is not installed (make deps installs it)")
            return
        }
        let lab = try LiveTrafficTests.Lab()
        try lab.serve("db-1", port: 5432)
        let log = URL(fileURLWithPath: lab.policy + "-db-1.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try DaemonLiveTests.runDaemon(lab, "db-1", log: log)
        try DaemonLiveTests.waitFor(log, "metrics: serving GET /metrics on 127.0.0.1:9469", process: daemon)

        // Prometheus in db-1's namespace, on its loopback, scraping every second.
        let prometheusDirectory = lab.policy + "-prometheus"
        try FileManager.default.createDirectory(atPath: prometheusDirectory + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: prometheusDirectory) }
        try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: enforcer
                static_configs:
                  - targets: ['127.0.0.1:9469']
            """.write(toFile: prometheusDirectory + "/prometheus.yml", atomically: true, encoding: .utf8)
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        prometheus.arguments = ["netns", "exec", lab.ns("db-1"), "/usr/bin/prometheus", "--config.file=\(prometheusDirectory)/prometheus.yml",
                                "--storage.tsdb.path=\(prometheusDirectory)/data", "--web.listen-address=127.0.0.1:9090"]
        prometheus.standardOutput = FileHandle.nullDevice
        prometheus.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/null"))
        try prometheus.run()
        lab.servers.append(prometheus)

        // Granted: three flows of SRE's to the database. Denied: workstations have no tcp/5432.
        for _ in 0..<3 { #expect(try lab.echoes(from: "sre-1", to: "10.20.2.11", port: 5432)) }
        for _ in 0..<2 { #expect(try !lab.echoes(from: "ws-1", to: "10.20.2.11", port: 5432, timeout: 1)) }
        // A reload with nothing changed is still a reload applied.
        kill(daemon.processIdentifier, SIGHUP)
        try DaemonLiveTests.waitFor(log, "reload (SIGHUP)", process: daemon)

        let sre = try Self.await(lab, #"enforcer_policy_flows_total{policy="Database Servers for SRE"}"#) { $0 >= 3 }
        #expect(sre == 3, "SRE's policy granted the three flows, each counted once (its first packet)")
        let developers = try Self.query(lab, #"enforcer_policy_flows_total{policy="Database Servers for Developers"}"#).first?.value
        #expect(developers == 0, "a policy nobody used is exported, at 0")
        let denied = try Self.await(lab, #"enforcer_default_deny_packets_total{hook="input"}"#) { $0 > 0 }
        #expect((denied ?? 0) > 0, "ws-1's SYNs to tcp/5432 fell to the default deny")
        let reloads = try Self.await(lab, #"enforcer_reloads_total{result="ok"}"#) { $0 >= 1 }
        #expect(reloads == 1)
        let applies = try Self.await(lab, "enforcer_apply_duration_seconds_count") { $0 >= 1 }
        #expect(applies == 1, "the reload's apply was timed")
        let readable = try Self.query(lab, "enforcer_kernel_counters_readable").first?.value
        #expect(readable == 1)

        // `status` and `policy list` say the same, and name the policy never hit.
        let status = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "status", "--state-dir", lab.state + "/db-1"]).stdout
        #expect(status.contains("'Database Servers for SRE' (input), 3 flows granted"), "\(status)")
        #expect(status.contains("'Server access for Workstations' (input), never hit"), "\(status)")
        #expect(status.contains("default deny: input "), "\(status)")
        let json = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "status", "--json", "--state-dir", lab.state + "/db-1"]).stdout
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let policies = try #require((object["counters"] as? [String: Any])?["policies"] as? [String: [String: Any]], "\(json)")
        #expect(policies["Database Servers for SRE"]?["flows"] as? Int == 3)
        #expect(policies["Database Servers for Developers"]?["never_hit"] as? Bool == true)
        let list = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), Paths.enforcer, "policy", "list", "--dir", lab.policy,
                                            "--state-dir", lab.state + "/db-1"]).stdout
        #expect(list.contains("policy 'Database Servers for SRE': ") && list.contains(", 3 flows granted"), "\(list)")
        // Not root: the counters are not read, and `status` says why.
        let unprivileged = try run("/usr/sbin/ip", ["netns", "exec", lab.ns("db-1"), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                                    Paths.enforcer, "status", "--state-dir", lab.state + "/db-1"])
        #expect(unprivileged.stdout.contains("counters: not read (reading the kernel's counters takes root)"), "\(unprivileged.stdout)\(unprivileged.stderr)")
    }
}
