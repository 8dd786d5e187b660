import Compiler
import Foundation

/// The SSH session this process runs in: an apply that would cut it is refused unless
/// forced or given `--confirm`, and a dry run warns.
///
/// `SSH_CONNECTION` ("client port server port") says it, but sudo's `env_reset` removes it,
/// and `sudo enforcer apply` is the usual way to run it. So without it the session is found
/// as sshd knows it: the sshd process above this one (or, for a process started elsewhere on
/// the same terminal, the sshd that serves that terminal) and its established TCP connection
/// to the port sshd listens on: the same four values.
public struct SSHSession: CustomStringConvertible, Sendable, Equatable {
    public enum Evidence: Sendable, Equatable {
        case environment
        /// sshd pid, an ancestor of this process.
        case ancestor(Int32)
        /// sshd pid, serving the pseudo-terminal /dev/pts/N this process has.
        case terminal(Int32, Int)
    }

    public var client: IPAddress
    public var clientPort: UInt16?
    public var server: IPAddress
    public var port: UInt16
    public var evidence: Evidence

    public init(client: IPAddress, clientPort: UInt16?, server: IPAddress, port: UInt16, evidence: Evidence) {
        self.client = client
        self.clientPort = clientPort
        self.server = server
        self.port = port
        self.evidence = evidence
    }

    /// The session of this process: `SSH_CONNECTION` when set, else what /proc says.
    public static func current() -> SSHSession? {
        if let value = ProcessInfo.processInfo.environment["SSH_CONNECTION"], let session = fromEnvironment(value) { return session }
        return find(from: getpid(), in: ProcFileSystem())
    }

    /// `SSH_CONNECTION`: "client client-port server server-port".
    public static func fromEnvironment(_ value: String) -> SSHSession? {
        let parts = value.split(separator: " ")
        guard parts.count == 4, let client = try? IPAddress.parse(parts[0]), let server = try? IPAddress.parse(parts[2]),
              let port = UInt16(parts[3]) else { return nil }
        return SSHSession(client: client, clientPort: UInt16(parts[1]), server: server, port: port, evidence: .environment)
    }

    /// The session of process `pid`: through its nearest sshd ancestor with a connection,
    /// else through the sshd whose title names `pid`'s pseudo-terminal (a process moved out
    /// of the session's tree, such as one `setsid` started, still has the terminal).
    public static func find(from pid: Int32, in table: some ProcessTable) -> SSHSession? {
        var seen = Set<Int32>()
        var current = pid
        var own: ProcessStat?
        while current > 1, seen.insert(current).inserted, let stat = table.stat(of: current).flatMap(ProcessStat.parse) {
            if own == nil { own = stat }
            if stat.isSSHDaemon, let found = connection(of: current, in: table, own: pid) {
                return SSHSession(found, evidence: .ancestor(current))
            }
            current = stat.parent
        }
        guard let terminal = own?.pseudoTerminal else { return nil }
        for candidate in table.processIDs().sorted() {
            guard let stat = table.stat(of: candidate).flatMap(ProcessStat.parse), stat.isSSHDaemon,
                  table.title(of: candidate)?.hasSuffix("@pts/\(terminal)") == true,
                  let found = connection(of: candidate, in: table, own: pid) else { continue }
            return SSHSession(found, evidence: .terminal(candidate, terminal))
        }
        return nil
    }

    /// The established connection `pid` holds whose local port something listens on: the
    /// connection a client made to sshd, not one sshd made outwards for a forwarded port.
    /// None when sshd is in another network namespace than `own`: a ruleset applied here
    /// (`ip netns exec … enforcer apply`) cannot touch its connection.
    static func connection(of pid: Int32, in table: some ProcessTable, own: Int32) -> TCPSocketEntry? {
        if let ours = table.networkNamespace(of: own), let theirs = table.networkNamespace(of: pid), ours != theirs { return nil }
        let inodes = table.socketInodes(of: pid)
        guard !inodes.isEmpty else { return nil }
        let entries = table.tcpTables(of: pid).flatMap(TCPSocketEntry.parse(table:))
        let listening = Set(entries.filter { $0.state == TCPSocketEntry.State.listen.rawValue }.map(\.localPort))
        return entries.first { $0.state == TCPSocketEntry.State.established.rawValue && inodes.contains($0.inode) && listening.contains($0.localPort) }
    }

    private init(_ entry: TCPSocketEntry, evidence: Evidence) {
        self.init(client: entry.remote, clientPort: entry.remotePort, server: entry.local, port: entry.localPort, evidence: evidence)
    }

    /// Whether the ruleset compiled for `system` would refuse this session's packets. Loopback
    /// and flows this host began pass any ruleset; others need a policy that grants them.
    public func wouldBeCut(graph: AccessGraph, system: SystemDefinition, at instant: Date) -> Bool {
        let loopback = ["127.0.0.0/8", "::1"].compactMap { try? AddressBlock.parse($0) }
        if client == server || loopback.contains(where: { $0.contains(client) }) { return false }
        let query = FlowQuery(from: client, to: server, proto: .tcp, port: port, at: instant)
        return !FlowEvaluator(graph: graph, system: system).decide(query).allowed
    }

    /// How the session was found, in words.
    public var foundBy: String {
        switch evidence {
        case .environment: "SSH_CONNECTION"
        case .ancestor(let pid): "sshd pid \(pid), an ancestor of this process"
        case .terminal(let pid, let terminal): "sshd pid \(pid), which serves this process's terminal /dev/pts/\(terminal)"
        }
    }

    public var description: String {
        "from \(client)\(clientPort.map { " port \($0)" } ?? "") to \(server) port \(port); found by \(foundBy)"
    }

    /// The dry run's warning about a plan that cuts this session.
    public var dryRunWarning: String {
        "enforcer: warning: this plan would cut the SSH session it runs in (\(self)): no policy grants tcp/\(port) from \(client) to this host; "
            + "`enforcer apply` refuses it unless given --confirm DURATION (undone unless confirmed in time) or --force"
    }
}
