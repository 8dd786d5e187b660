import Compiler
import Foundation
import Testing
@testable import Enforcement

/// Finding the SSH session without SSH_CONNECTION (sudo removes it): the /proc text the
/// finder reads, and the finder over fixture process tables.
struct SSHSessionTests {
    // MARK: /proc/PID/stat

    @Test(arguments: [
        // line, pid, command, parent, session, terminal (0: none)
        ("4800 (sshd) S 4700 4800 4800 34816 4900 4194560 925 0 0 0", 4800, "sshd", 4700, 4800, 34816),
        ("5000 (enforcer) R 4990 5000 4900 34816 5000 4194304 1 0 0 0", 5000, "enforcer", 4990, 4900, 34816),
        // The command may hold spaces and parentheses: the fields start after the last ")".
        ("77 (tmux: (server) x) S 1 77 77 0 -1 4194368 0 0 0 0", 77, "tmux: (server) x", 1, 77, 0),
        ("91 (sshd-session) S 90 91 91 0 -1 4194624 0 0 0 0", 91, "sshd-session", 90, 91, 0),
    ] as [(String, Int32, String, Int32, Int32, UInt32)])
    func statLines(_ line: String, _ pid: Int32, _ command: String, _ parent: Int32, _ session: Int32, _ terminal: UInt32) throws {
        let stat = try #require(ProcessStat.parse(line))
        #expect(stat == ProcessStat(pid: pid, command: command, parent: parent, session: session, terminal: terminal))
    }

    @Test(arguments: ["", "4800 sshd S 4700", "4800 (sshd) S", "x (sshd) S 1 2 3 4", "4800 (sshd) S one 2 3 4"])
    func statLinesThatDoNotRead(_ line: String) {
        #expect(ProcessStat.parse(line) == nil)
    }

    @Test(arguments: [
        // tty_nr, /dev/pts number (nil: no terminal, or not a pseudo-terminal)
        (0, nil), (34816, 0), (34819, 3), (34816 + 255, 255), (137 << 8, 256), (1025, nil),  // 1025: /dev/tty1
    ] as [(UInt32, Int?)])
    func pseudoTerminals(_ terminal: UInt32, _ pts: Int?) {
        #expect(ProcessStat(pid: 1, command: "bash", parent: 0, session: 1, terminal: terminal).pseudoTerminal == pts)
    }

    @Test(arguments: [("sshd", true), ("sshd-session", true), ("sshd-auth", true), ("sshdx", false), ("ssh", false), ("bash", false)])
    func sshDaemons(_ command: String, _ yes: Bool) {
        #expect(ProcessStat(pid: 1, command: command, parent: 0, session: 1, terminal: 0).isSSHDaemon == yes)
    }

    // MARK: /proc/net/tcp and tcp6

