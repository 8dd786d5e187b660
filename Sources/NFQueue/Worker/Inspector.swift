import Compiler
import Foundation

/// How a judged flow goes on.
public enum FlowOutcome: String, Sendable, Hashable {
    case permit
    /// Reset both ways.
    case deny
    /// warn/aup, and deny with `deny_page`, on plain HTTP: the client gets the portal
    /// redirect, the server a reset.
    case redirect
}

/// The worker's settings, from enforcer.conf.
public struct InspectorSettings: Sendable {
    public var layout: MarkLayout
    /// For flows whose first bytes cannot be judged.
    public var fail: Config.FailMode
    public var portalURL: String
    /// Denied plain-HTTP requests are redirected to the portal's block page (`[web] deny_page`).
    public var denyPage = true
    /// Worked out once per redirect to it, which builds a response anyway.
    public var blockPageURL: String { Config.blockPageURL(portalURL: portalURL) }
    /// Bytes kept per flow while waiting for a whole ClientHello or request head.
    public var bufferLimit = 32 * 1024
    /// Data packets a flow may send before it must be judged.
    public var maxPacketsUndecided = 64
    public var maxFlows = 65_536
    public var flowTimeout = 10.0

    public init(layout: MarkLayout, fail: Config.FailMode, portalURL: String) {
        self.layout = layout
        self.fail = fail
        self.portalURL = portalURL
    }

    public init(config: Config) {
        self.init(layout: MarkLayout(mask: config.markMask), fail: config.webFail, portalURL: config.portalURL)
        denyPage = config.denyPage
    }
}

/// One decision, for the log: what was seen and why the flow goes the way it goes.
public struct Judgement: Sendable, CustomStringConvertible {
    public var flow: FlowKey
    public var outcome: FlowOutcome
    /// "tls" or "http", when the first bytes said which.
    public var kind: String?
    public var host: String?
    /// TLS: the ALPN protocols offered (empty when none) and whether an ECH extension was there.
    public var alpn: [String]?
    public var encryptedClientHello = false
    /// HTTP: the request's method and URL.
    public var method: String?
    public var url: String?
    /// The matcher's answer; nil when the fail verdict decided.
    public var decision: WebDecision?
    /// Why the fail verdict was applied, why a warn/aup acted as deny, or why a deny got no
    /// block page.
    public var reason: String?

    public init(flow: FlowKey, outcome: FlowOutcome, kind: String? = nil, host: String? = nil, decision: WebDecision? = nil, reason: String? = nil) {
        self.flow = flow
        self.outcome = outcome
        self.kind = kind
        self.host = host
        self.decision = decision
        self.reason = reason
    }

    public var description: String {
        var text: [UInt8] = []
        text.reserveCapacity(192)
        appendLine(to: &text)
        text.removeLast()
        return String(decoding: text, as: UTF8.self)
    }

    /// The log line, newline included, appended as bytes: one of these is made for every
    /// judged flow, so no strings are built for it, and its room is reserved once.
    /// `repeated`: how many lines like it were left out before it (see `FlowLogFilter`).
    public func appendLine(to text: inout [UInt8], repeated: Int = 0) {
        text.append(addingCapacity: lineCapacity) { writeLine(to: &$0, repeated: repeated) }
    }

    /// At least the bytes `writeLine` writes: each variable text twice over (escaping at most
    /// doubles it) with its quotes, and 256 for the fixed words, the flow's endpoints and a
    /// `repeated=` count.
    private var lineCapacity: Int {
        func room(_ text: String?) -> Int { text.map { 2 * $0.utf8.count + 2 } ?? 0 }
        var count = 256 + FlowKey.maxDescriptionLength
        count += room(kind) + room(host) + room(method) + room(url) + room(reason)
        if let alpn { for name in alpn { count += 2 * name.utf8.count + 3 } }
        if let decision { count += room(decision.rule) + room(decision.pattern) }
        return count
    }

