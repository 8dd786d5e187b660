import Compiler
import Foundation
import Testing

/// The command as a user meets it: output, exit status, help text.
struct CommandTests {
    static let monday10NY = "2026-11-23T15:00:00Z"

    @Test(arguments: [
        // arguments, exit status, first word of stdout
        (["test", "--from", "dev-laptop-1", "--to", "k8s-node-1", "--proto", "tcp", "--port", "6443"], 0, "allow"),
        (["test", "--from", "k8s-node-1", "--to", "dev-laptop-1", "--proto", "tcp", "--port", "22"], 1, "deny"),
        (["test", "--from", "10.10.2.11", "--to", "10.20.1.11", "--proto", "tcp", "--port", "8080"], 1, "deny"),
        (["test", "--from", "10.10.2.11", "--to", "10.20.1.11", "--proto", "tcp", "--port", "22"], 0, "allow"),
        (["test", "--from", "dev-laptop-1", "--to", "db-1", "--proto", "tcp", "--port", "5432", "--at", "2026-11-23T09:30:00-05:00"], 0, "allow"),
        (["test", "--from", "dev-laptop-1", "--to", "db-1", "--proto", "tcp", "--port", "5432", "--at", "2026-11-23T18:00:00-05:00"], 1, "deny"),
        (["test", "--from", "ws-1", "--to", "10.30.0.9", "--proto", "icmp"], 0, "allow"),
        (["test", "--from", "10.30.0.9", "--to", "ws-1", "--proto", "icmp"], 1, "deny"),
        (["test", "--from", "fd00:10:1::11", "--to", "fd00:20::11", "--proto", "tcp", "--port", "443"], 0, "allow"),
    ] as [([String], Int32, String)])
    func flowVerdicts(arguments: [String], status: Int32, verdict: String) throws {
        let at = arguments.contains("--at") ? [] : ["--at", Self.monday10NY]
        let result = try run(Paths.enforcer, arguments + ["--dir", Paths.example("enclave")] + at, environment: ["TZ": "UTC"])
        #expect(result.status == status, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.split(separator: " ").first.map(String.init) == verdict, "\(result.stdout)")
    }

    @Test(arguments: [
        ("https://bit.ly/abc", nil, 1, "deny rule 'deny-urlshortening-domains' pattern domain bit.ly: Access to URL shortening services is not permitted\nnote: TLS shows only the host, so this was matched as https://bit.ly/\n"),
        ("http://sub.tinyurl.com/x", nil, 1, "deny rule 'deny-urlshortening-domains' pattern domain tinyurl.com: Access to URL shortening services is not permitted\n"),
        ("https://www.admin.ch/", nil, 0, "permit rule 'allow-swissdomains' pattern ^(https?:\\/\\/)?[^\\/]+[.]ch: Swiss domain names ending with .ch\n"),
        ("https://example.org/", nil, 0, "permit default_action (no rule matched)\n"),
        ("https://www.reddit.com/", "2026-11-23T10:00:00Z", 1, "deny rule 'block-social-business-hours' pattern domain reddit.com: No social media during work hours\n"),
        ("https://www.reddit.com/", "2026-11-23T18:00:00Z", 0, "permit default_action (no rule matched)\n"),
        ("https://www.reddit.com/", "2026-11-28T10:00:00Z", 0, "permit default_action (no rule matched)\n"),
    ] as [(String, String?, Int32, String)])
    func webVerdicts(url: String, at: String?, status: Int32, output: String) throws {
        let result = try run(Paths.enforcer, ["test-uri", url, "--dir", Paths.example("enforcegate")] + (at.map { ["--at", $0] } ?? []))
        #expect(result.status == status)
        #expect(result.stdout == output)
    }

    @Test func testPrintsJSON() throws {
        let result = try enforcer("test", "--dir", Paths.example("enclave"), "--from", "ws-1", "--to", "srv-1", "--proto", "tcp", "--port", "22", "--at", Self.monday10NY, "--json")
        #expect(result.status == 0)
        #expect(result.stdout == #"{"at":"2026-11-23T15:00:00Z","from":"10.10.2.11","policy":"Server access for Workstations","port":22,"proto":"tcp","reason":"policy 'Server access for Workstations': ws-1 (10.10.2.11) → srv-1 (10.20.1.11) tcp/22","schema":1,"to":"10.20.1.11","verdict":"allow"}"# + "\n")
    }

    /// What does not apply is null, not left out: icmp has no port, default deny no policy;
    /// a URL no rule matches has no rule, pattern or description.
    @Test func testJSONWritesNulls() throws {
        let flow = try enforcer("test", "--dir", Paths.example("enclave"), "--from", "10.30.0.9", "--to", "ws-1", "--proto", "icmp", "--at", Self.monday10NY, "--json")
        #expect(flow.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(flow.stdout.utf8)) as? [String: Any])
        #expect(object["port"] is NSNull && object["policy"] is NSNull && object["schema"] as? Int == 1, "\(flow.stdout)")
        let web = try enforcer("test-uri", "https://example.org/", "--dir", Paths.example("enforcegate"), "--json")
        #expect(web.status == 0)
        let uri = try #require(try JSONSerialization.jsonObject(with: Data(web.stdout.utf8)) as? [String: Any])
        #expect(uri["rule"] is NSNull && uri["pattern"] is NSNull && uri["description"] is NSNull && uri["verdict"] as? String == "permit", "\(web.stdout)")
    }

