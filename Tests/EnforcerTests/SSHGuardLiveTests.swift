import Foundation
import Testing

/// The SSH guard over a real SSH session without SSH_CONNECTION (as under sudo, whose
/// env_reset removes it): a real sshd in a server namespace, a real ssh client in a client
/// namespace over a veth pair, and enforcer run inside the session with the variable unset.
@Suite(.serialized)
struct SSHGuardLiveTests {
    /// Server namespace (sshd on 10.231.0.1:2222) and client namespace (10.231.0.2), a
    /// policy directory for each case, and the key pairs.
    final class Lab {
        let server: String
        let client: String
        let temp: String
        let state: String
        /// The sshd this lab started (its PidFile's pid).
        var sshd: Int32?
        static let serverAddress = "10.231.0.1", clientAddress = "10.231.0.2", port = "2222"

        init() throws {
            precondition(getuid() == 0, "SSHGuardLiveTests run sshd in network namespaces and must run as root (CI does)")
            let suffix = "\(getpid())-\(Int.random(in: 0..<1_000_000))"
            server = "enssh-s-\(suffix)"
            client = "enssh-c-\(suffix)"
            temp = NSTemporaryDirectory() + "enforcer-ssh-\(suffix)"
            state = temp + "/state"
            try FileManager.default.createDirectory(atPath: temp, withIntermediateDirectories: true)
            for namespace in [server, client] {
                try require(run("/usr/sbin/ip", ["netns", "add", namespace]))
                try require(run("/usr/sbin/ip", ["-n", namespace, "link", "set", "lo", "up"]))
            }
            // Made inside the namespaces, so no name is ever taken in the host's.
            try require(run("/usr/sbin/ip", ["-n", server, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", client]))
            try require(run("/usr/sbin/ip", ["-n", server, "addr", "add", "\(Self.serverAddress)/24", "dev", "vs"]))
            try require(run("/usr/sbin/ip", ["-n", client, "addr", "add", "\(Self.clientAddress)/24", "dev", "vc"]))
            try require(run("/usr/sbin/ip", ["-n", server, "link", "set", "vs", "up"]))
            try require(run("/usr/sbin/ip", ["-n", client, "link", "set", "vc", "up"]))
            try startSSHD()
        }

        deinit {
            if let sshd { kill(sshd, SIGTERM) }
            // The sessions sshd forked (one whose connection a test cut waits for TCP to give up),
            // and the watchdog a --confirm left: every process in the server namespace is the lab's.
            let pids = (try? run("/usr/sbin/ip", ["netns", "pids", server]).stdout) ?? ""
            for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            for namespace in [server, client] { _ = try? run("/usr/sbin/ip", ["netns", "del", namespace]) }
            try? FileManager.default.removeItem(atPath: temp)
        }

        /// sshd with a host key, key-only root login, no PAM, everything in `temp`.
        private func startSSHD() throws {
            for key in ["host_key", "client_key"] {
                try require(run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", "\(temp)/\(key)"]))
            }
            try FileManager.default.copyItem(atPath: "\(temp)/client_key.pub", toPath: "\(temp)/authorized_keys")
            // sshd refuses to start without its privilege separation directory.
            try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
            try """
                ListenAddress \(Self.serverAddress):\(Self.port)
                HostKey \(temp)/host_key
                PidFile \(temp)/sshd.pid
                AuthorizedKeysFile \(temp)/authorized_keys
                UsePAM no
                StrictModes no
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PermitRootLogin prohibit-password

                """.write(toFile: "\(temp)/sshd_config", atomically: true, encoding: .utf8)
            // sshd goes to the background by itself (no -D): a child of the test process that
            // outlives the commands run meanwhile kept Foundation from seeing those exit. It is
            // stopped by the pid it writes to its PidFile, after it listens.
            try require(run("/usr/sbin/ip", ["netns", "exec", server, "/usr/sbin/sshd", "-f", "\(temp)/sshd_config", "-E", "\(temp)/sshd.log"]))
            let start = Date()
            while Date().timeIntervalSince(start) < 10 {
                if let text = try? String(contentsOfFile: "\(temp)/sshd.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    sshd = pid
                    return
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            let text = (try? String(contentsOfFile: "\(temp)/sshd.log", encoding: .utf8)) ?? ""
            Issue.record("sshd did not start within 10 s: \(text)")
        }

        /// `command` run over ssh from the client namespace, in a session on the server.
        func ssh(_ command: String, timeout: Int = 5) throws -> CommandResult {
            try run("/usr/sbin/ip", ["netns", "exec", client, "/usr/bin/ssh", "-i", "\(temp)/client_key", "-p", Self.port,
                                     "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                     "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=\(timeout)", "-o", "ServerAliveInterval=1",
                                     "-o", "ServerAliveCountMax=3", "root@\(Self.serverAddress)", command])
        }

        /// `enforcer ARGS` inside an SSH session, with SSH_CONNECTION removed as sudo does.
        func enforcerOverSSH(_ arguments: String) throws -> CommandResult {
            try ssh("env -u SSH_CONNECTION -u SSH_CLIENT TZ=UTC \(Paths.enforcer) \(arguments) --system srv --state-dir \(state)")
        }

        /// A policy directory: srv (10.231.0.1) and cli (10.231.0.2); `allow` from cli to srv.
        func policy(_ name: String, allow: String) throws -> String {
            let directory = "\(temp)/\(name)"
            try FileManager.default.createDirectory(atPath: directory + "/rules.d", withIntermediateDirectories: true)
            try "[policy]\ntime_window_tz = \"utc\"\n".write(toFile: directory + "/enforcer.conf", atomically: true, encoding: .utf8)
            try """
                [system] srv: {
                    address: \(Self.serverAddress)
                    tags: servers
                }
                [system] cli: {
                    address: \(Self.clientAddress)
                    tags: workstations
                }
                [policy] "\(name)": {
                    senders: workstations
                    receivers: servers
                    allow: \(allow)
                }

                """.write(toFile: directory + "/rules.d/10-lab.policy", atomically: true, encoding: .utf8)
            return directory
        }

        /// The server namespace's whole ruleset.
        func listing() throws -> String {
            try require(run("/usr/sbin/ip", ["netns", "exec", server, "nft", "list", "ruleset"])).stdout
        }
    }

    @discardableResult
    static func require(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        try #require(result.status == 0, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    /// What names the session in every message: the client's address and port, the
    /// server's, and that the sshd above the process found it.
    static var session: Regex<Substring> { #/from 10\.231\.0\.2 port \d+ to 10\.231\.0\.1 port 2222; found by sshd pid \d+, an ancestor of this process/# }

    @Test func theGuardFindsTheSessionWithoutSSHConnection() throws {
        let lab = try Lab()
        // The session really has no SSH_CONNECTION, and goes over the veth, not loopback.
        let environment = try Self.require(lab.ssh("env -u SSH_CONNECTION sh -c 'echo \"[$SSH_CONNECTION]\"; ip -4 -o addr show dev vs'"))
        #expect(environment.stdout.hasPrefix("[]\n") && environment.stdout.contains("10.231.0.1/24"), "\(environment.stdout)")
        let webOnly = try lab.policy("web-only", allow: "tcp/80")
        let webAndSSH = try lab.policy("web-and-ssh", allow: "tcp/80, tcp/2222")

        // A dry run warns, on standard error, naming the session; the plan is still printed.
        let dryRun = try lab.enforcerOverSSH("apply --dry-run --dir \(webOnly)")
        #expect(dryRun.status == 0, "\(dryRun.stderr)")
        #expect(dryRun.stdout.contains("table inet enforcer"))
        #expect(dryRun.stderr.contains("warning: this plan would cut the SSH session it runs in ("), "\(dryRun.stderr)")
        #expect(dryRun.stderr.contains(Self.session), "\(dryRun.stderr)")
        #expect(dryRun.stderr.contains("no policy grants tcp/2222 from 10.231.0.2 to this host"), "\(dryRun.stderr)")
        // A plan that grants the session: no warning.
        let granted = try lab.enforcerOverSSH("apply --dry-run --dir \(webAndSSH)")
        #expect(granted.status == 0 && !granted.stderr.contains("warning"), "\(granted.stderr)")

        // A real apply is refused, and nothing changes.
        let before = try lab.listing()
        let refused = try lab.enforcerOverSSH("apply --dir \(webOnly)")
        #expect(refused.status == 1, "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stderr.contains("refusing to apply: this ruleset would cut the SSH session it runs in ("), "\(refused.stderr)")
        #expect(refused.stderr.contains(Self.session), "\(refused.stderr)")
        #expect(try lab.listing() == before)

        // A policy that grants the session applies, and the session goes on.
        let applied = try Self.require(lab.enforcerOverSSH("apply --dir \(webAndSSH)"))
        #expect(applied.stdout.hasPrefix("applied generation 1 for srv"), "\(applied.stdout)")
        #expect(try lab.listing().contains("web-and-ssh"))
        #expect(try Self.require(lab.ssh("echo still here")).stdout == "still here\n")

        // --force applies: the session is cut (a reset), and so is any new one.
        _ = try lab.enforcerOverSSH("apply --force --dir \(webOnly)")
        let listing = try lab.listing()
        #expect(listing.contains("web-only") && !listing.contains("web-and-ssh"), "\(listing)")
        #expect(try lab.ssh("echo in", timeout: 2).status != 0)
    }

    @Test func confirmIsAllowedAndUndoesTheCut() throws {
        let lab = try Lab()
        let webOnly = try lab.policy("web-only", allow: "tcp/80")
        // With --confirm the apply goes ahead: the session is cut, nobody can confirm, and
        // the watchdog restores the state before (no enforcer table) at the deadline.
        let start = Date()
        _ = try lab.enforcerOverSSH("apply --confirm 5 --dir \(webOnly)")
        if Date().timeIntervalSince(start) < 4 { #expect(try lab.listing().contains("web-only"), "the apply did not go ahead") }
        #expect(try lab.ssh("echo in", timeout: 2).status != 0, "the session was not cut")
        var restored = false
        while Date().timeIntervalSince(start) < 20 {
            if !(try lab.listing().contains("table inet enforcer")) { restored = true; break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        #expect(restored, "the unconfirmed apply was not undone")
        #expect(Date().timeIntervalSince(start) >= 5)
        let log = (try? String(contentsOfFile: lab.state + "/watchdog.log", encoding: .utf8)) ?? ""
        #expect(log.contains("generation 1 was not confirmed by "), "\(log)")
        // Back in.
        #expect(try Self.require(lab.ssh("echo back")).stdout == "back\n")
    }
}