    /// `level=info msg=flow outcome=deny client=… server=… proto=tls host=bit.ly alpn=h2
    /// ech=no action=deny rule=… pattern="domain bit.ly"`: logfmt, as every line of the
    /// daemon's log. Host, URL, method and ALPN names come from the client: quoted and
    /// escaped where they hold a space, a quote, `=` or a control character, so no request
    /// can forge a field or a line of its own.
    private func writeLine(to out: inout OutputSpan<UInt8>, repeated: Int) {
        out.write(Self.lineStart)
        out.write(outcome.rawValue)
        flow.writeEndpoints(to: &out)
        if let kind { out.write(Self.protoLabel); out.writeValue(kind) }
        if let host { out.write(Self.hostLabel); out.writeValue(host) }
        if let alpn {
            out.write(Self.alpnLabel)
            if alpn.isEmpty { out.append(UInt8(ascii: "-")) } else { out.writeValue(alpn.joined(separator: ",")) }
            out.write(encryptedClientHello ? Self.echYes : Self.echNo)
        }
        if let method, let url {
            out.write(Self.methodLabel)
            out.writeValue(method)
            out.write(Self.urlLabel)
            out.writeValue(url)
        }
        if let decision {
            out.write(Self.actionLabel)
            out.write(decision.action.rawValue)
            if let rule = decision.rule {
                out.write(Self.ruleLabel)
                out.writeValue(rule)
                if let pattern = decision.pattern { out.write(Self.patternLabel); out.writeValue(pattern) }
            } else {
                out.write(Self.defaultLabel)
            }
        }
        if let reason { out.write(Self.reasonLabel); out.writeValue(reason) }
        if repeated > 0 { out.write(Self.repeatedLabel); out.writeDecimal(repeated) }
        out.append(UInt8(ascii: "\n"))
    }

    // The line's fixed words, as bytes once (appending a literal's `utf8` goes through
    // String's indices byte by byte).
    private static let lineStart = Array("level=info msg=flow outcome=".utf8)
    private static let protoLabel = Array(" proto=".utf8)
    private static let hostLabel = Array(" host=".utf8)
    private static let alpnLabel = Array(" alpn=".utf8)
    private static let echNo = Array(" ech=no".utf8)
    private static let echYes = Array(" ech=yes".utf8)
    private static let methodLabel = Array(" method=".utf8)
    private static let urlLabel = Array(" url=".utf8)
    private static let actionLabel = Array(" action=".utf8)
    private static let ruleLabel = Array(" rule=".utf8)
    private static let patternLabel = Array(" pattern=".utf8)
    private static let defaultLabel = Array(" default_action=true".utf8)
    private static let reasonLabel = Array(" reason=".utf8)
    private static let repeatedLabel = Array(" repeated=".utf8)
}

/// What to do with one queued packet.
public struct PacketAction: Sendable {
    public var verdict: PacketVerdict
    /// Segments to send (resets, the redirect), IP header first.
    public var segments: [ForgedSegment] = []
    public var judgement: Judgement?
}

/// Queue counters, for `status` and the log.
public struct WorkerCounters: Sendable, Codable, Hashable {
    public var packets = 0
    public var permitted = 0
    public var denied = 0
    public var redirected = 0
    /// Flows that got the fail verdict (unparseable, too long, too slow, table full, a
    /// pattern PCRE2 gave up on).
    public var failVerdicts = 0
    /// Of those, flows whose rule had a pattern PCRE2 gave up on (a match limit).
    public var matchErrors = 0
    /// Packets no TCP stack sends on the connection the worker follows (a second SYN with
    /// another sequence number, bytes before the stream's start): dropped, never passed.
    public var strayDropped = 0
    public var flowsTracked = 0
    public var flowsExpired = 0
    /// Decided flows by web rule ("" where `default_action` decided) and by the rule's action
    /// (`permit`, `deny`, `warn`, `aup`, or `fail` where the fail verdict decided).
    public var verdictsByRule: [String: [String: Int]] = [:]

    public init() {}

    mutating func countVerdict(_ judgement: borrowing Judgement) {
        let action = judgement.decision.flatMap { $0.matchError == nil ? $0.action.rawValue : nil } ?? "fail"
        verdictsByRule[judgement.decision?.rule ?? "", default: [:]][action, default: 0] += 1
    }
}