    @Test(arguments: [
        ["test", "--from", "ws-1", "--to", "srv-1", "--proto", "tcpx", "--port", "22"],
        ["test", "--from", "ws-1", "--to", "srv-1", "--proto", "tcp"],
        ["test", "--from", "ws-1", "--to", "srv-1", "--proto", "icmp", "--port", "1"],
        ["frobnicate"],
    ])
    func usageErrorsExitTwo(arguments: [String]) throws {
        let result = try run(Paths.enforcer, arguments + ["--dir", Paths.example("enclave")])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(!result.stderr.isEmpty)
        #expect(!result.stderr.contains("Usage: enforcer <subcommand>") || arguments == ["frobnicate"], "a subcommand's usage error shows its own usage: \(result.stderr)")
    }

    /// Asked correctly for something that is not there: exit 1, the reason, and no usage line.
    @Test(arguments: [
        (["test", "--from", "nosuch", "--to", "srv-1", "--proto", "tcp", "--port", "22"], "--from 'nosuch'"),
        (["test", "--from", "ws-1", "--to", "srv-1", "--proto", "tcp", "--port", "22", "--at", "yesterday"], "--at 'yesterday'"),
        (["test-uri", "ftp://x.example/"], "ftp"),
        (["apply", "--dry-run", "--system", "nosuch"], "--system 'nosuch' is not a system"),
        (["run", "--system", "nosuch", "--state-dir", "/nonexistent/enforcer-state"], "--system 'nosuch' is not a system"),
        (["policy", "show", "nosuch"], "no file or block named 'nosuch'"),
    ])
    func lookupFailuresExitOne(arguments: [String], says: String) throws {
        let result = try run(Paths.enforcer, arguments + ["--dir", Paths.example("enclave")])
        #expect(result.status == 1, "\(arguments): \(result.status) \(result.stderr)")
        #expect(result.stderr.hasPrefix("enforcer: error: ") && result.stderr.contains(says), "\(result.stderr)")
        #expect(!result.stderr.contains("Usage:"), "\(result.stderr)")
    }

    @Test func checkPassesOnTheExamples() throws {
        let enclave = try enforcer("check", "--dir", Paths.example("enclave"))
        #expect(enclave.status == 0)
        #expect(enclave.stdout == "ok: 6 files, 13 systems, 6 policies, 0 web rules (0 domains), 11 expectations passed\n")
        let gate = try enforcer("check", "--dir", Paths.example("enforcegate"))
        #expect(gate.status == 0)
        #expect(gate.stderr.contains("10-allowswissdomains.policy:2:1: warning: web rule 'allow-swissdomains' matches only by URI regex"))
    }

    /// examples/service: the example enforcer.conf (every key) checks clean, and the unit's
    /// commands exist with the flags it passes.
    @Test func serviceExamplesAreValid() throws {
        let directory = NSTemporaryDirectory() + "enforcer-service-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/rules.d", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Paths.example("service") + "/enforcer.conf", toPath: directory + "/enforcer.conf")
        let checked = try enforcer("check", "--dir", directory)
        #expect(checked.status == 0 && checked.stderr.isEmpty, "\(checked.stderr)")
        let unit = try String(contentsOfFile: Paths.example("service") + "/enforcer.service", encoding: .utf8)
        let commands = unit.split(separator: "\n").filter { $0.hasPrefix("ExecStart") }
            .compactMap { $0.split(separator: "=", maxSplits: 1).last?.split(separator: " ").map(String.init) }
        #expect(commands.count == 2)
        for command in commands {
            #expect(command.first == "/usr/local/bin/enforcer")
            let arguments = Array(command.dropFirst()).map { $0 == "/etc/enforcer" ? directory : $0 }
            let help = try enforcer(arguments[0], "--help")
            #expect(help.status == 0, "\(arguments[0]) --help")
            for flag in arguments where flag.hasPrefix("--") { #expect(help.stdout.contains(flag), "\(arguments[0]) has no \(flag)") }
        }
    }

