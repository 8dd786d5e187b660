import Foundation
import Testing

/// Names as operators write them ("X for Y (24/7), on-call", "Bob's laptop") through the
/// whole command: `check`, `test`, `policy list|show`, `apply --dry-run`, and `apply` into a
/// throwaway network namespace whose ruleset `nft` lists, and loads again, without error.
/// Needs root (CI runs as root); without root it fails, it is never skipped.
@Suite(.serialized)
struct QuotedNamesLiveTests {
    static let policy = """
        [system] "Bob's laptop": {
            address: 10.77.0.2
            tags: laptops
        }
        [system] "db (primary)": {
            address: 10.77.0.1
            tags: databases
        }
        [system] "Café Zürich": {
            address: 10.77.0.3
            tags: laptops
        }
        [policy] "Database Servers for SRE (24/7), on-call": {
            senders: laptops
            receivers: databases
            allow: tcp/5432
        }
        [policy] "Replicas for SRE (24/7), on-call: the weekend rota of the platform team, and the database administrators at Café Zürich and Genève": {
            senders: laptops
            receivers: databases
            allow: tcp/5433
        }
        [expect] "Bob's laptop reaches db (primary)": {
            from: "Bob's laptop"
            to: "db (primary)"
            allow: tcp/5432
            deny: tcp/22
        }

        """

    /// A policy directory holding `policy` as `rules.d/10-sre.policy`; removed by `remove()`.
    struct Directory {
        let path = NSTemporaryDirectory() + "enforcer-names-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

        init() throws {
            try FileManager.default.createDirectory(atPath: path + "/rules.d", withIntermediateDirectories: true)
            try "[policy]\ntime_window_tz = \"utc\"\n".write(toFile: path + "/enforcer.conf", atomically: true, encoding: .utf8)
            try QuotedNamesLiveTests.policy.write(toFile: path + "/rules.d/10-sre.policy", atomically: true, encoding: .utf8)
        }

        func remove() { try? FileManager.default.removeItem(atPath: path) }
    }

    @Test func quotedNamesCheckTestListAndShow() throws {
        let dir = try Directory()
        defer { dir.remove() }
        let checked = try enforcer("check", "--dir", dir.path)
        #expect(checked.status == 0 && checked.stderr.isEmpty, "\(checked.stderr)")
        #expect(checked.stdout == "ok: 1 files, 3 systems, 2 policies, 0 web rules (0 domains), 1 expectations passed\n")

        let tested = try enforcer("test", "--dir", dir.path, "--from", "Bob's laptop", "--to", "db (primary)", "--proto", "tcp", "--port", "5432",
                                  "--at", "2026-11-23T15:00:00Z")
        #expect(tested.status == 0, "\(tested.stderr)")
        #expect(tested.stdout.hasPrefix("allow policy 'Database Servers for SRE (24/7), on-call': "), "\(tested.stdout)")
        let json = try enforcer("test", "--dir", dir.path, "--from", "Café Zürich", "--to", "db (primary)", "--proto", "tcp", "--port", "5432",
                                "--at", "2026-11-23T15:00:00Z", "--json")
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["policy"] as? String == "Database Servers for SRE (24/7), on-call")

        let listed = try enforcer("policy", "list", "--dir", dir.path, "--at", "2026-11-23T15:00:00Z")
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("  system Bob's laptop: laptops\n"), "\(listed.stdout)")
        #expect(listed.stdout.contains("  policy 'Database Servers for SRE (24/7), on-call': "), "\(listed.stdout)")
        for name in ["db (primary)", "Database Servers for SRE (24/7), on-call", "Café Zürich"] {
            let shown = try enforcer("policy", "show", name, "--dir", dir.path)
            #expect(shown.status == 0, "\(name): \(shown.stderr)")
            #expect(shown.stdout.contains("[system] \"Bob's laptop\": {"), "\(name)")
        }

        // Overrides find the policy and the system by the name as written.
        let state = dir.path + "/state"
        let disabled = try enforcer("policy", "disable", "Database Servers for SRE (24/7), on-call", "--dir", dir.path, "--state-dir", state)
        #expect(disabled.status == 0, "\(disabled.stderr)")
        #expect(disabled.stdout.hasPrefix("'Database Servers for SRE (24/7), on-call' disabled\n"), "\(disabled.stdout)")
        let granted = try enforcer("trust", "grant", "Bob's laptop", "mfa", "--dir", dir.path, "--state-dir", state)
        #expect(granted.status == 0, "\(granted.stderr)")
        let trusted = try enforcer("trust", "list", "--dir", dir.path, "--state-dir", state)
        #expect(trusted.stdout == "Bob's laptop mfa: granted\n", "\(trusted.stdout)")
        let prefixOnly = try enforcer("policy", "enable", "Database Servers", "--dir", dir.path, "--state-dir", state)
        #expect(prefixOnly.status != 0 && prefixOnly.stderr.contains("no policy named 'Database Servers'"), "\(prefixOnly.stderr)")
    }

    @Test func quotedNamesApplyAndListInANamespace() throws {
        try #require(getuid() == 0, "applying into a network namespace needs root; run the tests as root")
        let dir = try Directory()
        defer { dir.remove() }
        let plan = try enforcer("apply", "--dry-run", "--dir", dir.path, "--system", "db (primary)", "--at", "2026-11-23T15:00:00Z")
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.hasPrefix("# enforcer plan for system 'db (primary)' (10.77.0.1)\n"), "\(plan.stdout)")
        #expect(plan.stdout.contains("policy 'Database Servers for SRE (24/7), on-call'"), "\(plan.stdout)")

        let namespace = try Namespace()
        defer { namespace.remove() }
        let state = NSTemporaryDirectory() + "enforcer-names-state-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applied = try run("/usr/sbin/ip", ["netns", "exec", namespace.name, Paths.enforcer, "apply", "--dir", dir.path,
                                               "--system", "db (primary)", "--state-dir", state], environment: ["TZ": "UTC"])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.hasPrefix("applied generation 1 for db (primary): "), "\(applied.stdout)")

        let listed = try namespace.nft(["list", "ruleset"])
        #expect(listed.status == 0 && listed.stderr.isEmpty, "nft list ruleset: \(listed.stderr)")
        #expect(listed.stdout.contains("comment \"policy Database Servers for SRE (24/7), on-call\""), "\(listed.stdout)")
        // A name longer than a comment may be is cut, between characters, with "…".
        #expect(listed.stdout.contains("comment \"policy Replicas for SRE (24/7), on-call: the weekend rota of the platform team, and the database administrators at Café Zür…\""),
                "\(listed.stdout)")
        // What nft lists loads again, unchanged, into a second namespace.
        let second = try Namespace()
        defer { second.remove() }
        let reloaded = try second.nft(["-f", "-"], input: listed.stdout)
        #expect(reloaded.status == 0, "nft -f refused the listed ruleset:\n\(reloaded.stderr)")
        #expect(try second.nft(["list", "ruleset"]).stdout == listed.stdout)
    }
}