extension WorkerCounters {
    /// daemon.json written before a counter existed still reads, that counter at 0.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func count(_ key: CodingKeys) throws -> Int { try container.decodeIfPresent(Int.self, forKey: key) ?? 0 }
        packets = try count(.packets)
        permitted = try count(.permitted)
        denied = try count(.denied)
        redirected = try count(.redirected)
        failVerdicts = try count(.failVerdicts)
        matchErrors = try count(.matchErrors)
        strayDropped = try count(.strayDropped)
        flowsTracked = try count(.flowsTracked)
        flowsExpired = try count(.flowsExpired)
        verdictsByRule = try container.decodeIfPresent([String: [String: Int]].self, forKey: .verdictsByRule) ?? [:]
    }
}

/// Judges flows from their first bytes: the per-packet half of the worker, without I/O.
///
/// The kernel queues a web flow's packets from its SYN until the verdict's mark reaches the
/// flow's conntrack mark. Every packet is answered at once: the segments before the
/// deciding one pass unmarked (a server cannot answer a partial ClientHello), the deciding
/// one carries the mark, so no packet waits in the queue for another.
public struct Inspector {
    public var matcher: WebMatcher {
        didSet { windows = nil }
    }
    /// The rules' open windows, recomputed only when a window flips or the clock moves back.
    private var windows: WebMatcher.OpenWindows?
    /// PCRE2 match data for this inspector's requests (one thread's; hence not Sendable).
    private let patterns = PatternMatcher()
    public private(set) var settings: InspectorSettings
    public private(set) var flows: FlowTable
    public private(set) var counters = WorkerCounters()
    /// Clients that acknowledged a warn or aup rule on the portal, and until when they may go on.
    public private(set) var acknowledgements: [Acknowledgement: Date] = [:]

    public struct Acknowledgement: Hashable, Sendable {
        public var client: IPAddress
        public var rule: String
        public init(client: IPAddress, rule: String) {
            self.client = client
            self.rule = rule
        }
    }

    /// The portal's acknowledge button: `client` may reach what `rule` guards until `until`.
    public mutating func acknowledge(client: IPAddress, rule: String, until: Date) {
        acknowledgements[Acknowledgement(client: client, rule: rule)] = until
    }

    /// enforcer.conf again (a reload): the fail verdict, the portal's address and the block
    /// page apply to the next decisions. The flow table keeps its size and what it follows.
    public mutating func follow(_ config: Config) {
        settings.fail = config.webFail
        settings.portalURL = config.portalURL
        settings.denyPage = config.denyPage
        settings.layout = MarkLayout(mask: config.markMask)
    }

    public init(matcher: WebMatcher, settings: InspectorSettings) {
        self.matcher = matcher
        self.settings = settings
        flows = FlowTable(capacity: settings.maxFlows, timeout: settings.flowTimeout)
    }