    @Test func checkReportsEveryErrorWithItsPlace() throws {
        let dir = NSTemporaryDirectory() + "enforcer-cli-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/rules.d", withIntermediateDirectories: true)
        try """
            [system] a: {
                address: 10.0.0.1/8
                tags: x
            }
            [policy] p: {
                senders: x, y
                receivers: x
                allow: tcp/70000
                active-hours: mon-fri 08:00-25:00
            }
            """.write(toFile: dir + "/rules.d/10-bad.policy", atomically: true, encoding: .utf8)
        let result = try enforcer("check", "--dir", dir)
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").filter { $0.contains(": error: ") }.map(String.init)
        #expect(lines == [
            "\(dir)/rules.d/10-bad.policy:2:22: error: host bits set in '10.0.0.1/8' (did you mean 10.0.0.0/8?)",
            "\(dir)/rules.d/10-bad.policy:6:17: error: unknown tag 'y': no system carries it",
            "\(dir)/rules.d/10-bad.policy:8:16: error: port 70000 is out of range (1-65535)",
            "\(dir)/rules.d/10-bad.policy:9:33: error: bad time '25:00' (expected HH:MM, 00:00 to 24:00)",
        ])
        #expect(result.stderr.contains("\n        address: 10.0.0.1/8\n                         ^\n"))
        #expect(result.stderr.hasSuffix("enforcer: 4 errors in \(dir)\n"))
    }

    @Test func failingExpectationNamesTheDecidingPolicy() throws {
        let dir = NSTemporaryDirectory() + "enforcer-cli-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/rules.d", withIntermediateDirectories: true)
        try """
            [system] a: {
                address: 10.0.0.1
                tags: x
            }
            [system] b: {
                address: 10.0.0.2
                tags: y
            }
            [policy] "b for a": {
                senders: x
                receivers: y
                allow: tcp/22
            }
            [expect] no-ssh: {
                from: a
                to: b
                deny: tcp/22
            }
            """.write(toFile: dir + "/rules.d/10-x.policy", atomically: true, encoding: .utf8)
        let result = try enforcer("check", "--dir", dir)
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("\(dir)/rules.d/10-x.policy:14:10: error: expectation 'no-ssh' failed: a → b tcp/22 is allowed, expected deny; decided by policy 'b for a': policy 'b for a': a (10.0.0.1) → b (10.0.0.2) tcp/22\n"))
    }

    @Test func helpOfTestIsStable() throws {
        let result = try enforcer("test", "--help")
        #expect(result.status == 0)
        try expectGolden(result.stdout, "test-help.txt")
    }
}

/// `apply --dry-run` prints the plan; golden files pin it down for the examples.
struct PlanTests {
    @Test(arguments: [("enclave", "db-1"), ("enclave", "router-1"), ("enclave", "kiosk-1"), ("enforcegate", "gw-1")])
    func planMatchesGolden(example: String, system: String) throws {
        let result = try enforcer("apply", "--dry-run", "--dir", "examples/\(example)", "--system", system, "--at", "2026-11-23T12:00:00Z")
        #expect(result.status == 0, "\(result.stderr)")
        try expectGolden(result.stdout, "plan-\(example)-\(system).txt")
    }
}

/// Policy files `check` cannot read, or will not: the path, the errno or the limit, exit 1.
extension CommandTests {
    private static let system = "[system] a: {\n    address: 10.0.0.1\n    tags: x\n}\n"

    /// Root reads past file modes, so these are failures no permission bit lifts: a
    /// directory where a policy file belongs, and a link to nothing.
    @Test func checkNamesAnUnreadablePolicyFileAndItsErrno() throws {
        let dir = NSTemporaryDirectory() + "enforcer-cli-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/rules.d/20-folder.policy", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/rules.d/30-gone.policy", withDestinationPath: dir + "/rules.d/nowhere")
        try Self.system.write(toFile: dir + "/rules.d/10-a.policy", atomically: true, encoding: .utf8)
        let result = try enforcer("check", "--dir", dir)
        #expect(result.status == 1)
        #expect(result.stderr.split(separator: "\n").filter { $0.contains(": error: ") }.map(String.init) == [
            "\(dir)/rules.d/20-folder.policy:1:1: error: cannot read \(dir)/rules.d/20-folder.policy: Is a directory (EISDIR)",
            "\(dir)/rules.d/30-gone.policy:1:1: error: cannot read \(dir)/rules.d/30-gone.policy: No such file or directory (ENOENT)",
        ])
        #expect(result.stderr.hasSuffix("enforcer: 2 errors in \(dir)\n"))
    }

    /// A policy file over the limit is refused from its size (the file here is sparse: a size
    /// without data), and not read to quote its first line either.
    @Test func checkRefusesAnOversizedPolicyFile() throws {
        let dir = NSTemporaryDirectory() + "enforcer-cli-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/rules.d", withIntermediateDirectories: true)
        try Self.system.write(toFile: dir + "/rules.d/10-a.policy", atomically: true, encoding: .utf8)
        let file = dir + "/rules.d/20-big.policy"
        FileManager.default.createFile(atPath: file, contents: nil)
        #expect(truncate(file, off_t(SourceLimits.policyFileBytes + 1)) == 0)
        let result = try enforcer("check", "--dir", dir)
        #expect(result.status == 1)
        #expect(result.stderr == "\(file):1:1: error: \(file) is \(SourceLimits.text(bytes: SourceLimits.policyFileBytes + 1)), more than the limit of "
            + "\(SourceLimits.text(bytes: SourceLimits.policyFileBytes)) for a policy file: split it into several files in rules.d/\n"
            + "enforcer: 1 error in \(dir)\n")
    }
}
