import Compiler
import Foundation

/// `enforcer init`: a policy directory a newcomer starts from, which checks as written:
/// `enforcer.conf` with the settings people change first, this host in the inventory with
/// the addresses found on its interfaces, and a policy granting SSH to it from a tag, so the
/// first apply does not shut its administrators out (every host is default-deny inbound).
public struct StarterDirectory: Sendable {
    /// This host's system name.
    public var name: String
    /// Its addresses: neither loopback nor link-local (a policy cannot use those).
    public var addresses: [IPAddress]
    /// The tag whose systems may log in over SSH.
    public var sshFrom: String
    /// The admin system's address, and how it was found: the client of the SSH session
    /// `init` runs in, else a placeholder from the documentation range 192.0.2.0/24.
    public var admin: (address: IPAddress, origin: String)

    /// The tag this host gets, which the SSH policy names as its receiver.
    public static let hostTag = "servers"
    static let adminName = "admin-workstation"
    static let placeholder = try! IPAddress.parse("192.0.2.10")

    public init(name: String, addresses: [IPAddress], sshFrom: String, session: SSHSession?) {
        self.name = name
        self.addresses = addresses
        self.sshFrom = sshFrom
        if let session, !session.client.isLoopback {
            admin = (session.client, "the client of the SSH session `enforcer init` ran in (found by \(session.foundBy))")
        } else {
            admin = (Self.placeholder, "a placeholder in 192.0.2.0/24, a range reserved for documentation that no real machine has")
        }
    }

    /// The host's own addresses a policy can name, IPv4 first, each once.
    public static func usableAddresses(_ found: [IPAddress]) -> [IPAddress] {
        let linkLocal = try! AddressBlock.parse("fe80::/10")
        return Array(Set(found.filter { !$0.isLoopback && !linkLocal.contains($0) })).sorted()
    }

    /// Why these values cannot make a directory that checks; nil when they can.
    public func problem() -> String? {
        if !Enrolment.isPlainName(name) {
            return "'\(name)' is not a plain system name (letters, digits, '.', '_', '-'); give one with --name"
        }
        if !Enrolment.isPlainName(sshFrom) { return "--ssh-from '\(sshFrom)' is not a plain tag (letters, digits, '.', '_', '-')" }
        if name == Self.adminName { return "--name '\(name)' is the name init gives the admin system; choose another" }
        if addresses.isEmpty {
            return "found no address on this host but loopback and link-local ones; give an interface its address, or write the inventory by hand"
        }
        return nil
    }

    /// The files, by path relative to the directory, in the order written.
    public var files: [(path: String, text: String)] {
        [("enforcer.conf", configuration), ("rules.d/10-inventory.policy", inventory), ("rules.d/20-ssh.policy", ssh)]
    }

    var configuration: String {
        """
        # enforcer.conf, written by `enforcer init`: the settings that are not policy. Every key
        # is optional; the values shown are the defaults. The README's "enforcer.conf" lists all.

        [policy]
        # The zone of active-hours and time windows written without a timezone: local, utc, or
        # an IANA name such as Europe/Berlin.
        time_window_tz = "local"

        [kernel]
        # enforcer's own nftables table (inet enforcer); it never changes anyone else's.
        table = "enforcer"

        [web]
        # Only on a gateway with web rules: where clients are sent for warn/aup and block pages.
        # By default the gateway's own address on its clients' network, port 8088.
        # portal_url = "http://192.168.50.1:8088/"

        [state]
        # Applied generations, the history of changes, and runtime overrides.
        directory = "/var/lib/enforcer"

        """
    }

    var inventory: String {
        """
        # The systems enforcer knows. `enforcer init` wrote this host with the addresses it
        # found on its interfaces (loopback and link-local left out); add a block for each
        # system that should reach it. Policies name systems by their tags.
        #
        # Every host running enforcer is default-deny inbound: no new connection reaches it
        # (ping, SSH and monitoring included) until a policy grants it. Replies to its own
        # connections, and loopback, always pass.
        [system] \(name): {
            address: \(addresses.map(\.description).joined(separator: ", "))
            tags: \(Self.hostTag)
        }

        """
    }

    var ssh: String {
        """
        # Who may log in to this host over SSH: the systems tagged '\(sshFrom)'. Without a
        # policy like this one, the first apply would cut every SSH session (enforcer refuses
        # that unless given --confirm or --force).
        #
        # \(Self.adminName)'s address is \(admin.origin).
        # Put your administrators' machines here (or give their own [system] blocks the tag
        # '\(sshFrom)'), then see what you get with `enforcer check` and `enforcer apply --dry-run`.
        [system] \(Self.adminName): {
            address: \(admin.address)
            tags: \(sshFrom)
        }

        [policy] "SSH from \(sshFrom)": {
            senders: \(sshFrom)
            receivers: \(Self.hostTag)
            allow: tcp/22
            description: administrators log in over SSH
        }

        """
    }

    /// The files of `files` (and any other policy file) that already exist in `directory`:
    /// init never writes over them.
    public func existing(in directory: String) -> [String] {
        let fm = FileManager.default
        var found = files.map { (directory as NSString).appendingPathComponent($0.path) }.filter { fm.fileExists(atPath: $0) }
        let rules = (directory as NSString).appendingPathComponent("rules.d")
        for name in ((try? fm.contentsOfDirectory(atPath: rules)) ?? []).sorted() where name.hasSuffix(".policy") {
            let path = (rules as NSString).appendingPathComponent(name)
            if !found.contains(path) { found.append(path) }
        }
        return found
    }

    /// Writes the files into `directory` (made if missing), none over an existing one; returns
    /// the paths written.
    public func write(into directory: String) throws(EnforcementError) -> [String] {
        let present = existing(in: directory)
        if !present.isEmpty {
            throw .refused(["enforcer: error: \(present.joined(separator: ", ")) already exist\(present.count == 1 ? "s" : ""); "
                + "init writes only into a directory without enforcer.conf and policy files, so nothing was written"])
        }
        if let problem = problem() { throw .refused(["enforcer: error: \(problem); nothing was written"]) }
        var written: [String] = []
        for file in files {
            let path = (directory as NSString).appendingPathComponent(file.path)
            do {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(file.text.utf8).write(to: URL(fileURLWithPath: path), options: .withoutOverwriting)
            } catch {
                throw .refused(["enforcer: error: cannot write \(path): \(SystemErrno.describe(error))"]
                    + (written.isEmpty ? [] : ["enforcer: wrote \(written.joined(separator: ", ")) before that"]))
            }
            written.append(path)
        }
        return written
    }
}