    /// - Parameters:
    ///   - now: monotonic seconds, for timeouts.
    ///   - wallClock: the instant time windows are evaluated at.
    public mutating func inspect(_ packet: QueuedPacket, now: Double, wallClock: Date) -> PacketAction {
        counters.packets += 1
        let view = PacketView(packet.bytes)
        guard let tcp = view.tcp, let client = view.source, let server = view.destination, let payload = view.payload else {
            return PacketAction(verdict: .accept(mark: nil))
        }
        let key = FlowKey(client: client, server: server, clientPort: tcp.sourcePort, serverPort: tcp.destinationPort)

        // `slot` is where the flow lives in the table (nil: not there yet). A flow taken out
        // of its slot goes back (`keep`) or is forgotten (`forget`) on every path below.
        var flow: Flow
        let slot: Int?
        if tcp.flags.contains(.syn) {
            // Idle flows are swept once a second (`expire`), never here: a SYN flood must
            // not turn every packet into a walk over the table.
            guard let claimed = flows.claim(key) else {
                return failure(key, slot: nil, packet: packet, tcp: tcp, flow: nil, delivered: 0, reason: "flow table full (\(settings.maxFlows) flows)", now: now)
            }
            slot = claimed.slot
            let tracked = claimed.isNew ? nil : flows.take(at: claimed.slot)
            switch SYNRole(of: tcp.sequenceNumber, tracked: tracked) {
            case .starts:
                // A new flow, or a judged one's 5-tuple reused by a new connection (its
                // conntrack entry is new and unmarked, or it would not be queued): the SYN's
                // sequence number starts the stream.
                flow = Flow(base: tcp.sequenceNumber &+ 1, stream: StreamReassembly(limit: settings.bufferLimit), started: now, lastSeen: now,
                            synSequence: tcp.sequenceNumber)
            case .retransmits:
                // The same SYN again: what the flow has received so far stays.
                flow = tracked!
            case .conflicts:
                // Another SYN on a connection still being judged. The kernel's conntrack
                // ignores it and the server keeps reading the first stream; restarting here
                // would judge a stream the server never reads and pass the real one as
                // "before the start". Dropped, and the flow judged as it was.
                flows.put(tracked!, at: claimed.slot)
                counters.strayDropped += 1
                return PacketAction(verdict: .drop)
            }
        } else if let found = flows.slot(of: key) {
            slot = found
            flow = flows.take(at: found)
        } else if tcp.flags.contains(.rst) || tcp.flags.contains(.fin) && payload.isEmpty {
            return PacketAction(verdict: .accept(mark: nil))
        } else if flows.isFull {
            // Not tracked, so never judged: with data it gets the fail verdict, without it passes.
            guard !payload.isEmpty else { return PacketAction(verdict: .accept(mark: nil)) }
            return failure(key, slot: nil, packet: packet, tcp: tcp, flow: nil, delivered: 0, reason: "flow table full (\(settings.maxFlows) flows)", now: now)
        } else {
            // Begun before the worker ran: the first packet seen starts the stream.
            slot = nil
            flow = Flow(base: tcp.sequenceNumber, stream: StreamReassembly(limit: settings.bufferLimit), started: now, lastSeen: now)
        }
        flow.lastSeen = now
        if let outcome = flow.outcome {
            // A retransmission, or a packet queued before the mark reached the flow.
            keep(flow, key, slot: slot)
            return PacketAction(verdict: .accept(mark: mark(outcome, packet)))
        }
        if tcp.flags.contains(.rst) {
            forget(slot)
            return PacketAction(verdict: .accept(mark: nil))
        }
        guard !payload.isEmpty else {
            keep(flow, key, slot: slot)
            return PacketAction(verdict: .accept(mark: nil))
        }
        // Bytes the server has been let through: a reset for it must land right after them.
        let delivered = flow.stream.bytes.count
        if now - flow.started >= settings.flowTimeout {
            return failure(key, slot: slot, packet: packet, tcp: tcp, flow: flow, delivered: delivered,
                           reason: "no ClientHello or request head within \(Int(settings.flowTimeout)) s", now: now)
        }
        flow.dataPackets += 1
        // Data on a SYN (TCP Fast Open) starts right after the SYN's own sequence number.
        let start = tcp.flags.contains(.syn) ? tcp.sequenceNumber &+ 1 : tcp.sequenceNumber
        let offset = Int(Int32(bitPattern: start &- flow.base))
        if offset < 0 {
            // Bytes from before the stream's first byte: no TCP stack sends them on this
            // connection (its SYN fixed where the stream starts). Passing them unjudged
            // would let whoever moved the start send a request nobody reads; dropped.
            keep(flow, key, slot: slot)
            counters.strayDropped += 1
            return PacketAction(verdict: .drop)
        }

        // The stream so far. When this segment is the whole start of the stream (the
        // common case: the ClientHello or request head in one packet), it is read where it
        // lies; it is copied into the flow's buffer only when more must follow.
        let stream: ArraySlice<UInt8>
        if offset == 0, delivered == 0, flow.stream.isEmpty, payload.count <= settings.bufferLimit {
            stream = payload
        } else {
            flow.stream.insert(offset: offset, payload)
            if flow.stream.conflicted {
                return failure(key, slot: slot, packet: packet, tcp: tcp, flow: flow, delivered: delivered,
                               reason: "overlapping segments carry different bytes", now: now)
            }
            if flow.stream.bytes.count == delivered {
                // Out of order or a duplicate: nothing new to read yet.
                if flow.stream.overflowed || flow.dataPackets > settings.maxPacketsUndecided {
                    return failure(key, slot: slot, packet: packet, tcp: tcp, flow: flow, delivered: delivered,
                                   reason: "first bytes longer than \(settings.bufferLimit) bytes or \(settings.maxPacketsUndecided) packets", now: now)
                }
                keep(flow, key, slot: slot)
                return PacketAction(verdict: .accept(mark: nil))
            }
            stream = flow.stream.bytes[...]
        }

        var judgement = Judgement(flow: key, outcome: .permit)
        let request: WebRequest
        if stream.first == 0x16 {
            judgement.kind = "tls"
            switch ClientHelloParser.parse(stream) {
            case .needMoreData:
                return waiting(key, slot: slot, flow, unread: stream, offset: offset, packet: packet, tcp: tcp, delivered: delivered, now: now)
            case .malformed(let reason):
                return failure(key, slot: slot, packet: packet, tcp: tcp, flow: flow, delivered: delivered, reason: "malformed ClientHello: \(reason)", judgement: judgement, now: now)
            case .complete(let hello):
                judgement.alpn = hello.alpn
                judgement.encryptedClientHello = hello.hasEncryptedClientHello
                guard let name = hello.serverName.map(Self.canonicalHost), !name.isEmpty else {
                    return failure(key, slot: slot, packet: packet, tcp: tcp, flow: flow, delivered: delivered, reason: "ClientHello without a server name", judgement: judgement, now: now)
                }
                judgement.host = name
                request = WebRequest(serverName: name, source: client.ipAddress)
            }
        } else {
            judgement.kind = "http"
            switch HTTPRequestParser.parse(stream, maxHeadLength: settings.bufferLimit) {
            case .needMoreData:
                return waiting(key, slot: slot, flow, unread: stream, offset: offset, packet: packet, tcp: tcp, delivered: delivered, now: now)
            case .malformed(let reason):
                judgement.kind = nil
                return failure(key, slot: slot, packet: packet, tcp: tcp, flow: flow, delivered: delivered, reason: "not a readable HTTP request: \(reason)", judgement: judgement, now: now)
            case .complete(let head):
                // An HTTP/1.0 request without Host names the server by its address.
                let host = head.host ?? server.description
                let shown = host.containsUTF8(UInt8(ascii: ":")) ? "[\(host)]" : host
                let url = head.host == nil ? "http://\(shown)\(head.url)" : head.url
                judgement.host = host
                judgement.method = head.method
                judgement.url = url
                request = WebRequest(host: host, url: url, isTLS: false, source: client.ipAddress, userAgent: head.userAgent)
            }
        }
        if windows?.isValid(at: wallClock) != true { windows = matcher.openWindows(at: wallClock) }
        let decision = matcher.decide(request, windows: windows ?? matcher.openWindows(at: wallClock), patterns: patterns)
        if let error = decision.matchError {
            // The rule might have matched: the worker's own fail verdict decides, as for
            // bytes it cannot read, and the log names the rule and PCRE2's reason.
            counters.matchErrors += 1
            let rule = decision.rule ?? "", pattern = decision.pattern.map { " pattern \($0)" } ?? ""
            return failure(key, slot: slot, packet: packet, tcp: tcp, flow: flow, delivered: delivered,
                           reason: "rule '\(rule)'\(pattern) could not be matched: \(error)", judgement: judgement, now: now)
        }
        judgement.decision = decision
        let outcome: FlowOutcome
        switch decision.action {
        case .permit: outcome = .permit
        case .deny:
            if !settings.denyPage {
                outcome = .deny
            } else if request.isTLS {
                outcome = .deny
                judgement.reason = "no block page on TLS: it cannot be shown without breaking the handshake; reset both ways"
            } else if tcp.flags.contains(.syn) {
                outcome = .deny
                judgement.reason = "no block page on a TCP Fast Open request: nothing can be sent before the handshake; reset both ways"
            } else {
                outcome = .redirect
            }
        case .warn, .aup:
            // A default action's acknowledgement is kept under the empty name, which no rule has.
            if let source = request.source,
               let until = acknowledgements[Acknowledgement(client: source, rule: decision.rule ?? "")], until > wallClock {
                outcome = .permit
                judgement.reason = "acknowledged on the portal until \(ISO8601.string(until))"
            } else if request.isTLS {
                outcome = .deny
                judgement.reason = "\(decision.action.rawValue) acts as deny on TLS: no page can be shown in the handshake"
            } else if tcp.flags.contains(.syn) {
                // A Fast Open request: the server's sequence numbers are not known before its
                // SYN-ACK, so no redirect can be placed in the stream.
                outcome = .deny
                judgement.reason = "\(decision.action.rawValue) acts as deny on a TCP Fast Open request: no page can be sent before the handshake"
            } else {
                outcome = .redirect
            }
        }
        judgement.outcome = outcome
        let redirect: [UInt8]? = switch outcome {
        case .redirect where decision.action == .deny: redirectResponse(to: settings.blockPageURL, rule: decision.rule, url: request.url)
        case .redirect: redirectResponse(to: settings.portalURL, rule: decision.rule ?? "", url: request.url)
        case .permit, .deny: nil
        }
        return decide(key, slot: slot, flow, outcome: outcome, packet: packet, tcp: tcp, delivered: delivered, received: stream.count, judgement: judgement,
                      redirect: redirect)
    }

