import Foundation
@testable import Compiler

/// Walks the compiled ruleset model the way the kernel would for the first packet of a
/// flow, so tests can check that the ruleset and `enforcer test` agree.
struct RulesetInterpreter {
    struct Packet {
        var source: IPAddress
        var destination: IPAddress
        var proto: IPProtocol
        var port: UInt16
        var state: ConntrackState = .new
        var conntrackMark: UInt32 = 0
        var inputInterface = "eth0"
    }

    enum Outcome: Equatable { case accept, drop, reject }

    let table: Table

    init(_ ruleset: Ruleset) { table = ruleset.table }

    func run(_ packet: Packet, hook: Hook) -> (Outcome, UInt32) {
        guard let chain = table.chains.first(where: { $0.base?.hook == hook && $0.base?.priority == 0 }) else { return (.accept, 0) }
        var packet = packet
        let outcome = run(chain, &packet) ?? (chain.base?.policy == .accept ? .accept : .drop)
        return (outcome, packet.conntrackMark)
    }

    /// nil: fell off the end of the chain (return to the caller).
    private func run(_ chain: Chain, _ packet: inout Packet) -> Outcome? {
        for rule in chain.rules {
            var matched = true
            for expression in rule.expressions where matched {
                switch evaluate(expression, &packet) {
                case .next: continue
                case .noMatch: matched = false
                case .verdict(let verdict):
                    switch verdict {
                    case .accept: return .accept
                    case .drop: return .drop
                    case .return: return nil
                    case .jump(let name):
                        if let outcome = run(table.chain(named: name)!, &packet) { return outcome }
                        matched = false  // continue with the next rule after the jump returns
                    case .goto(let name):
                        return run(table.chain(named: name)!, &packet)
                    }
                case .reject: return .reject
                }
            }
        }
        return nil
    }

    private enum Step { case next, noMatch, verdict(Verdict), reject }

    /// A field's value in this packet.
    private enum Value: Equatable {
        case constant(Constant)
        case address(IPAddress)
    }

    private func evaluate(_ expression: RuleExpression, _ packet: inout Packet) -> Step {
        switch expression {
        case let .compare(field, op, constant):
            guard let value = read(field, packet) else { return .noMatch }
            return (value == .constant(constant)) == (op == .equal) ? .next : .noMatch
        case let .maskedCompare(field, mask, op, value):
            guard case .constant(.number(let n))? = read(field, packet) else { return .noMatch }
            return ((n & mask) == value) == (op == .equal) ? .next : .noMatch
        case let .anyOf(field, constants):
            guard let value = read(field, packet) else { return .noMatch }
            return constants.contains { value == .constant($0) } ? .next : .noMatch
        case .conntrackState(let states):
            return states.contains(packet.state) ? .next : .noMatch
        case .tcpFlags:
            return .noMatch
        case .rateOver:
            // One packet at a time is never over a rate.
            return .noMatch
        case let .lookup(fields, mask, name):
            let key = fields.compactMap { read($0, packet) }
            guard key.count == fields.count, let set = table.set(named: name) else { return .noMatch }
            return set.elements.contains { matches($0, key, mask: mask) } ? .next : .noMatch
        case let .verdictMap(fields, name):
            let key = fields.compactMap { read($0, packet) }
            guard key.count == fields.count, let map = table.set(named: name),
                  let element = map.elements.first(where: { matches($0, key, mask: nil) }), let verdict = element.verdict else { return .noMatch }
            return .verdict(verdict)
        case let .setConntrackMark(keep, value):
            packet.conntrackMark = packet.conntrackMark & keep | value
            return .next
        case .setPacketMark, .counter, .namedCounter:
            return .next
        case .reject:
            return .reject
        case .queue:
            return .verdict(.accept)
        case .verdict(let verdict):
            return .verdict(verdict)
        }
    }

    private func read(_ field: Field, _ packet: Packet) -> Value? {
        let v4 = packet.source.family == .v4
        let ported = packet.proto == .tcp || packet.proto == .udp
        switch field {
        case .inputInterface: return .constant(.interface(packet.inputInterface))
        case .l4Protocol: return .constant(.proto(packet.proto))
        case .nfProtocol: return .constant(.number(v4 ? 2 : 10))
        case .conntrackMark: return .constant(.number(packet.conntrackMark))
        case .packetMark: return .constant(.number(0))
        case .conntrackDirection: return .constant(.direction(.original))
        case .ipSource: return v4 ? .address(packet.source) : nil
        case .ip6Source: return v4 ? nil : .address(packet.source)
        case .ipDestination: return v4 ? .address(packet.destination) : nil
        case .ip6Destination: return v4 ? nil : .address(packet.destination)
        case .transportDestinationPort: return ported ? .constant(.port(packet.port)) : nil
        case .tcpDestinationPort: return packet.proto == .tcp ? .constant(.port(packet.port)) : nil
        case .udpDestinationPort: return packet.proto == .udp ? .constant(.port(packet.port)) : nil
        case .udpSourcePort: return packet.proto == .udp ? .constant(.port(40000)) : nil
        case .transportSourcePort: return ported ? .constant(.port(40000)) : nil
        case .icmpType: return packet.proto == .icmp ? .constant(.icmpType(.echoRequest)) : nil
        case .icmpv6Type: return packet.proto == .icmpv6 ? .constant(.number(128)) : nil
        case .ip6HopLimit: return v4 ? nil : .constant(.number(64))
        }
    }

    private func matches(_ element: SetElement, _ key: [Value], mask: UInt32?) -> Bool {
        guard element.key.count == key.count else { return false }
        for (part, value) in zip(element.key, key) {
            switch (part, value) {
            case let (.addresses(range), .address(a)): if !range.contains(a) { return false }
            case let (.proto(p), .constant(.proto(q))): if p != q { return false }
            case let (.ports(range), .constant(.port(port))): if !range.contains(port) { return false }
            case let (.mark(m), .constant(.number(n))): if m != (mask.map { n & $0 } ?? n) { return false }
            default: return false
            }
        }
        return true
    }
}
