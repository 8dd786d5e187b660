/// Renders the ruleset model in the syntax `nft -f` reads (and close to what `nft list` prints).
public enum NFTText {
    public static func render(_ ruleset: Ruleset) -> String {
        var out = ""
        out.reserveCapacity(4096 + ruleset.table.sets.reduce(0) { $0 + $1.elements.count * 40 })
        let table = ruleset.table
        out += "table \(table.family.rawValue) \(table.name) {\n"
        var first = true
        for set in table.sets {
            if !first { out += "\n" }
            first = false
            render(set, into: &out)
        }
        for counter in table.counters {
            if !first { out += "\n" }
            first = false
            out += "\tcounter \(counter) {\n\t}\n"
        }
        for chain in table.chains {
            if !first { out += "\n" }
            first = false
            render(chain, into: &out)
        }
        out += "}\n"
        return out
    }

    static func render(_ set: NamedSet, into out: inout String) {
        out += "\t\(set.isMap ? "map" : "set") \(set.name) {\n"
        out += "\t\ttype \(set.key.map(\.rawValue).joined(separator: " . "))"
        if let data = set.data { out += " : \(data.rawValue)" }
        out += "\n"
        if let size = set.size { out += "\t\tsize \(size)\n" }
        var flags: [String] = []
        if set.flags.contains(.constant) { flags.append("constant") }
        if set.flags.contains(.interval) { flags.append("interval") }
        if set.flags.contains(.dynamic) { flags.append("dynamic") }
        if set.flags.contains(.timeout) { flags.append("timeout") }
        if !flags.isEmpty { out += "\t\tflags \(flags.joined(separator: ","))\n" }
        if let timeout = set.timeout { out += "\t\ttimeout \(timeout)s\n" }
        if let comment = set.comment { out += "\t\tcomment \(quoted(comment))\n" }
        if !set.elements.isEmpty {
            out += "\t\telements = { "
            for (index, element) in set.elements.enumerated() {
                if index > 0 { out += ",\n\t\t\t     " }
                render(element, into: &out)
            }
            out += " }\n"
        }
        out += "\t}\n"
    }

    static func render(_ element: SetElement, into out: inout String) {
        for (index, part) in element.key.enumerated() {
            if index > 0 { out += " . " }
            out += text(part)
        }
        if let timeout = element.timeout { out += " timeout \(timeout)s" }
        if let comment = element.comment { out += " comment \(quoted(comment))" }
        if let verdict = element.verdict { out += " : \(text(verdict))" }
    }

    static func render(_ chain: Chain, into out: inout String) {
        out += "\tchain \(chain.name) {\n"
        if let comment = chain.comment { out += "\t\tcomment \(quoted(comment))\n" }
        if let base = chain.base {
            let priority = base.priority == 0 ? "filter" : base.priority > 0 ? "filter + \(base.priority)" : "filter - \(-base.priority)"
            out += "\t\ttype filter hook \(base.hook.rawValue) priority \(priority); policy \(text(base.policy));\n"
        }
        for rule in chain.rules {
            out += "\t\t" + text(rule) + "\n"
        }
        out += "\t}\n"
    }

    public static func text(_ rule: Rule) -> String {
        var words = rule.expressions.map(text)
        if let comment = rule.comment { words.append("comment \(quoted(comment))") }
        return words.joined(separator: " ")
    }

    static func text(_ expression: RuleExpression) -> String {
        switch expression {
        case let .compare(field, op, constant):
            let value = text(constant, for: field)
            return op == .equal ? "\(text(field)) \(value)" : "\(text(field)) != \(value)"
        case let .maskedCompare(field, mask, op, value):
            return "\(text(field)) & \(hex(mask)) \(op.rawValue) \(hex(value))"
        case let .anyOf(field, constants):
            return "\(text(field)) { \(constants.map { text($0, for: field) }.joined(separator: ", ")) }"
        case .conntrackState(let states):
            return "ct state \(states.map(\.rawValue).joined(separator: ","))"
        case let .tcpFlags(mask, equal):
            return "tcp flags & \(flagNames(mask)) == \(flagNames(equal))"
        case let .lookup(fields, mask, set):
            let key = fields.map(text).joined(separator: " . ")
            return mask.map { "\(key) & \(hex($0)) @\(set)" } ?? "\(key) @\(set)"
        case let .verdictMap(fields, map):
            return "\(fields.map(text).joined(separator: " . ")) vmap @\(map)"
        case let .setConntrackMark(keep, value):
            return "ct mark set ct mark & \(hex(keep)) | \(hex(value))"
        case let .setPacketMark(keep, value):
            return "meta mark set meta mark & \(hex(keep)) | \(hex(value))"
        case .counter:
            return "counter"
        case .namedCounter(let name):
            return "counter name \(quoted(name))"
        case .reject(.tcpReset):
            return "reject with tcp reset"
        case .reject(.icmpxPortUnreachable):
            return "reject with icmpx port-unreachable"
        case .reject(.icmpxAdminProhibited):
            return "reject with icmpx admin-prohibited"
        case let .rateOver(fields, set, perSecond, burst):
            return "update @\(set) { \(fields.map(text).joined(separator: " . ")) limit rate over \(perSecond)/second burst \(burst) packets }"
        case let .queue(number, bypass):
            return "queue num \(number)\(bypass ? " bypass" : "")"
        case .verdict(let verdict):
            return text(verdict)
        }
    }