    /// Puts the flow (back) in the table: into its slot, or as a new one while there is room.
    private mutating func keep(_ flow: consuming Flow, _ key: FlowKey, slot: Int?) {
        if let slot { flows.put(flow, at: slot) } else if !flows.isFull { flows.insert(flow, for: key) }
        counters.flowsTracked = flows.count
    }

    private mutating func forget(_ slot: Int?) {
        if let slot { flows.remove(at: slot) }
        counters.flowsTracked = flows.count
    }

    /// Forgets flows idle past the timeout and acknowledgements past their time; the worker
    /// calls this about once a second.
    public mutating func expire(now: Double, wallClock: Date = Date()) {
        flows.expireIdle(now: now, counters: &counters)
        if !acknowledgements.isEmpty { acknowledgements = acknowledgements.filter { $0.value > wallClock } }
    }

    /// Host text as rules compare it: lowercase, without one trailing dot.
    static func canonicalHost(_ name: String) -> String {
        // Most names arrive lowercase and without the dot: then no new string is made. The
        // bytes are read through a span (iterating `utf8` goes through String's indices).
        let bytes = name.utf8.span
        var lowercase = true
        for index in bytes.indices where bytes[index] &- UInt8(ascii: "A") < 26 || bytes[index] >= 0x80 { lowercase = false; break }
        let trailingDot = bytes.count > 0 && bytes[bytes.count - 1] == UInt8(ascii: ".")
        if lowercase && !trailingDot { return name }
        var host = lowercase ? name : name.lowercased()
        if trailingDot { host.removeLast() }
        return host
    }

