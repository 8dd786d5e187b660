import Compiler
import Foundation

/// The SSH session this process runs in, from SSH_CONNECTION ("client port server port"):
/// an apply that would cut it is refused unless forced.
public struct SSHSession: CustomStringConvertible, Sendable {
    public var client: IPAddress
    public var server: IPAddress
    public var port: UInt16

    public static func current() -> SSHSession? {
        guard let value = ProcessInfo.processInfo.environment["SSH_CONNECTION"] else { return nil }
        let parts = value.split(separator: " ")
        guard parts.count == 4, let client = try? IPAddress.parse(parts[0]), let server = try? IPAddress.parse(parts[2]),
              let port = UInt16(parts[3]) else { return nil }
        return SSHSession(client: client, server: server, port: port)
    }

    /// Whether the ruleset compiled for `system` would refuse this session's packets. Loopback
    /// and flows this host began pass any ruleset; others need a policy that grants them.
    public func wouldBeCut(graph: AccessGraph, system: SystemDefinition, at instant: Date) -> Bool {
        let loopback = ["127.0.0.0/8", "::1"].compactMap { try? AddressBlock.parse($0) }
        if client == server || loopback.contains(where: { $0.contains(client) }) { return false }
        let query = FlowQuery(from: client, to: server, proto: .tcp, port: port, at: instant)
        return !FlowEvaluator(graph: graph, system: system).decide(query).allowed
    }

    public var description: String { "from \(client) to \(server) port \(port)" }
}
