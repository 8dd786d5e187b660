import Compiler
import Foundation

/// What the SSH session finder reads of `/proc`: a protocol, so that its logic runs in tests
/// over fixture text, and `ProcFileSystem` is only the thin reading of the real files.
public protocol ProcessTable {
    /// `/proc/PID/stat`, one line.
    func stat(of pid: Int32) -> String?
    /// `/proc/PID/cmdline` with its NUL separators as spaces: sshd writes its title there
    /// ("sshd: root@pts/0").
    func title(of pid: Int32) -> String?
    /// The inodes of the sockets PID holds open (its `/proc/PID/fd` links `socket:[INODE]`).
    func socketInodes(of pid: Int32) -> Set<UInt64>
    /// `/proc/PID/net/tcp` and `/proc/PID/net/tcp6`: the TCP sockets of PID's network namespace.
    func tcpTables(of pid: Int32) -> [String]
    /// Every process id there is.
    func processIDs() -> [Int32]
    /// PID's network namespace (`/proc/PID/ns/net`, "net:[4026531840]").
    func networkNamespace(of pid: Int32) -> String?
}

/// The fields of `/proc/PID/stat` the finder needs.
public struct ProcessStat: Equatable, Sendable {
    public var pid: Int32
    /// The executable's name, at most 15 bytes ("sshd", "sshd-session", "sudo").
    public var command: String
    public var parent: Int32
    public var session: Int32
    /// The controlling terminal as the kernel numbers devices; 0: none.
    public var terminal: UInt32

    /// Reads one stat line. The command is between the first "(" and the last ")": it may
    /// hold spaces and parentheses of its own, so the fields after it are counted from there.
    public static func parse(_ line: String) -> ProcessStat? {
        guard let open = line.firstIndex(of: "("), let close = line.lastIndex(of: ")"), open < close,
              let pid = Int32(line[..<open].trimmingCharacters(in: .whitespaces)) else { return nil }
        let rest = line[line.index(after: close)...].split(separator: " ")
        // state, ppid, pgrp, session, tty_nr
        guard rest.count >= 5, let parent = Int32(rest[1]), let session = Int32(rest[3]), let terminal = Int32(rest[4]) else { return nil }
        return ProcessStat(pid: pid, command: String(line[line.index(after: open)..<close]), parent: parent, session: session,
                           terminal: UInt32(bitPattern: terminal))
    }

    /// Whether this is an sshd process (OpenSSH 9.8 and later name the per-connection
    /// process `sshd-session`).
    public var isSSHDaemon: Bool { command == "sshd" || command.hasPrefix("sshd-") }

    /// The pseudo-terminal's number when the controlling terminal is one (`/dev/pts/N`:
    /// majors 136 to 143), which sshd names in its title.
    public var pseudoTerminal: Int? {
        guard terminal != 0 else { return nil }
        let major = Int((terminal >> 8) & 0xfff), minor = Int((terminal & 0xff) | ((terminal >> 12) & 0xfff00))
        guard (136...143).contains(major) else { return nil }
        return (major - 136) * 256 + minor
    }
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`.
public struct TCPSocketEntry: Equatable, Sendable {
    public enum State: UInt8, Sendable { case established = 0x01, listen = 0x0A }
    public var local: IPAddress
    public var localPort: UInt16
    public var remote: IPAddress
    public var remotePort: UInt16
    /// The kernel's TCP state number (01 established, 0A listen, …).
    public var state: UInt8
    public var inode: UInt64

    /// Every socket line of a table; the header and lines that do not read are left out.
    public static func parse(table text: String) -> [TCPSocketEntry] {
        text.split(separator: "\n").compactMap(parse(line:))
    }

    /// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`, addresses in hex.
    public static func parse(line: Substring) -> TCPSocketEntry? {
        let fields = line.split(separator: " ")
        guard fields.count >= 10, fields[0].hasSuffix(":"),
              let (local, localPort) = endpoint(fields[1]), let (remote, remotePort) = endpoint(fields[2]),
              let state = UInt8(fields[3], radix: 16), let inode = UInt64(fields[9]) else { return nil }
        return TCPSocketEntry(local: local, localPort: localPort, remote: remote, remotePort: remotePort, state: state, inode: inode)
    }

    /// `0100007F:0016`: the address as the kernel holds it in memory, printed 32 bits at a
    /// time in the host's byte order (these hosts are little-endian), then the port. An
    /// IPv4 client of a socket bound to `::` shows as `::ffff:a.b.c.d`: it is the IPv4 address.
    static func endpoint(_ text: Substring) -> (IPAddress, UInt16)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts[0].count == 8 || parts[0].count == 32, let port = UInt16(parts[1], radix: 16) else { return nil }
        var bytes: [UInt8] = []
        var index = parts[0].startIndex
        while index < parts[0].endIndex {
            let next = parts[0].index(index, offsetBy: 8)
            guard let printed = UInt32(parts[0][index..<next], radix: 16) else { return nil }
            let word = UInt32(bigEndian: printed)
            bytes += [UInt8(word >> 24), UInt8(word >> 16 & 0xff), UInt8(word >> 8 & 0xff), UInt8(word & 0xff)]
            index = next
        }
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff { bytes = Array(bytes[12...]) }
        guard let address = IPAddress(bytes: bytes) else { return nil }
        return (address, port)
    }
}

/// The real `/proc`.
public struct ProcFileSystem: ProcessTable {
    public init() {}

    public func stat(of pid: Int32) -> String? { read("/proc/\(pid)/stat") }

    public func title(of pid: Int32) -> String? {
        read("/proc/\(pid)/cmdline").map { String($0.map { $0 == "\0" ? " " : $0 }).trimmingCharacters(in: .whitespaces) }
    }

    public func socketInodes(of pid: Int32) -> Set<UInt64> {
        let directory = "/proc/\(pid)/fd"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return Set(names.compactMap { name in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(name)"),
                  target.hasPrefix("socket:["), target.hasSuffix("]") else { return nil }
            return UInt64(target.dropFirst("socket:[".count).dropLast())
        })
    }

    public func tcpTables(of pid: Int32) -> [String] {
        ["tcp", "tcp6"].compactMap { read("/proc/\(pid)/net/\($0)") }
    }

    public func processIDs() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    }

    public func networkNamespace(of pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
    }

    private func read(_ path: String) -> String? {
        (try? Data(contentsOf: URL(fileURLWithPath: path))).map { String(decoding: $0, as: UTF8.self) }
    }
}