    /// The first bytes are a valid start: wait for more. `unread` is the stream as parsed;
    /// when it was the packet itself (read in place), it goes into the flow's buffer now.
    private mutating func waiting(_ key: FlowKey, slot: Int?, _ flow: consuming Flow, unread: ArraySlice<UInt8>, offset: Int, packet: QueuedPacket, tcp: TCPSegmentHeader,
                                  delivered: Int, now: Double) -> PacketAction {
        if flow.stream.isEmpty { flow.stream.insert(offset: offset, unread) }
        if flow.stream.overflowed || flow.stream.bytes.count >= settings.bufferLimit || flow.dataPackets > settings.maxPacketsUndecided {
            return failure(key, slot: slot, packet: packet, tcp: tcp, flow: flow, delivered: delivered,
                           reason: "first bytes longer than \(settings.bufferLimit) bytes or \(settings.maxPacketsUndecided) packets", now: now)
        }
        keep(flow, key, slot: slot)
        return PacketAction(verdict: .accept(mark: nil))
    }

    private mutating func failure(_ key: FlowKey, slot: Int?, packet: QueuedPacket, tcp: TCPSegmentHeader, flow: consuming Flow?, delivered: Int, reason: String,
                                  judgement: consuming Judgement? = nil, now: Double) -> PacketAction {
        counters.failVerdicts += 1
        var judgement = judgement ?? Judgement(flow: key, outcome: .deny)
        let outcome: FlowOutcome = settings.fail == .open ? .permit : .deny
        judgement.outcome = outcome
        judgement.reason = "fail \(settings.fail.rawValue): \(reason)"
        let flow = flow ?? Flow(base: tcp.sequenceNumber, stream: StreamReassembly(limit: 0), started: now, lastSeen: now)
        return decide(key, slot: slot, flow, outcome: outcome, packet: packet, tcp: tcp, delivered: delivered, received: flow.stream.bytes.count,
                      judgement: judgement, redirect: nil)
    }