    static func text(_ field: Field) -> String {
        switch field {
        case .inputInterface: "iif"
        case .l4Protocol: "meta l4proto"
        case .nfProtocol: "meta nfproto"
        case .packetMark: "meta mark"
        case .ipSource: "ip saddr"
        case .ipDestination: "ip daddr"
        case .ip6Source: "ip6 saddr"
        case .ip6Destination: "ip6 daddr"
        case .ip6HopLimit: "ip6 hoplimit"
        case .transportSourcePort: "th sport"
        case .transportDestinationPort: "th dport"
        case .udpSourcePort: "udp sport"
        case .udpDestinationPort: "udp dport"
        case .tcpDestinationPort: "tcp dport"
        case .icmpType: "icmp type"
        case .icmpv6Type: "icmpv6 type"
        case .conntrackMark: "ct mark"
        case .conntrackDirection: "ct direction"
        }
    }

    static func text(_ constant: Constant, for field: Field) -> String {
        switch constant {
        case .number(let n):
            switch field {
            case .nfProtocol: return n == 2 ? "ipv4" : n == 10 ? "ipv6" : String(n)
            case .conntrackMark, .packetMark: return hex(n)
            default: return String(n)
            }
        case .interface(let name): return quoted(name)
        case .proto(let proto): return proto.name
        case .port(let port): return String(port)
        case .direction(let direction): return direction.rawValue
        case .icmpType(let type):
            switch type {
            case .echoReply: return "echo-reply"
            case .destinationUnreachable: return "destination-unreachable"
            case .echoRequest: return "echo-request"
            case .timeExceeded: return "time-exceeded"
            case .parameterProblem: return "parameter-problem"
            }
        case .icmpv6Type(let type):
            switch type {
            case .destinationUnreachable: return "destination-unreachable"
            case .packetTooBig: return "packet-too-big"
            case .timeExceeded: return "time-exceeded"
            case .parameterProblem: return "parameter-problem"
            case .mldListenerQuery: return "mld-listener-query"
            case .mldListenerReport: return "mld-listener-report"
            case .mldListenerDone: return "mld-listener-done"
            case .routerSolicit: return "nd-router-solicit"
            case .routerAdvert: return "nd-router-advert"
            case .neighborSolicit: return "nd-neighbor-solicit"
            case .neighborAdvert: return "nd-neighbor-advert"
            case .mld2ListenerReport: return "mld2-listener-report"
            }
        }
    }

    static func text(_ verdict: Verdict) -> String {
        switch verdict {
        case .accept: "accept"
        case .drop: "drop"
        case .return: "return"
        case .jump(let chain): "jump \(chain)"
        case .goto(let chain): "goto \(chain)"
        }
    }

    static func text(_ part: KeyPart) -> String {
        switch part {
        case .addresses(let range):
            if range.first == range.last { return range.first.description }
            let cidrs = blocks(of: range)
            if cidrs.count == 1, let only = cidrs.first { return only.description }
            return "\(range.first)-\(range.last)"
        case .proto(let proto): return proto.name
        case .ports(let ports): return ports.first == ports.last ? String(ports.first) : "\(ports.first)-\(ports.last)"
        case .mark(let mark): return hex(mark)
        }
    }

    static func flagNames(_ bits: UInt8) -> String {
        let names: [(UInt8, String)] = [(0x01, "fin"), (0x02, "syn"), (0x04, "rst"), (0x08, "psh"), (0x10, "ack"), (0x20, "urg")]
        let parts = names.filter { bits & $0.0 != 0 }.map(\.1)
        return parts.count == 1 ? parts[0] : "(\(parts.joined(separator: " | ")))"
    }

    static func hex(_ value: UInt32) -> String { "0x" + ZeroPadded.string(value, width: 8, radix: 16) }

    /// A comment as nft writes and reads it: quoted, nothing escaped (`NFTComment`).
    static func quoted(_ text: String) -> String {
        "\"" + NFTComment.fitted(text) + "\""
    }
}
