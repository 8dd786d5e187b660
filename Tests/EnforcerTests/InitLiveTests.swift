import Foundation
import Testing

/// `enforcer init` on a host with known addresses (a network namespace with its own
/// interfaces): what it writes checks, and plans the SSH grant; it never writes over a policy.
@Suite(.serialized)
struct InitLiveTests {
    final class Host {
        let namespace: String
        let directory: String
        let state: String

        init() throws {
            precondition(getuid() == 0, "InitLiveTests give a network namespace its addresses and must run as root (CI does)")
            let suffix = "\(getpid())-\(Int.random(in: 0..<1_000_000))"
            namespace = "eninit-\(suffix)"
            directory = NSTemporaryDirectory() + "enforcer-init-\(suffix)"
            state = NSTemporaryDirectory() + "enforcer-init-state-\(suffix)"
            try require(run("/usr/sbin/ip", ["netns", "add", namespace]))
            try require(run("/usr/sbin/ip", ["-n", namespace, "link", "set", "lo", "up"]))
            // A veth pair with both ends inside (this kernel has no dummy interfaces).
            try require(run("/usr/sbin/ip", ["-n", namespace, "link", "add", "d0", "type", "veth", "peer", "name", "d1"]))
            try require(run("/usr/sbin/ip", ["-n", namespace, "addr", "add", "10.232.0.5/24", "dev", "d0"]))
            try require(run("/usr/sbin/ip", ["-n", namespace, "addr", "add", "fd00:232::5/64", "dev", "d0", "nodad"]))
            try require(run("/usr/sbin/ip", ["-n", namespace, "link", "set", "d0", "up"]))
            try require(run("/usr/sbin/ip", ["-n", namespace, "link", "set", "d1", "up"]))
        }

        deinit {
            _ = try? run("/usr/sbin/ip", ["netns", "del", namespace])
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: state)
        }

        /// `enforcer ARGS` in the namespace, as if run over SSH from 10.232.0.9.
        func enforcer(_ arguments: [String]) throws -> CommandResult {
            try run("/usr/sbin/ip", ["netns", "exec", namespace, Paths.enforcer] + arguments,
                    environment: ["TZ": "UTC", "SSH_CONNECTION": "10.232.0.9 50000 10.232.0.5 22"])
        }
    }

    @discardableResult
    static func require(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        try #require(result.status == 0, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    @Test func initWritesAPolicyThatChecksAndGrantsSSH() throws {
        let host = try Host()
        let written = try Self.require(host.enforcer(["init", "--dir", host.directory, "--name", "box"]))
        #expect(written.stdout.hasPrefix("""
            wrote \(host.directory)/enforcer.conf
            wrote \(host.directory)/rules.d/10-inventory.policy
            wrote \(host.directory)/rules.d/20-ssh.policy
            system 'box' (10.232.0.5, fd00:232::5) may be reached over SSH from the systems tagged 'admins': admin-workstation at 10.232.0.9 for now, the client of the SSH session `enforcer init` ran in (found by SSH_CONNECTION)

            """), "\(written.stdout)")
        let inventory = try String(contentsOfFile: host.directory + "/rules.d/10-inventory.policy", encoding: .utf8)
        #expect(inventory.contains("[system] box: {\n    address: 10.232.0.5, fd00:232::5\n    tags: servers\n}"), "\(inventory)")
        #expect(inventory.contains("default-deny inbound"))

        // It checks as written: no error, no warning.
        let check = try Self.require(host.enforcer(["check", "--dir", host.directory]))
        #expect(check.stderr == "", "\(check.stderr)")
        // The plan finds this host by its addresses and grants SSH from the admin system.
        let plan = try Self.require(host.enforcer(["apply", "--dry-run", "--dir", host.directory, "--state-dir", host.state]))
        #expect(plan.stdout.hasPrefix("# enforcer plan for system 'box' (10.232.0.5, fd00:232::5)"), "\(plan.stdout)")
        #expect(plan.stdout.contains("input   policy 'SSH from admins': admins → servers; allow tcp/22; active"), "\(plan.stdout)")
        #expect(plan.stdout.contains("10.232.0.9"), "\(plan.stdout)")
        #expect(!plan.stderr.contains("would cut the SSH session"), "\(plan.stderr)")
        // The session it was written from may reach sshd; another address may not.
        let allowed = try host.enforcer(["test", "--dir", host.directory, "--from", "10.232.0.9", "--to", "box", "--proto", "tcp", "--port", "22"])
        #expect(allowed.status == 0 && allowed.stdout.hasPrefix("allow"), "\(allowed.stdout)\(allowed.stderr)")
        let other = try host.enforcer(["test", "--dir", host.directory, "--from", "10.232.0.77", "--to", "box", "--proto", "tcp", "--port", "22"])
        #expect(other.status == 1 && other.stdout.hasPrefix("deny"), "\(other.stdout)\(other.stderr)")
    }

    @Test func initNeverWritesOverAPolicy() throws {
        let host = try Host()
        try FileManager.default.createDirectory(atPath: host.directory + "/rules.d", withIntermediateDirectories: true)
        try "[system] mine: {\n    address: 10.0.0.1\n}\n".write(toFile: host.directory + "/rules.d/50-mine.policy", atomically: true, encoding: .utf8)
        let refused = try host.enforcer(["init", "--dir", host.directory, "--name", "box"])
        #expect(refused.status == 1)
        #expect(refused.stderr == "enforcer: error: \(host.directory)/rules.d/50-mine.policy already exists; init writes only into a directory without enforcer.conf and policy files, so nothing was written\n")
        #expect(!FileManager.default.fileExists(atPath: host.directory + "/enforcer.conf"))

        try FileManager.default.removeItem(atPath: host.directory + "/rules.d/50-mine.policy")
        try Self.require(host.enforcer(["init", "--dir", host.directory, "--name", "box", "--ssh-from", "ops"]))
        let again = try host.enforcer(["init", "--dir", host.directory])
        #expect(again.status == 1)
        #expect(again.stderr.contains("enforcer.conf, \(host.directory)/rules.d/10-inventory.policy, \(host.directory)/rules.d/20-ssh.policy already exist;"), "\(again.stderr)")
        let ssh = try String(contentsOfFile: host.directory + "/rules.d/20-ssh.policy", encoding: .utf8)
        #expect(ssh.contains("[policy] \"SSH from ops\": {\n    senders: ops\n"), "\(ssh)")
    }
}