    /// Records the outcome on the flow and says how to carry it out. `delivered` is how
    /// many stream bytes the server has been let through, so its reset lands exactly on
    /// the next sequence number it expects; `received` how many in-order bytes the client
    /// has sent, which a redirect acknowledges.
    private mutating func decide(_ key: FlowKey, slot: Int?, _ flow: consuming Flow, outcome: FlowOutcome, packet: QueuedPacket, tcp: TCPSegmentHeader,
                                 delivered: Int, received: Int, judgement: consuming Judgement, redirect: [UInt8]?) -> PacketAction {
        flow.outcome = outcome
        let base = flow.base
        keep(flow, key, slot: slot)
        switch outcome {
        case .permit: counters.permitted += 1
        case .deny: counters.denied += 1
        case .redirect: counters.redirected += 1
        }
        counters.countVerdict(judgement)
        var segments: [ForgedSegment] = []
        if outcome != .permit && !tcp.flags.contains(.syn) {
            // The server has an open connection waiting for bytes it will never get.
            segments.append(ForgedSegment(source: key.client, destination: key.server, sourcePort: key.clientPort, destinationPort: key.serverPort,
                                          sequence: base &+ UInt32(truncatingIfNeeded: delivered), acknowledgment: tcp.acknowledgmentNumber,
                                          flags: [.rst, .ack]))
        }
        if let redirect {
            // The server has sent nothing past its SYN-ACK, so the client's ack is the
            // server's next sequence number; this acknowledges everything the client sent.
            segments.append(ForgedSegment(source: key.server, destination: key.client, sourcePort: key.serverPort, destinationPort: key.clientPort,
                                          sequence: tcp.acknowledgmentNumber, acknowledgment: base &+ UInt32(truncatingIfNeeded: received),
                                          flags: [.psh, .ack, .fin], payload: redirect))
        }
        return PacketAction(verdict: .accept(mark: mark(outcome, packet)), segments: segments, judgement: judgement)
    }

    /// The packet's mark with enforcer's web bits set to the outcome; other bits kept.
    func mark(_ outcome: FlowOutcome, _ packet: QueuedPacket) -> UInt32 {
        let state: WebFlowState = switch outcome {
        case .permit: .permitted
        case .deny: .denied
        case .redirect: .redirected
        }
        return packet.mark & ~settings.layout.webMask | settings.layout.webMark(state)
    }

    /// The redirect to a portal page (`page`: the warn/aup page, or the block page): the
    /// rule's name and the URL asked for ride along in the query. Only the name: the portal
    /// looks the rule up in the policy, so a visitor who writes such a URL by hand cannot
    /// make the page show a text of their own as the rule's description. No rule (a default
    /// action decided) sends no name.
    func redirectResponse(to page: String, rule: String?, url: String) -> [UInt8] {
        let separator = page.contains("?") ? "&" : "?"
        let ruleParameter = rule.map { "rule=" + Self.percentEncoded($0) + "&" } ?? ""
        let location = page + separator + ruleParameter + "url=" + Self.percentEncoded(url)
        let text = "HTTP/1.1 302 Found\r\nLocation: \(location)\r\nContent-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        return Array(text.utf8)
    }

    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(byte)))
            default:
                out += "%" + ZeroPadded.string(byte, width: 2, radix: 16).uppercased()
            }
        }
        return out
    }
}

extension FlowTable {
    mutating func expireIdle(now: Double, counters: inout WorkerCounters) {
        counters.flowsExpired += expire(now: now)
        counters.flowsTracked = count
    }
}