    @Test(arguments: [
        // line, local, local port, remote, remote port, state, inode
        ("   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21001 1 0000000000000000 100 0 0 10 0",
         "0.0.0.0", 22, "0.0.0.0", 0, 0x0A, 21001),
        ("   1: 0100C80A:0016 0200C80A:D6D8 01 00000000:00000000 02:000A7B5B 00000000     0        0 21050 4 0000000000000000 20 4 31 10 -1",
         "10.200.0.1", 22, "10.200.0.2", 55000, 0x01, 21050),
        ("   2: 0100007F:1F90 0100007F:9C40 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000",
         "127.0.0.1", 8080, "127.0.0.1", 40000, 0x06, 0),
        // tcp6: an IPv4 client of sshd bound to :: is ::ffff:a.b.c.d, read as the IPv4 address.
        ("   0: 0000000000000000FFFF00000100C80A:0016 0000000000000000FFFF00000200C80A:D6D8 01 00000000:00000000 02:000A7B5B 00000000     0        0 30001 4 0000000000000000 20 4 31 10 -1",
         "10.200.0.1", 22, "10.200.0.2", 55000, 0x01, 30001),
        ("   1: 000000FD000000000000000001000000:0016 000000FD000000000000000002000000:C350 01 00000000:00000000 02:000A7B5B 00000000     0        0 30002 4 0000000000000000 20 4 31 10 -1",
         "fd00::1", 22, "fd00::2", 50000, 0x01, 30002),
    ] as [(String, String, UInt16, String, UInt16, UInt8, UInt64)])
    func tcpLines(_ line: String, _ local: String, _ localPort: UInt16, _ remote: String, _ remotePort: UInt16, _ state: UInt8, _ inode: UInt64) throws {
        let entry = try #require(TCPSocketEntry.parse(line: line[...]))
        #expect(entry == TCPSocketEntry(local: try IPAddress.parse(local), localPort: localPort, remote: try IPAddress.parse(remote),
                                        remotePort: remotePort, state: state, inode: inode))
    }

    @Test(arguments: [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
        "   0: 0100007F:0016 0200C80A:D6D8 01 00000000:00000000 02:000A7B5B 00000000     0        0",   // no inode
        "   0: 0100007:0016 0200C80A:D6D8 01 00000000:00000000 02:000A7B5B 00000000     0        0 1",  // 7 hex digits
        "   0: 0100007F:XYZ 0200C80A:D6D8 01 00000000:00000000 02:000A7B5B 00000000     0        0 1",
    ])
    func tcpLinesThatDoNotRead(_ line: String) {
        #expect(TCPSocketEntry.parse(line: line[...]) == nil)
    }

    // MARK: SSH_CONNECTION

    @Test(arguments: [
        ("10.10.1.21 50022 10.20.1.11 22", "10.10.1.21", 50022, "10.20.1.11", 22),
        ("fd00::2 41000 fd00::1 2222", "fd00::2", 41000, "fd00::1", 2222),
    ] as [(String, String, UInt16, String, UInt16)])
    func environment(_ value: String, _ client: String, _ clientPort: UInt16, _ server: String, _ port: UInt16) throws {
        let session = try #require(SSHSession.fromEnvironment(value))
        #expect(session == SSHSession(client: try IPAddress.parse(client), clientPort: clientPort, server: try IPAddress.parse(server),
                                      port: port, evidence: .environment))
    }

    @Test(arguments: ["", "10.10.1.21 50022 10.20.1.11", "host 50022 10.20.1.11 22", "10.10.1.21 50022 10.20.1.11 ssh"])
    func environmentThatDoesNotRead(_ value: String) {
        #expect(SSHSession.fromEnvironment(value) == nil)
    }

    // MARK: The finder

    /// A process table from fixture text: pid → stat line, title, socket inodes.
    struct FixtureTable: ProcessTable {
        var processes: [Int32: (stat: String, title: String, sockets: Set<UInt64>)] = [:]
        var tcp: [String] = []
        var namespaces: [Int32: String] = [:]

        func stat(of pid: Int32) -> String? { processes[pid]?.stat }
        func title(of pid: Int32) -> String? { processes[pid]?.title }
        func socketInodes(of pid: Int32) -> Set<UInt64> { processes[pid]?.sockets ?? [] }
        func tcpTables(of pid: Int32) -> [String] { tcp }
        func processIDs() -> [Int32] { Array(processes.keys) }
        func networkNamespace(of pid: Int32) -> String? { namespaces[pid] ?? (processes[pid] == nil ? nil : "net:[4026531840]") }

        mutating func add(_ pid: Int32, _ command: String, parent: Int32, terminal: UInt32 = 0, title: String? = nil, sockets: Set<UInt64> = []) {
            processes[pid] = ("\(pid) (\(command)) S \(parent) \(pid) \(pid) \(terminal) -1 0 0 0 0 0", title ?? command, sockets)
        }
    }

    static let listening = "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21001 1 0000000000000000 100 0 0 10 0"
    /// The client's connection to sshd: 10.200.0.2:55000 → 10.200.0.1:22.
    static let session = "   1: 0100C80A:0016 0200C80A:D6D8 01 00000000:00000000 02:000A7B5B 00000000     0        0 21050 4 0000000000000000 20 4 31 10 -1"
    /// A connection sshd made outwards for a forwarded port (local port 41000, not listened on).
    static let forwarded = "   2: 0100C80A:A028 0900C80A:0050 01 00000000:00000000 02:000A7B5B 00000000     0        0 21060 4 0000000000000000 20 4 31 10 -1"

    /// sshd (600, listening) → sshd [priv] (4700) → sshd: root@pts/0 (4800) → bash (4900) →
    /// sudo (4990) → enforcer (5000), the session's terminal /dev/pts/0 (34816).
    static func sudoUnderSSH(childHolds: Set<UInt64> = [21050, 21060], monitorHolds: Set<UInt64> = [21050]) -> FixtureTable {
        var table = FixtureTable(tcp: ["  sl  local_address rem_address   st\n\(listening)\n\(session)\n\(forwarded)\n"])
        table.add(1, "systemd", parent: 0)
        table.add(600, "sshd", parent: 1, title: "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", sockets: [21001])
        table.add(4700, "sshd", parent: 600, title: "sshd: root [priv]", sockets: monitorHolds)
        table.add(4800, "sshd", parent: 4700, title: "sshd: root@pts/0", sockets: childHolds)
        table.add(4900, "bash", parent: 4800, terminal: 34816)
        table.add(4990, "sudo", parent: 4900, terminal: 34816)
        table.add(5000, "enforcer", parent: 4990, terminal: 34816)
        return table
    }

    static let client = try! IPAddress.parse("10.200.0.2"), server = try! IPAddress.parse("10.200.0.1")

    @Test func theNearestSSHDAncestorsConnection() {
        let found = SSHSession.find(from: 5000, in: Self.sudoUnderSSH())
        #expect(found == SSHSession(client: Self.client, clientPort: 55000, server: Self.server, port: 22, evidence: .ancestor(4800)))
        #expect(found?.description == "from 10.200.0.2 port 55000 to 10.200.0.1 port 22; found by sshd pid 4800, an ancestor of this process")
    }

    @Test func aFartherAncestorWhenTheNearestHoldsNoConnection() {
        let found = SSHSession.find(from: 5000, in: Self.sudoUnderSSH(childHolds: [21060]))
        #expect(found?.evidence == .ancestor(4700))
        #expect(found?.client == Self.client)
    }

    @Test func theTerminalWhenTheProcessLeftTheSessionsTree() {
        var table = Self.sudoUnderSSH()
        table.add(5000, "enforcer", parent: 1, terminal: 34816)  // started by setsid, reparented to init
        let found = SSHSession.find(from: 5000, in: table)
        #expect(found?.evidence == .terminal(4800, 0))
        #expect(found?.clientPort == 55000)
    }

    @Test func noSessionWithoutSSHD() {
        var table = Self.sudoUnderSSH()
        table.add(5000, "enforcer", parent: 1)  // no terminal: a service
        #expect(SSHSession.find(from: 5000, in: table) == nil)
        table.add(5000, "enforcer", parent: 1, terminal: 34817)  // another terminal, pts/1
        #expect(SSHSession.find(from: 5000, in: table) == nil)
    }

    @Test func aForwardedConnectionIsNotTheSession() {
        #expect(SSHSession.find(from: 5000, in: Self.sudoUnderSSH(childHolds: [21060], monitorHolds: [])) == nil)
    }

    @Test func sshdInAnotherNetworkNamespaceIsNotCut() {
        var table = Self.sudoUnderSSH()
        table.namespaces[5000] = "net:[4026532999]"  // `ip netns exec LAB enforcer apply`: a ruleset for another namespace
        #expect(SSHSession.find(from: 5000, in: table) == nil)
    }

    @Test func aLoopOfParentsEnds() {
        var table = FixtureTable()
        table.add(10, "a", parent: 11)
        table.add(11, "b", parent: 10)
        #expect(SSHSession.find(from: 10, in: table) == nil)
    }
}
