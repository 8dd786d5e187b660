import Foundation
import Testing

/// One command line, consistent across commands: `--json` wherever a verdict or a list is
/// printed, exit statuses a script can act on, "did you mean" for typos, `allow: ssh`.
struct CommandLineTests {
    static let at = "2026-11-23T12:00:00Z"

    /// A fresh, empty folder under the temporary directory, removed by the caller.
    static func folder(_ label: String) throws -> String {
        let path = NSTemporaryDirectory() + "enforcer-\(label)-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A policy directory holding one `rules.d/10-t.policy`.
    static func policyDirectory(_ text: String) throws -> String {
        let dir = try folder("policy")
        try FileManager.default.createDirectory(atPath: dir + "/rules.d", withIntermediateDirectories: true)
        try text.write(toFile: dir + "/rules.d/10-t.policy", atomically: true, encoding: .utf8)
        return dir
    }

    static func object(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let parsed = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try #require(parsed as? [String: Any], "not one JSON object: \(result.stdout) \(result.stderr)", sourceLocation: sourceLocation)
    }

    /// The built enforcer as the unprivileged user nobody (uid 65534), no groups.
    static func asNobody(_ arguments: [String]) throws -> CommandResult {
        try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Paths.enforcer] + arguments, environment: ["TZ": "UTC"])
    }

    // MARK: Did you mean

    /// An agent whose store cannot be reached and that holds no earlier copy of the policy
    /// cannot start: it says so and exits 1 (it once crashed closing its HTTP client).
    @Test func anAgentWithoutItsStoreSaysWhyAndExits() throws {
        let state = NSTemporaryDirectory() + "enforcer-nostore-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let result = try run(Paths.enforcer, ["run", "--store", "http://127.0.0.1:1", "--fleet", "none", "--system", "db-1", "--state-dir", state])
        #expect(result.status == 1, "\(result.status): \(result.stderr.prefix(600))")
        #expect(result.stderr.contains("cannot read fleet none at http://127.0.0.1:1") && result.stderr.contains("the agent cannot start"), "\(result.stderr.prefix(600))")
    }

    @Test(arguments: [
        (["stauts"], "Error: unknown subcommand 'stauts' of enforcer; did you mean 'status'?\nUsage: enforcer <subcommand>\n"),
        (["aplpy", "--dry-run"], "unknown subcommand 'aplpy' of enforcer; did you mean 'apply'?"),
        (["chekc"], "did you mean 'check'?"),
        (["policy", "lsit"], "Error: unknown subcommand 'lsit' of enforcer policy; did you mean 'list'?\nUsage: enforcer policy <subcommand>\n"),
        (["trust", "grnat", "a", "b"], "of enforcer trust; did you mean 'grant'?"),
        (["frobnicate"], "unknown subcommand 'frobnicate' of enforcer; expected one of init, check, apply, test, test-uri, confirm, rollback, flush, run, status, history, fleet, enrol, policy, trust\n"),
    ] as [([String], String)])
    func mistypedSubcommandsGetASuggestion(arguments: [String], says: String) throws {
        let result = try run(Paths.enforcer, arguments)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains(says), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    // MARK: check --json

    @Test func checkJSONListsEveryExpectation() throws {
        let result = try enforcer("check", "--json", "--dir", Paths.example("enclave"), "--at", Self.at)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try Self.object(result)
        #expect(object["schema"] as? Int == 1)
        #expect(object["ok"] as? Bool == true)
        #expect(object["errors"] as? Int == 0)
        #expect((object["diagnostics"] as? [Any])?.isEmpty == true)
        let counts = try #require(object["counts"] as? [String: Any])
        #expect(counts["files"] as? Int == 6 && counts["systems"] as? Int == 13 && counts["expectations"] as? Int == 11)
        let expectations = try #require(object["expectations"] as? [[String: Any]])
        #expect(expectations.count == 11)
        #expect(expectations.allSatisfy { $0["passed"] as? Bool == true && ($0["failures"] as? [Any])?.isEmpty == true })
        #expect(expectations.first?["name"] as? String == "developers-reach-kubernetes")
        #expect(expectations.first?["line"] as? Int == 3 && expectations.first?["column"] as? Int == 10)
    }

    @Test func checkJSONGivesEachDiagnosticItsPlace() throws {
        let dir = try Self.policyDirectory("""
            [system] a: {
                address: 10.0.0.1
                tags: x
            }
            [policy] p: {
                senders: x, y
                receivers: x
                allow: tcp/70000
            }
            """)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try enforcer("check", "--json", "--dir", dir)
        #expect(result.status == 1)
        #expect(result.stderr.isEmpty, "everything is in the JSON: \(result.stderr)")
        let object = try Self.object(result)
        #expect(object["ok"] as? Bool == false)
        #expect(object["errors"] as? Int == 2)
        #expect(object["counts"] is NSNull, "no policy loaded, so no counts: null, not left out")
        let diagnostics = try #require(object["diagnostics"] as? [[String: Any]])
        let file = dir + "/rules.d/10-t.policy"
        #expect(diagnostics.map { "\($0["file"]!):\($0["line"]!):\($0["column"]!): \($0["severity"]!): \($0["message"]!)" } == [
            "\(file):6:17: error: unknown tag 'y': no system carries it",
            "\(file):8:16: error: port 70000 is out of range (1-65535)",
        ])
    }

    @Test func checkWarnsOfASystemAlreadyExpired() throws {
        let dir = try Self.policyDirectory("""
            [system] a: {
                address: 10.0.0.1
                tags: x
                expires: 2026-01-01T00:00:00Z
            }
            [system] b: {
                address: 10.0.0.2
                tags: x
                expires: 2099-01-01T00:00:00Z
            }
            """)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try enforcer("check", "--dir", dir, "--at", "2026-06-01T00:00:00Z")
        #expect(result.status == 0, "a warning, not an error: \(result.stderr)")
        let out = result.stdout + result.stderr
        #expect(out.contains("rules.d/10-t.policy:1:10: warning: system 'a' expired at 2026-01-01T00:00:00Z: it is no sender anywhere (remove its block, or move its expiry)"), "\(out)")
        #expect(!out.contains("system 'b' expired"), "\(out)")
    }

    @Test func checkJSONNamesTheFailedExpectation() throws {
        let dir = try Self.policyDirectory("""
            [system] a: {
                address: 10.0.0.1
                tags: x
            }
            [system] b: {
                address: 10.0.0.2
                tags: y
            }
            [policy] p: {
                senders: x
                receivers: y
                allow: ssh
            }
            [expect] no-ssh: {
                from: a
                to: b
                deny: ssh
            }
            [expect] no-web: {
                from: a
                to: b
                deny: tcp/80
            }
            """)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try enforcer("check", "--json", "--dir", dir)
        #expect(result.status == 1)
        let object = try Self.object(result)
        let expectations = try #require(object["expectations"] as? [[String: Any]])
        #expect(expectations.map { $0["name"] as? String } == ["no-ssh", "no-web"])
        #expect(expectations.map { $0["passed"] as? Bool } == [false, true])
        let failures = try #require(expectations.first?["failures"] as? [String])
        #expect(failures.count == 1 && failures[0].hasPrefix("expectation 'no-ssh' failed: a → b tcp/22 is allowed, expected deny"), "\(failures)")
        let diagnostics = try #require(object["diagnostics"] as? [[String: Any]])
        #expect(diagnostics.count == 1 && diagnostics.first?["line"] as? Int == 14 && diagnostics.first?["severity"] as? String == "error")
    }

    // MARK: allow: ssh

    @Test func serviceNamesAreShownResolvedInThePlan() throws {
        let dir = try Self.policyDirectory("""
            [system] a: {
                address: 10.0.0.1
                tags: x
            }
            [system] b: {
                address: 10.0.0.2
                tags: y
            }
            [policy] p: {
                senders: y
                receivers: x
                allow: ssh, domain, tcp/443
            }
            """)
        let state = try Self.folder("state")
        defer { for path in [dir, state] { try? FileManager.default.removeItem(atPath: path) } }
        let plan = try enforcer("apply", "--dry-run", "--dir", dir, "--system", "a", "--state-dir", state, "--at", Self.at)
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("policy 'p': y → x; allow tcp/22 (ssh), tcp/53 (domain), udp/53 (domain), tcp/443; active\n"), "\(plan.stdout)")
        let json = try Self.object(try enforcer("apply", "--dry-run", "--json", "--dir", dir, "--system", "a", "--state-dir", state, "--at", Self.at))
        let policy = try #require((json["policies"] as? [[String: Any]])?.first)
        let allow = try #require(policy["allow"] as? [[String: Any]])
        #expect(allow.map { "\($0["service"]!) \($0["name"]!)" } == ["tcp/22 ssh", "tcp/53 domain", "udp/53 domain", "tcp/443 <null>"])
        let verdict = try enforcer("test", "--dir", dir, "--from", "b", "--to", "a", "--proto", "udp", "--port", "53", "--at", Self.at)
        #expect(verdict.status == 0 && verdict.stdout.hasPrefix("allow"), "\(verdict.stdout)")
    }

    @Test func anUnknownServiceIsAnErrorAtItsColumn() throws {
        let dir = try Self.policyDirectory("[system] a: {\n    address: 10.0.0.1\n    tags: x\n}\n[policy] p: {\n    senders: x\n    receivers: x\n    allow: ssh, no-such-service\n}\n")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try enforcer("check", "--dir", dir)
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("\(dir)/rules.d/10-t.policy:8:17: error: unknown service 'no-such-service' (expected any, icmp, tcp, udp, tcp/PORT, udp/FIRST-LAST or a service name of /etc/services)\n"), "\(result.stderr)")
    }

    // MARK: apply --dry-run --json, --detailed-exitcode

    @Test func dryRunJSONHasThePlanAndTheDiff() throws {
        let state = try Self.folder("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let arguments = ["apply", "--dry-run", "--dir", Paths.example("enclave"), "--system", "db-1", "--state-dir", state, "--at", Self.at]
        let plain = try run(Paths.enforcer, arguments)
        #expect(plain.status == 0, "without --detailed-exitcode a plan exits 0, changes or not: \(plain.stderr)")
        let detailed = try run(Paths.enforcer, arguments + ["--detailed-exitcode"])
        #expect(detailed.status == 4, "nothing applied yet: changes pending")
        #expect(detailed.stdout == plain.stdout)
        let result = try run(Paths.enforcer, arguments + ["--json", "--detailed-exitcode"])
        #expect(result.status == 4)
        let object = try Self.object(result)
        #expect(object["schema"] as? Int == 1)
        #expect(object["changes_pending"] as? Bool == true)
        #expect((object["system"] as? [String: Any])?["name"] as? String == "db-1")
        #expect(object["at"] as? String == Self.at)
        let policies = try #require(object["policies"] as? [[String: Any]])
        #expect(policies.map { $0["name"] as? String } == ["Server access for Workstations", "Servers full mesh",
                                                           "Database Servers for Developers", "Database Servers for SRE"])
        #expect(policies.map { $0["active"] as? Bool } == [true, true, false, true])
        #expect(policies[2]["inactive_reason"] as? String == "outside active hours mon-fri 08:00-18:00 (America/New_York)")
        #expect(policies[0]["inactive_reason"] is NSNull)
        let diff = try #require(object["diff"] as? [String: Any])
        #expect(diff["live_generation"] is NSNull)
        #expect((diff["added_sets"] as? [String])?.contains("active_policies") == true)
        #expect((diff["lines"] as? [String])?.first == "+ set active_policies (3 elements)")
        #expect((object["ruleset"] as? String)?.hasPrefix("table inet enforcer {") == true)
        #expect((object["flips"] as? [[String: Any]])?.first?["at"] as? String == "2026-11-23T13:00:00Z")
    }

    @Test(arguments: [["apply", "--json"], ["apply", "--detailed-exitcode"]])
    func planFlagsNeedDryRun(arguments: [String]) throws {
        let result = try run(Paths.enforcer, arguments + ["--dir", Paths.example("enclave")])
        #expect(result.status == 2)
        #expect(result.stderr.contains("goes with --dry-run"), "\(result.stderr)")
    }

    // MARK: policy list --json, trust list --json

    @Test func policyListJSON() throws {
        let result = try enforcer("policy", "list", "--json", "--dir", Paths.example("enclave"), "--at", Self.at)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try Self.object(result)
        #expect(object["schema"] as? Int == 1)
        let files = try #require(object["files"] as? [[String: Any]])
        #expect(files.count == 6)
        let blocks = files.flatMap { ($0["blocks"] as? [[String: Any]]) ?? [] }
        #expect(blocks.filter { $0["kind"] as? String == "system" }.count == 13)
        #expect(blocks.filter { $0["kind"] as? String == "expect" }.count == 11)
        let developers = try #require(blocks.first { $0["name"] as? String == "Database Servers for Developers" })
        #expect(developers["active"] as? Bool == false && developers["pairs"] as? Int == 2)
    }

    @Test func trustListJSON() throws {
        let state = try Self.folder("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let empty = try Self.object(try enforcer("trust", "list", "--json", "--dir", Paths.example("enclave"), "--state-dir", state))
        #expect((empty["records"] as? [Any])?.isEmpty == true)
        let grant = try enforcer("trust", "grant", "ws-1", "mfa", "--for", "1h", "--dir", Paths.example("enclave"), "--state-dir", state)
        #expect(grant.status == 0, "\(grant.stderr)")
        let revoke = try enforcer("trust", "revoke", "srv-1", "mfa", "--dir", Paths.example("enclave"), "--state-dir", state)
        #expect(revoke.status == 0, "\(revoke.stderr)")
        let result = try enforcer("trust", "list", "--json", "--dir", Paths.example("enclave"), "--state-dir", state)
        let records = try #require(try Self.object(result)["records"] as? [[String: Any]])
        #expect(records.map { "\($0["system"]!) \($0["requirement"]!)" } == ["srv-1 mfa", "ws-1 mfa"])
        #expect(records.map { $0["granted"] as? Bool } == [false, true])
        #expect(records.map { $0["holds"] as? Bool } == [false, true])
        #expect(records[0]["until"] is NSNull)
        #expect(records[1]["until"] is String)
    }

    // MARK: status

    /// Writes the report `enforcer run` keeps, for a daemon with process id `pid`, readable by all.
    static func daemonReport(in state: String, pid: Int32) throws {
        chmod(state, 0o755)
        let report = #"{"pid":\#(pid),"startedAt":"2026-11-23T11:00:00Z","system":"db-1","policyDirectory":"/etc/enforcer","policies":[]}"#
        try report.write(toFile: state + "/daemon.json", atomically: true, encoding: .utf8)
        chmod(state + "/daemon.json", 0o644)
    }

    @Test func statusJSONWritesEveryKeyAndExitsThreeWithoutADaemon() throws {
        let state = try Self.folder("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let result = try run(Paths.enforcer, ["status", "--json", "--dir", Paths.example("enclave"), "--state-dir", state])
        #expect(result.status == 3, "no daemon runs: 3, as systemctl is-active")
        let object = try Self.object(result)
        #expect(Set(object.keys) == ["schema", "state_directory", "generation", "running", "daemon", "recent_senders", "overrides",
                                     "pending_confirm", "applying", "kernel", "counters"])
        let counters = try #require(object["counters"] as? [String: Any])
        #expect(Set(counters.keys) == ["read", "not_read", "policies", "default_deny"])
        for key in ["generation", "daemon", "pending_confirm", "applying"] { #expect(object[key] is NSNull, "\(key)") }
        #expect(object["running"] as? Bool == false)
        let kernel = try #require(object["kernel"] as? [String: Any])
        #expect(Set(kernel.keys) == ["asked", "not_asked", "table", "generation", "agrees", "ruleset_generation",
                                     "recorded_ruleset_generation", "untouched_since_recorded"])
        let text = try run(Paths.enforcer, ["status", "--dir", Paths.example("enclave"), "--state-dir", state])
        #expect(text.status == 3)
        #expect(text.stdout.contains("daemon: no report from `enforcer run`"))
    }

    /// An operator's `enforcer status` may not signal root's daemon (EPERM), which still runs.
    @Test func statusAsNonRootSeesRootsDaemonRunning() throws {
        let state = try Self.folder("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        try Self.daemonReport(in: state, pid: getpid())  // this test runs as root
        let result = try Self.asNobody(["status", "--dir", Paths.example("enclave"), "--state-dir", state])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("daemon: running (pid \(getpid())) for db-1"), "\(result.stdout)")
        #expect(result.stdout.contains("the kernel was not asked: reading the kernel's tables takes root or CAP_NET_ADMIN"), "\(result.stdout)")
        let json = try Self.object(try Self.asNobody(["status", "--json", "--dir", Paths.example("enclave"), "--state-dir", state]))
        #expect(json["running"] as? Bool == true)
        let kernel = try #require(json["kernel"] as? [String: Any])
        #expect(kernel["asked"] as? Bool == false && kernel["table"] is NSNull)
    }

    @Test func statusOfAGoneDaemonExitsThree() throws {
        let state = try Self.folder("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        try Self.daemonReport(in: state, pid: gone.processIdentifier)
        let result = try Self.asNobody(["status", "--dir", Paths.example("enclave"), "--state-dir", state])
        #expect(result.status == 3, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("daemon: not running (last report from pid \(gone.processIdentifier), which is gone)"), "\(result.stdout)")
    }

    // MARK: apply without privilege

    @Test func applyWithoutPrivilegeSaysSoAndWritesNothing() throws {
        let state = try Self.folder("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        chown(state, 65534, 65534)  // nobody could write here: the refusal must not
        let missing = state + "/not-yet"
        for directory in [state, missing] {
            let result = try Self.asNobody(["apply", "--dir", Paths.example("enclave"), "--system", "db-1", "--state-dir", directory])
            #expect(result.status == 1)
            #expect(result.stderr == "enforcer: error: apply needs root or CAP_NET_ADMIN; nothing was changed (`enforcer apply --dry-run` shows the plan without either)\n")
            #expect(result.stdout.isEmpty)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).isEmpty, "the state directory stays untouched")
        let plan = try Self.asNobody(["apply", "--dry-run", "--dir", Paths.example("enclave"), "--system", "db-1", "--state-dir", missing])
        #expect(plan.status == 0, "a dry run needs no privilege: \(plan.stderr)")
    }
}

/// `apply --confirm` with a duration, and a plan with nothing pending, against a namespace.
extension ApplyLifecycleTests {
    @Test func confirmTakesADurationAndAPlanOfTheLiveGenerationExitsZero() throws {
        let box = try Sandbox("cli")
        let armed = try Self.require(box.apply("srv-1", ["--confirm", "2m", "--at", CommandLineTests.at]))
        #expect(armed.stdout.contains("run `enforcer confirm` within 120 s"), "\(armed.stdout)")
        try Self.require(box.enforcer(["confirm", "--dir", Paths.example("enclave")]))
        let plan = try box.apply("srv-1", ["--dry-run", "--detailed-exitcode", "--json", "--at", CommandLineTests.at])
        #expect(plan.status == 0, "the plan is what is live: \(plan.stderr)")
        let object = try CommandLineTests.object(plan)
        #expect(object["changes_pending"] as? Bool == false)
        #expect((object["diff"] as? [String: Any])?["live_generation"] as? Int == 1)
        #expect(((object["diff"] as? [String: Any])?["lines"] as? [Any])?.isEmpty == true)
    }

    @Test(arguments: ["2x", "0", "-5", "m"])
    func confirmRefusesWhatIsNoDuration(_ value: String) throws {
        let result = try enforcer("apply", "--dry-run", "--dir", Paths.example("enclave"), "--system", "srv-1", "--confirm", value)
        #expect(result.status == 2, "\(value): \(result.stderr)")
    }
}
