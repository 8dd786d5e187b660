@testable import Compiler
import Foundation
import Testing
@testable import NFQueue

// MARK: - The policy every case is judged by

/// default_action is permit, so a name no rule matches is permitted.
private let webPolicy = """
    deny-fixtures: {
        match-domain: curl.example, openssl.example, python.example, gnutls.example, bigalpn.example, pq.example, split.example
        action: deny
    }
    deny-ozilla: {
        match-domain: ozilla.org
        action: deny
    }
    warn-site: {
        match-domain: warn.example
        action: warn
    }
    aup-site: {
        match-domain: aup.example
        action: aup
    }
    work-hours: {
        match-domain: work.example
        time-window: weekdays 08:00-18:00
        action: deny
    }
    """

private func enforcerConf(fail: Config.FailMode, defaultAction: String) -> String {
    """
    [policy]
    default_action = "\(defaultAction)"
    time_window_tz = "utc"
    [web]
    fail = "\(fail.rawValue)"
    portal_url = "http://portal.test/notice"
    """
}

/// An inspector for `webPolicy`, loaded from a throwaway policy directory.
private func makeInspector(fail: Config.FailMode = .closed, policy: String = webPolicy, defaultAction: String = "permit", _ adjust: (inout InspectorSettings) -> Void = { _ in }) throws -> Inspector {
    let fm = FileManager.default
    let directory = NSTemporaryDirectory() + "enforcer-inspector-" + UUID().uuidString
    defer { try? fm.removeItem(atPath: directory) }
    try fm.createDirectory(atPath: directory + "/rules.d", withIntermediateDirectories: true)
    try enforcerConf(fail: fail, defaultAction: defaultAction).write(toFile: directory + "/enforcer.conf", atomically: true, encoding: .utf8)
    try policy.write(toFile: directory + "/rules.d/10-web.policy", atomically: true, encoding: .utf8)
    let loaded = PolicyLoader.load(directory: directory)
    let set = try #require(loaded.policySet, "\(loaded.diagnostics.map(\.description).joined(separator: "\n"))")
    var settings = InspectorSettings(config: set.config)
    adjust(&settings)
    return Inspector(matcher: WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction), settings: settings)
}

/// The web bits under the default mark_mask 0x00ffff00.
private let permitted: UInt32 = 0x100, denied: UInt32 = 0x200, redirected: UInt32 = 0x300

private func instant(_ text: String) -> Date { try! Instant.parse(text, defaultZone: TimeZone(identifier: "UTC")!) }
/// A Monday, inside work-hours' window.
private let mondayMorning = instant("2026-11-23T10:00:00Z")

// MARK: - Packets

private let client4 = PacketAddress(bytes: [192, 0, 2, 10])!
private let server4 = PacketAddress(bytes: [198, 51, 100, 20])!
private let client6 = PacketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [0x0a])!
private let server6 = PacketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1] + Array(repeating: 0, count: 7) + [0x14])!

/// One client connection, and the packets the client's stack sends on it.
private struct Connection {
    var client = client4
    var server = server4
    var clientPort: UInt16 = 50_000
    var serverPort: UInt16 = 443
    var isn: UInt32 = 0x1000_0000
    /// The server's next sequence number: what every client segment after the SYN acknowledges.
    var serverNext: UInt32 = 0x7000_0001
    /// The packet mark the kernel hands over with every packet.
    var mark: UInt32 = 0

    /// Sequence number of the stream's first byte.
    var base: UInt32 { isn &+ 1 }

    var syn: QueuedPacket { packet(sequence: isn, .syn) }

    /// Stream bytes starting `offset` bytes into the stream.
    func data(_ bytes: some Collection<UInt8>, at offset: Int = 0) -> QueuedPacket {
        packet(sequence: base &+ UInt32(truncatingIfNeeded: offset), [.psh, .ack], Array(bytes))
    }

    func packet(sequence: UInt32, _ flags: TCPFlags, _ payload: [UInt8] = []) -> QueuedPacket {
        let segment = ForgedSegment(source: client, destination: server, sourcePort: clientPort, destinationPort: serverPort,
                                    sequence: sequence, acknowledgment: flags.contains(.syn) ? 0 : serverNext,
                                    flags: flags, payload: payload)
        return QueuedPacket(id: 1, mark: mark, bytes: segment.bytes)
    }

    /// The reset the server must get once `delivered` stream bytes have reached it.
    func reset(after delivered: Int) -> ForgedSegment {
        ForgedSegment(source: client, destination: server, sourcePort: clientPort, destinationPort: serverPort,
                      sequence: base &+ UInt32(delivered), acknowledgment: serverNext, flags: [.rst, .ack])
    }

    /// The portal redirect the client must get after sending `sent` stream bytes.
    func redirect(after sent: Int, location: String) -> ForgedSegment {
        let response = "HTTP/1.1 302 Found\r\nLocation: \(location)\r\nContent-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        return ForgedSegment(source: server, destination: client, sourcePort: serverPort, destinationPort: clientPort,
                             sequence: serverNext, acknowledgment: base &+ UInt32(sent), flags: [.psh, .ack, .fin],
                             payload: Array(response.utf8))
    }
}

private typealias Piece = (offset: Int, bytes: ArraySlice<UInt8>)

/// `bytes` cut into segments of at most `size` bytes.
private func segments(_ bytes: [UInt8], size: Int) -> [Piece] {
    stride(from: 0, to: bytes.count, by: size).map { ($0, bytes[$0..<min($0 + size, bytes.count)]) }
}

/// `bytes` cut into three segments of about a third each.
private func thirds(_ bytes: [UInt8]) -> [Piece] {
    let a = bytes.count / 3, b = 2 * bytes.count / 3
    return [(0, bytes[..<a]), (a, bytes[a..<b]), (b, bytes[b...])]
}

private func http(_ text: String) -> [UInt8] { Array(text.utf8) }

/// The curl ClientHello asking for `name`, which must be 12 bytes long like "curl.example".
private func curlHello(_ name: String) throws -> [UInt8] {
    var editor = HelloEditor(bytes: try HelloFixtures.bytes("curl-curl.example"))
    editor.replaceHostName(with: name)
    return editor.bytes
}

private extension Inspector {
    /// The SYN, then `pieces` in the order given; the actions for the data packets.
    mutating func feed(_ connection: Connection, _ pieces: [Piece], now: Double = 1, at wallClock: Date = mondayMorning) -> [PacketAction] {
        _ = inspect(connection.syn, now: now, wallClock: wallClock)
        return pieces.map { inspect(connection.data($0.bytes, at: $0.offset), now: now, wallClock: wallClock) }
    }

    /// The SYN, then `stream` in one segment; the action for that segment.
    mutating func judge(_ connection: Connection, _ stream: [UInt8], now: Double = 1, at wallClock: Date = mondayMorning) -> PacketAction {
        feed(connection, [(0, stream[...])], now: now, at: wallClock)[0]
    }
}

/// Packets that leave the flow undecided: passed unmarked, nothing sent, nothing logged.
private func expectUndecided(_ actions: some Collection<PacketAction>, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    for action in actions {
        #expect(action.verdict == .accept(mark: nil), sourceLocation: sourceLocation)
        #expect(action.segments.isEmpty, sourceLocation: sourceLocation)
        #expect(action.judgement == nil, sourceLocation: sourceLocation)
    }
}

/// Stream bytes for a table: HTTP text, a fixture from Fixtures/, or raw bytes.
enum StreamBytes: Sendable {
    case text(String)
    case fixture(String)
    case raw([UInt8])

    func bytes() throws -> [UInt8] {
        switch self {
        case .text(let text): Array(text.utf8)
        case .fixture(let name): try HelloFixtures.bytes(name)
        case .raw(let bytes): bytes
        }
    }
}

// MARK: - Tables

struct FixtureCase: Sendable, CustomTestStringConvertible {
    let fixture: String
    let serverName: String
    /// TCP payload size the ClientHello is cut into.
    var size = Int.max
    var ipv6 = false
    var testDescription: String { "\(fixture) in \(size == .max ? "one segment" : "\(size)-byte segments")\(ipv6 ? " over IPv6" : "")" }
}

struct NameCase: Sendable, CustomTestStringConvertible {
    let name: String
    let mark: UInt32
    let action: WebAction
    let rule: String?
    var testDescription: String { name }
}

struct HTTPHostCase: Sendable, CustomTestStringConvertible {
    let name: String
    let request: String
    let host: String
    let mark: UInt32
    var testDescription: String { name }
}

struct RedirectCase: Sendable, CustomTestStringConvertible {
    let name: String
    var portal = "http://portal.test/notice"
    /// The rules, when not `webPolicy`, and `[policy] default_action`.
    var policy: String? = nil
    var defaultAction = "permit"
    let request: String
    var size = Int.max
    let location: String
    var testDescription: String { name }
}

struct FailTrigger: Sendable, CustomTestStringConvertible {
    let name: String
    let stream: StreamBytes
    /// TCP payload size the stream is cut into.
    var size = Int.max
    var bufferLimit = 32 * 1024
    var maxPacketsUndecided = 64
    /// Part of the judgement's reason.
    let reason: String
    /// Index of the segment that gets the fail verdict; nil for the last.
    var failsAt: Int? = nil
    var testDescription: String { name }
}

struct MarkCase: Sendable, CustomTestStringConvertible {
    let mask: UInt32
    let incoming: UInt32
    let host: String
    let expected: UInt32
    var testDescription: String { "\(host) mask \(hex(mask)) mark \(hex(incoming)) → \(hex(expected))" }
}

private func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

// MARK: - Tests

@Suite("Inspector: judging flows from their first bytes")
struct InspectorTests {
    @Test("canonical host text", arguments: [
        ("example.org", "example.org"), ("Example.ORG.", "example.org"), ("example.org.", "example.org"),
        ("ÉCOLE.example", "école.example"), ("a..", "a."), (".", ""), ("", ""),
    ])
    func canonicalHost(_ name: String, _ expected: String) {
        #expect(Inspector.canonicalHost(name) == expected)
    }

    /// The log line reserves its room from a bound: a judgement with every field, the
    /// longest addresses and the longest fixed words must fit it and read in full.
    @Test func aLogLineWithEveryFieldIsWrittenWhole() throws {
        let longest = try #require(PacketAddress(bytes: [UInt8](repeating: 0xff, count: 16)))
        var judgement = Judgement(flow: FlowKey(client: longest, server: longest, clientPort: 65535, serverPort: 65535), outcome: .redirect,
                                  kind: "http", host: String(repeating: "h", count: 300),
                                  decision: WebDecision(action: .warn, rule: "r", pattern: "domain \(String(repeating: "p", count: 50))"),
                                  reason: "because")
        judgement.alpn = []
        judgement.method = "GET"
        judgement.url = "http://x/" + String(repeating: "u", count: 1000)
        var line: [UInt8] = []
        judgement.appendLine(to: &line)
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.hasPrefix("level=info msg=flow outcome=redirect client=[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535 server=[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535 proto=http host=hhh"))
        #expect(text.hasSuffix(" alpn=- ech=no method=GET url=http://x/\(String(repeating: "u", count: 1000)) action=warn rule=r pattern=\"domain \(String(repeating: "p", count: 50))\" reason=because\n"))
        judgement.decision = WebDecision(action: .permit, rule: nil, pattern: nil)
        line.removeAll()
        judgement.appendLine(to: &line)
        #expect(String(decoding: line, as: UTF8.self).hasSuffix(" action=permit default_action=true reason=because\n"))
    }

    // MARK: TLS

    static let deniedFixtures: [FixtureCase] = [
        FixtureCase(fixture: "curl-curl.example", serverName: "curl.example"),
        FixtureCase(fixture: "openssl-openssl.example", serverName: "openssl.example"),
        FixtureCase(fixture: "python-python.example", serverName: "python.example"),
        FixtureCase(fixture: "gnutls-gnutls.example", serverName: "gnutls.example"),
        FixtureCase(fixture: "openssl-bigalpn.example", serverName: "bigalpn.example"),
        FixtureCase(fixture: "synthetic-split.example", serverName: "split.example"),
        FixtureCase(fixture: "synthetic-pq.example", serverName: "pq.example", size: 1448),
        FixtureCase(fixture: "openssl-bigalpn.example", serverName: "bigalpn.example", size: 1448),
        FixtureCase(fixture: "synthetic-split.example", serverName: "split.example", size: 1448),
        FixtureCase(fixture: "curl-curl.example", serverName: "curl.example", size: 100),
        FixtureCase(fixture: "curl-curl.example", serverName: "curl.example", ipv6: true),
        FixtureCase(fixture: "synthetic-pq.example", serverName: "pq.example", size: 1428, ipv6: true),
    ]

    @Test("a denied SNI: marked on the deciding segment, the server reset where its stream stands", arguments: deniedFixtures)
    func deniedServerName(_ c: FixtureCase) throws {
        var inspector = try makeInspector()
        let connection = c.ipv6 ? Connection(client: client6, server: server6) : Connection()
        let pieces = segments(try HelloFixtures.bytes(c.fixture), size: c.size)
        let actions = inspector.feed(connection, pieces)
        expectUndecided(actions.dropLast())
        let last = try #require(actions.last)
        #expect(last.verdict == .accept(mark: denied))
        #expect(last.segments == [connection.reset(after: pieces.last!.offset)])
        let judgement = try #require(last.judgement)
        #expect(judgement.outcome == .deny)
        #expect(judgement.kind == "tls")
        #expect(judgement.host == c.serverName)
        #expect(judgement.decision?.rule == "deny-fixtures")
        #expect(judgement.reason == "no block page on TLS: it cannot be shown without breaking the handshake; reset both ways")
    }

    static let names: [NameCase] = [
        NameCase(name: "curl.example", mark: denied, action: .deny, rule: "deny-fixtures"),
        NameCase(name: "CURL.Example", mark: denied, action: .deny, rule: "deny-fixtures"),
        NameCase(name: "a.ozilla.org", mark: denied, action: .deny, rule: "deny-ozilla"),
        NameCase(name: "A.OZILLA.ORG", mark: denied, action: .deny, rule: "deny-ozilla"),
        // Whole labels only: ozilla.org is not a suffix of mozilla.org.
        NameCase(name: "mozilla.org.", mark: permitted, action: .permit, rule: nil),
        NameCase(name: "xozilla.org.", mark: permitted, action: .permit, rule: nil),
        NameCase(name: "curl.exampl_", mark: permitted, action: .permit, rule: nil),
        // No page can be shown inside a handshake: warn and aup deny.
        NameCase(name: "warn.example", mark: denied, action: .warn, rule: "warn-site"),
        NameCase(name: "aup.example.", mark: denied, action: .aup, rule: "aup-site"),
    ]

    @Test("the SNI decides, lowercased and without its trailing dot", arguments: names)
    func serverNames(_ c: NameCase) throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let action = inspector.judge(connection, try curlHello(c.name))
        #expect(action.verdict == .accept(mark: c.mark))
        #expect(action.segments == (c.mark == permitted ? [] : [connection.reset(after: 0)]))
        let judgement = try #require(action.judgement)
        #expect(judgement.host == Inspector.canonicalHost(c.name))
        #expect(judgement.decision?.action == c.action)
        #expect(judgement.decision?.rule == c.rule)
        #expect(judgement.alpn == ["h2", "http/1.1"])
        #expect(judgement.description.contains(" proto=tls host=\(Inspector.canonicalHost(c.name)) alpn=h2,http/1.1 ech=no action=\(c.action.rawValue) "))
        if c.action != .permit {
            // No page can be shown in a handshake: warn and aup act as deny, deny gets no block page.
            #expect(judgement.outcome == .deny)
            #expect(judgement.reason?.contains("TLS") == true)
        } else {
            #expect(judgement.reason == nil)
        }
    }

    static let orders: [[Int]] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]

    @Test("a ClientHello in three segments is judged when the last gap fills", arguments: orders)
    func threeSegmentsInAnyOrder(_ order: [Int]) throws {
        for (name, mark) in [("curl.example", denied), ("mozilla.org.", permitted)] {
            var inspector = try makeInspector()
            let connection = Connection()
            let pieces = thirds(try curlHello(name))
            let actions = inspector.feed(connection, order.map { pieces[$0] })
            expectUndecided(actions.dropLast())
            let last = try #require(actions.last)
            #expect(last.verdict == .accept(mark: mark))
            #expect(last.judgement?.host == Inspector.canonicalHost(name))
            // The server has the in-order bytes before the piece that completed the stream.
            let delivered = pieces[order.last!].offset
            #expect(last.segments == (mark == permitted ? [] : [connection.reset(after: delivered)]))
        }
    }

    @Test("duplicates and retransmissions before the decision pass unmarked")
    func duplicatesBeforeDecision() throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let p = thirds(try HelloFixtures.bytes("curl-curl.example"))
        let actions = inspector.feed(connection, [p[1], p[0], p[1], p[0], (0, p[0].bytes + p[1].bytes), p[2]])
        expectUndecided(actions.dropLast())
        #expect(actions.last?.verdict == .accept(mark: denied))
        #expect(actions.last?.segments == [connection.reset(after: p[2].offset)])
    }

    @Test("sequence numbers wrap around 2^32", arguments: [0, 0x7fff_ffff, 0xffff_ff00, 0xffff_ffff] as [UInt32])
    func sequenceWrap(_ isn: UInt32) throws {
        var inspector = try makeInspector()
        let connection = Connection(isn: isn)
        let pieces = segments(try HelloFixtures.bytes("curl-curl.example"), size: 100)
        let actions = inspector.feed(connection, pieces)
        expectUndecided(actions.dropLast())
        #expect(actions.last?.verdict == .accept(mark: denied))
        #expect(actions.last?.segments.map(\.sequence) == [isn &+ 1 &+ 500])
    }

    @Test("a flow begun before the worker ran is judged from its first data packet")
    func joinedMidStream() throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let action = inspector.inspect(connection.data(try HelloFixtures.bytes("curl-curl.example")), now: 1, wallClock: mondayMorning)
        #expect(action.verdict == .accept(mark: denied))
        #expect(action.segments == [connection.reset(after: 0)])
    }

    @Test("after the decision every packet of the flow gets the same mark, and nothing is sent again",
          arguments: [("curl.example", denied), ("mozilla.org.", permitted)] as [(String, UInt32)])
    func retransmissions(_ name: String, _ mark: UInt32) throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let pieces = thirds(try curlHello(name))
        let actions = inspector.feed(connection, pieces)
        #expect(actions.last?.verdict == .accept(mark: mark))
        let again = [
            connection.data(pieces[2].bytes, at: pieces[2].offset),  // the deciding segment
            connection.data(pieces[0].bytes, at: pieces[0].offset),
            connection.packet(sequence: connection.base &+ 517, .ack),
            connection.packet(sequence: connection.base &+ 517, [.fin, .ack]),
        ]
        for packet in again {
            let action = inspector.inspect(packet, now: 2, wallClock: mondayMorning)
            #expect(action.verdict == .accept(mark: mark))
            #expect(action.segments.isEmpty)
            #expect(action.judgement == nil)
        }
    }

    @Test("the SYN and pure ACKs pass unmarked")
    func handshakePassesUnmarked() throws {
        var inspector = try makeInspector()
        let connection = Connection(mark: 0x8000_0001)
        expectUndecided([
            inspector.inspect(connection.syn, now: 1, wallClock: mondayMorning),
            inspector.inspect(connection.packet(sequence: connection.base, .ack), now: 1, wallClock: mondayMorning),
        ])
        #expect(inspector.flows.count == 1)
    }

    @Test("a client reset forgets an undecided flow")
    func clientReset() throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let hello = try HelloFixtures.bytes("curl-curl.example")
        _ = inspector.feed(connection, [(0, hello[..<100])])
        expectUndecided([inspector.inspect(connection.packet(sequence: connection.base &+ 100, .rst), now: 1, wallClock: mondayMorning)])
        #expect(inspector.flows.count == 0)
    }

    @Test("a second SYN with another sequence number is dropped and does not move the stream",
          arguments: [0x1234_5678, 1, 0xffff_ff00] as [UInt32])
    func conflictingSYN(_ shift: UInt32) throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let moved = Connection(isn: connection.isn &+ shift)
        expectUndecided([
            inspector.inspect(connection.syn, now: 1, wallClock: mondayMorning),
            inspector.inspect(connection.packet(sequence: connection.base, .ack), now: 1, wallClock: mondayMorning),
        ])
        #expect(inspector.inspect(moved.syn, now: 1, wallClock: mondayMorning).verdict == .drop)
        // The request the server reads is still the one judged.
        let action = inspector.inspect(connection.data(try curlHello("curl.example")), now: 1, wallClock: mondayMorning)
        #expect(action.verdict == .accept(mark: denied))
        #expect(action.segments == [connection.reset(after: 0)])
        #expect(inspector.counters.strayDropped == 1)
    }

    @Test("a retransmitted SYN keeps what the flow has received")
    func retransmittedSYN() throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let pieces = thirds(try curlHello("curl.example"))
        expectUndecided(inspector.feed(connection, [pieces[0]]))
        expectUndecided([inspector.inspect(connection.syn, now: 1, wallClock: mondayMorning)])
        let actions = [pieces[1], pieces[2]].map { inspector.inspect(connection.data($0.bytes, at: $0.offset), now: 1, wallClock: mondayMorning) }
        expectUndecided(actions.dropLast())
        #expect(actions.last?.verdict == .accept(mark: denied))
        #expect(actions.last?.segments == [connection.reset(after: pieces[2].offset)])
        #expect(inspector.counters.strayDropped == 0)
    }

    @Test("bytes before the stream's first byte are dropped, never passed unjudged",
          arguments: [(-100, 50), (-10, 100), (-0x7000_0000, 20)] as [(Int, Int)])
    func bytesBeforeTheStream(_ offset: Int, _ count: Int) throws {
        var inspector = try makeInspector()
        let connection = Connection()
        _ = inspector.inspect(connection.syn, now: 1, wallClock: mondayMorning)
        let early = connection.packet(sequence: connection.base &+ UInt32(bitPattern: Int32(offset)), [.psh, .ack],
                                      Array(try curlHello("curl.example").prefix(count)))
        let action = inspector.inspect(early, now: 1, wallClock: mondayMorning)
        #expect(action.verdict == .drop)
        #expect(action.segments.isEmpty)
        #expect(inspector.counters.strayDropped == 1)
        #expect(inspector.inspect(connection.data(try curlHello("curl.example")), now: 1, wallClock: mondayMorning).verdict == .accept(mark: denied))
    }

    @Test("a judged flow's 5-tuple taken by a new connection is judged afresh")
    func reusedTuple() throws {
        var inspector = try makeInspector()
        let first = Connection()
        #expect(inspector.judge(first, try curlHello("mozilla.org.")).verdict == .accept(mark: permitted))
        let second = Connection(isn: first.isn &+ 0x0100_0000)
        let action = inspector.judge(second, try curlHello("curl.example"))
        #expect(action.verdict == .accept(mark: denied))
        #expect(action.segments == [second.reset(after: 0)])
        #expect(inspector.counters.strayDropped == 0)
    }

    // MARK: Marks

    static let marks: [MarkCase] = [
        MarkCase(mask: 0x00ff_ff00, incoming: 0x8000_0001, host: "ozilla.org", expected: 0x8000_0201),
        MarkCase(mask: 0x00ff_ff00, incoming: 0x8000_0001, host: "mozilla.org", expected: 0x8000_0101),
        MarkCase(mask: 0x00ff_ff00, incoming: 0x8000_0001, host: "warn.example", expected: 0x8000_0301),
        // The policy id above the web bits stays; stale web bits are replaced.
        MarkCase(mask: 0x00ff_ff00, incoming: 0x0000_0700, host: "ozilla.org", expected: 0x0000_0600),
        MarkCase(mask: 0x00ff_ff00, incoming: 0xffff_ffff, host: "mozilla.org", expected: 0xffff_fdff),
        MarkCase(mask: 0x0000_000f, incoming: 0x8000_0001, host: "ozilla.org", expected: 0x8000_0002),
        MarkCase(mask: 0xff00_0000, incoming: 0x00ab_cdef, host: "warn.example", expected: 0x03ab_cdef),
    ]

    @Test("only the web bits of the packet mark change", arguments: marks)
    func markBits(_ c: MarkCase) throws {
        // A deny's own mark, not the block page's redirect.
        var inspector = try makeInspector { $0.layout = MarkLayout(mask: c.mask); $0.denyPage = false }
        let connection = Connection(serverPort: 80, mark: c.incoming)
        let action = inspector.judge(connection, http("GET / HTTP/1.1\r\nHost: \(c.host)\r\n\r\n"))
        #expect(action.verdict == .accept(mark: c.expected))
        let again = inspector.inspect(connection.packet(sequence: connection.base, .ack), now: 2, wallClock: mondayMorning)
        #expect(again.verdict == .accept(mark: c.expected))
    }

    // MARK: HTTP

    static let hosts: [HTTPHostCase] = [
        HTTPHostCase(name: "Host as sent", request: "GET / HTTP/1.1\r\nHost: ozilla.org\r\n\r\n", host: "ozilla.org", mark: denied),
        HTTPHostCase(name: "Host in capitals", request: "GET / HTTP/1.1\r\nHost: OZILLA.Org\r\n\r\n", host: "ozilla.org", mark: denied),
        HTTPHostCase(name: "Host with a trailing dot", request: "GET / HTTP/1.1\r\nHost: ozilla.org.\r\n\r\n", host: "ozilla.org", mark: denied),
        HTTPHostCase(name: "whitespace around Host", request: "GET / HTTP/1.1\r\nHost:\t  ozilla.org \t\r\n\r\n", host: "ozilla.org", mark: denied),
        HTTPHostCase(name: "Host with a port", request: "GET / HTTP/1.1\r\nHost: ozilla.org:8080\r\n\r\n", host: "ozilla.org", mark: denied),
        HTTPHostCase(name: "subdomain", request: "GET / HTTP/1.1\r\nHost: www.ozilla.org\r\n\r\n", host: "www.ozilla.org", mark: denied),
        HTTPHostCase(name: "not a subdomain", request: "GET / HTTP/1.1\r\nHost: mozilla.org\r\n\r\n", host: "mozilla.org", mark: permitted),
        HTTPHostCase(name: "absolute-form target beats Host (deny)", request: "GET http://ozilla.org/x HTTP/1.1\r\nHost: mozilla.org\r\n\r\n", host: "ozilla.org", mark: denied),
        HTTPHostCase(name: "absolute-form target beats Host (permit)", request: "GET http://mozilla.org/x HTTP/1.1\r\nHost: ozilla.org\r\n\r\n", host: "mozilla.org", mark: permitted),
        HTTPHostCase(name: "LF-only line ends", request: "GET / HTTP/1.1\nHost: ozilla.org\n\n", host: "ozilla.org", mark: denied),
        HTTPHostCase(name: "empty lines before the request line", request: "\r\n\r\nGET / HTTP/1.1\r\nHost: ozilla.org\r\n\r\n", host: "ozilla.org", mark: denied),
        HTTPHostCase(name: "HTTP/1.0 without Host names the server", request: "GET / HTTP/1.0\r\n\r\n", host: "198.51.100.20", mark: permitted),
    ]

    @Test("HTTP: the canonical host decides", arguments: hosts)
    func httpHost(_ c: HTTPHostCase) throws {
        var inspector = try makeInspector { $0.denyPage = false }
        let connection = Connection(serverPort: 80)
        let action = inspector.judge(connection, http(c.request))
        #expect(action.verdict == .accept(mark: c.mark))
        #expect(action.segments == (c.mark == permitted ? [] : [connection.reset(after: 0)]))
        let judgement = try #require(action.judgement)
        #expect(judgement.kind == "http")
        #expect(judgement.host == c.host)
    }

    @Test("HTTP: a request head in 7-byte segments is judged by its last one")
    func httpInSegments() throws {
        var inspector = try makeInspector { $0.denyPage = false }
        let connection = Connection(serverPort: 80)
        let pieces = segments(http("GET /index.html HTTP/1.1\r\nHost: ozilla.org\r\nAccept: */*\r\n\r\n"), size: 7)
        let actions = inspector.feed(connection, pieces)
        expectUndecided(actions.dropLast())
        #expect(actions.last?.verdict == .accept(mark: denied))
        #expect(actions.last?.segments == [connection.reset(after: pieces.last!.offset)])
        #expect(actions.last?.judgement?.url == "http://ozilla.org/index.html")
        #expect(actions.last?.judgement?.description.contains(" proto=http host=ozilla.org method=GET url=http://ozilla.org/index.html action=deny rule=") == true)
    }

    static let redirects: [RedirectCase] = [
        RedirectCase(name: "warn", request: "GET /path?q=1 HTTP/1.1\r\nHost: warn.example\r\nUser-Agent: test\r\n\r\n",
                     location: "http://portal.test/notice?rule=warn-site&url=http%3A%2F%2Fwarn.example%2Fpath%3Fq%3D1"),
        RedirectCase(name: "aup", request: "GET / HTTP/1.1\r\nHost: AUP.example.\r\n\r\n",
                     location: "http://portal.test/notice?rule=aup-site&url=http%3A%2F%2Faup.example%2F"),
        RedirectCase(name: "portal URL that has a query", portal: "http://portal.test/notice?lang=en", request: "GET / HTTP/1.1\r\nHost: warn.example\r\n\r\n",
                     location: "http://portal.test/notice?lang=en&rule=warn-site&url=http%3A%2F%2Fwarn.example%2F"),
        RedirectCase(name: "percent signs and a port in the URL", request: "GET /a%20b HTTP/1.1\r\nHost: warn.example:8080\r\n\r\n",
                     location: "http://portal.test/notice?rule=warn-site&url=http%3A%2F%2Fwarn.example%3A8080%2Fa%2520b"),
        RedirectCase(name: "request in 16-byte segments", request: "GET /x HTTP/1.1\r\nHost: warn.example\r\nAccept: */*\r\n\r\n", size: 16,
                     location: "http://portal.test/notice?rule=warn-site&url=http%3A%2F%2Fwarn.example%2Fx"),
        RedirectCase(name: "request with a body", request: "POST /form HTTP/1.1\r\nHost: warn.example\r\nContent-Length: 3\r\n\r\nabc",
                     location: "http://portal.test/notice?rule=warn-site&url=http%3A%2F%2Fwarn.example%2Fform"),
    ]

    @Test("HTTP warn/aup: the server is reset, the client redirected to the portal", arguments: redirects)
    func redirect(_ c: RedirectCase) throws {
        var inspector = try makeInspector { $0.portalURL = c.portal }
        let connection = Connection(serverPort: 80)
        let request = http(c.request)
        let pieces = segments(request, size: c.size)
        let actions = inspector.feed(connection, pieces)
        expectUndecided(actions.dropLast())
        let last = try #require(actions.last)
        #expect(last.verdict == .accept(mark: redirected))
        #expect(last.segments == [connection.reset(after: pieces.last!.offset),
                                  connection.redirect(after: request.count, location: c.location)])
        #expect(last.judgement?.outcome == .redirect)
        #expect(last.judgement?.reason == nil)
    }

    // MARK: The block page

    static let blockPages: [RedirectCase] = [
        RedirectCase(name: "deny", request: "GET /3abc HTTP/1.1\r\nHost: ozilla.org\r\n\r\n",
                     location: "http://portal.test/blocked?rule=deny-ozilla&url=http%3A%2F%2Fozilla.org%2F3abc"),
        RedirectCase(name: "portal URL with a directory and a query", portal: "http://portal.test/gate/notice?lang=en",
                     request: "GET / HTTP/1.1\r\nHost: www.ozilla.org\r\n\r\n",
                     location: "http://portal.test/gate/blocked?lang=en&rule=deny-ozilla&url=http%3A%2F%2Fwww.ozilla.org%2F"),
        RedirectCase(name: "quotes, brackets, markup and percent signs in the URL", request: "GET /a%20b?q=\"x\"&r=[1]<i> HTTP/1.1\r\nHost: ozilla.org:8080\r\n\r\n",
                     location: "http://portal.test/blocked?rule=deny-ozilla&url=http%3A%2F%2Fozilla.org%3A8080%2Fa%2520b%3Fq%3D%22x%22%26r%3D%5B1%5D%3Ci%3E"),
        RedirectCase(name: "request in 16-byte segments", request: "GET /x HTTP/1.1\r\nHost: ozilla.org\r\nAccept: */*\r\n\r\n", size: 16,
                     location: "http://portal.test/blocked?rule=deny-ozilla&url=http%3A%2F%2Fozilla.org%2Fx"),
        RedirectCase(name: "a default action that denies sends no rule name", policy: "", defaultAction: "deny",
                     request: "GET /x HTTP/1.1\r\nHost: any.example\r\n\r\n", location: "http://portal.test/blocked?url=http%3A%2F%2Fany.example%2Fx"),
    ]

    @Test("HTTP deny with deny_page: the server is reset, the client redirected to the block page", arguments: blockPages)
    func blockPage(_ c: RedirectCase) throws {
        var inspector = try makeInspector(policy: c.policy ?? webPolicy, defaultAction: c.defaultAction) { $0.portalURL = c.portal }
        let connection = Connection(serverPort: 80)
        let request = http(c.request)
        let pieces = segments(request, size: c.size)
        let actions = inspector.feed(connection, pieces)
        expectUndecided(actions.dropLast())
        let last = try #require(actions.last)
        #expect(last.verdict == .accept(mark: redirected))
        #expect(last.segments == [connection.reset(after: pieces.last!.offset),
                                  connection.redirect(after: request.count, location: c.location)])
        let judgement = try #require(last.judgement)
        #expect(judgement.outcome == .redirect && judgement.decision?.action == .deny)
        #expect(judgement.description.hasPrefix("level=info msg=flow outcome=redirect client=192.0.2.10:50000 server=198.51.100.20:80 proto=http "), "\(judgement)")
        #expect(inspector.counters.redirected == 1 && inspector.counters.denied == 0)
    }

    @Test("HTTP deny with deny_page = false: a reset both ways, nothing sent to the client")
    func noBlockPage() throws {
        var inspector = try makeInspector { $0.denyPage = false }
        let connection = Connection(serverPort: 80)
        let action = inspector.judge(connection, http("GET /3abc HTTP/1.1\r\nHost: ozilla.org\r\n\r\n"))
        #expect(action.verdict == .accept(mark: denied))
        #expect(action.segments == [connection.reset(after: 0)])
        #expect(action.judgement?.outcome == .deny && action.judgement?.reason == nil)
    }

    @Test("TLS deny: reset both ways, and the log says why there is no block page", arguments: [true, false])
    func tlsDenyHasNoBlockPage(denyPage: Bool) throws {
        var inspector = try makeInspector { $0.denyPage = denyPage }
        let connection = Connection()
        let action = inspector.judge(connection, try HelloFixtures.bytes("curl-curl.example"))
        #expect(action.verdict == .accept(mark: denied))
        #expect(action.segments == [connection.reset(after: 0)])
        let line = try #require(action.judgement).description
        #expect(line.hasSuffix(denyPage ? " reason=\"no block page on TLS: it cannot be shown without breaking the handshake; reset both ways\"" : " action=deny rule=deny-fixtures pattern=\"domain curl.example\""), "\(line)")
    }

    @Test("a deny rule on a Fast Open HTTP request resets: no block page can be sent before the SYN-ACK")
    func fastOpenDeny() throws {
        var inspector = try makeInspector()
        let connection = Connection(serverPort: 80)
        let request = Array("GET / HTTP/1.1\r\nHost: ozilla.org\r\n\r\n".utf8)
        let action = inspector.inspect(connection.packet(sequence: connection.isn, .syn, request), now: 1, wallClock: mondayMorning)
        #expect(action.verdict == .accept(mark: denied))
        #expect(action.segments.isEmpty)
        #expect(action.judgement?.reason?.contains("no block page on a TCP Fast Open request") == true)
    }

    // MARK: The fail verdict

    static let failTriggers: [FailTrigger] = [
        FailTrigger(name: "duplicate Host", stream: .text("GET / HTTP/1.1\r\nHost: mozilla.org\r\nHost: ozilla.org\r\n\r\n"), reason: "duplicate Host header"),
        FailTrigger(name: "duplicate Host, LF only", stream: .text("GET / HTTP/1.1\nHost: mozilla.org\nHost: mozilla.org\n\n"), reason: "duplicate Host header"),
        FailTrigger(name: "HTTP/1.1 without Host", stream: .text("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), reason: "missing Host header"),
        FailTrigger(name: "ClientHello without SNI", stream: .fixture("openssl-nosni"), reason: "ClientHello without a server name"),
        FailTrigger(name: "ClientHello without SNI in 100-byte segments", stream: .fixture("openssl-nosni"), size: 100, reason: "ClientHello without a server name"),
        FailTrigger(name: "garbage", stream: .raw([0x00, 0xff, 0x13, 0x37]), reason: "not a readable HTTP request"),
        FailTrigger(name: "SSH banner", stream: .text("SSH-2.0-OpenSSH_9.6\r\n"), reason: "not a readable HTTP request"),
        FailTrigger(name: "TLS record that is not TLS", stream: .raw([0x16, 0x09, 0x01, 0x00, 0x04, 1, 2, 3, 4]), reason: "malformed ClientHello"),
        FailTrigger(name: "handshake that is not a ClientHello", stream: .raw([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]), reason: "malformed ClientHello"),
        FailTrigger(name: "ClientHello past bufferLimit", stream: .fixture("curl-curl.example"), size: 100, bufferLimit: 256,
                    reason: "first bytes longer than 256 bytes", failsAt: 2),
        FailTrigger(name: "ClientHello past maxPacketsUndecided", stream: .fixture("curl-curl.example"), size: 100, maxPacketsUndecided: 4,
                    reason: "or 4 packets", failsAt: 4),
        FailTrigger(name: "HTTP head past bufferLimit", stream: .text("GET / HTTP/1.1\r\nHost: mozilla.org\r\nCookie: " + String(repeating: "c", count: 100) + "\r\n\r\n"),
                    size: 40, bufferLimit: 64, reason: "request head exceeds 64 bytes", failsAt: 1),
    ]

    /// Feeds `trigger`'s stream; the actions up to the failing one, and the stream offset of that segment.
    private func failing(_ trigger: FailTrigger, _ mode: Config.FailMode) throws -> (undecided: ArraySlice<PacketAction>, failed: PacketAction, offset: Int) {
        var inspector = try makeInspector(fail: mode) {
            $0.bufferLimit = trigger.bufferLimit
            $0.maxPacketsUndecided = trigger.maxPacketsUndecided
        }
        let pieces = segments(try trigger.stream.bytes(), size: trigger.size)
        let actions = inspector.feed(Connection(), pieces)
        let index = trigger.failsAt ?? pieces.count - 1
        return (actions[..<index], actions[index], pieces[index].offset)
    }

    @Test("unreadable first bytes get the fail verdict", arguments: failTriggers, [Config.FailMode.closed, .open])
    func failVerdict(_ trigger: FailTrigger, _ mode: Config.FailMode) throws {
        let (undecided, failed, _) = try failing(trigger, mode)
        expectUndecided(undecided)
        expectFail(failed, mode, reason: trigger.reason)
    }

    @Test("the fail verdict resets the server at the first byte it has not received", arguments: failTriggers)
    func failResetSequence(_ trigger: FailTrigger) throws {
        let (_, failed, offset) = try failing(trigger, .closed)
        // The deciding segment is rejected by the ruleset, so the server expects its first byte next;
        // a reset past that is only answered with a challenge ACK (RFC 5961 §3.2).
        #expect(failed.segments == [Connection().reset(after: offset)])
    }

    @Test("a flow that does not complete within flowTimeout gets the fail verdict",
          arguments: [(9.9, false), (10, true), (10.5, true), (3600, true)] as [(Double, Bool)])
    func flowTimeout(_ lastAt: Double, _ timedOut: Bool) throws {
        var inspector = try makeInspector { $0.flowTimeout = 10 }
        let connection = Connection()
        let pieces = thirds(try curlHello("mozilla.org."))
        _ = inspector.inspect(connection.syn, now: 0, wallClock: mondayMorning)
        expectUndecided([pieces[0], pieces[1]].map { inspector.inspect(connection.data($0.bytes, at: $0.offset), now: 5, wallClock: mondayMorning) })
        let last = inspector.inspect(connection.data(pieces[2].bytes, at: pieces[2].offset), now: lastAt, wallClock: mondayMorning)
        if timedOut {
            expectFail(last, .closed, reason: "no ClientHello or request head within 10 s")
            #expect(last.segments == [connection.reset(after: pieces[2].offset)])
        } else {
            #expect(last.verdict == .accept(mark: permitted))
            #expect(last.segments.isEmpty)
        }
    }

    @Test("too many out-of-order segments get the fail verdict, the server reset where its stream stands")
    func tooManyWaiting() throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let hello = try HelloFixtures.bytes("curl-curl.example")
        let first = segments(hello, size: 10)
        // The first segment passes; then everything but the second, newest first.
        let pieces = [first[0]] + first[2...].reversed()
        let actions = inspector.feed(connection, pieces)
        let failed = try #require(actions.firstIndex { $0.verdict != .accept(mark: nil) })
        #expect(failed == 1 + StreamReassembly.maxPendingSegments)
        expectUndecided(actions[..<failed])
        expectFail(actions[failed], .closed, reason: "first bytes longer than")
        #expect(actions[failed].segments == [connection.reset(after: 10)])
    }

    @Test("a full flow table gets the fail verdict for a new SYN",
          arguments: [(Config.FailMode.closed, denied), (.open, permitted)] as [(Config.FailMode, UInt32)])
    func fullTable(_ fail: Config.FailMode, _ mark: UInt32) throws {
        var inspector = try makeInspector(fail: fail) { $0.maxFlows = 2 }
        let flows = (1...3).map { Connection(clientPort: UInt16(50_000 + $0)) }
        expectUndecided(flows.prefix(2).map { inspector.inspect($0.syn, now: 1, wallClock: mondayMorning) })
        let refused = inspector.inspect(flows[2].syn, now: 1, wallClock: mondayMorning)
        #expect(refused.verdict == .accept(mark: mark))
        #expect(refused.segments.isEmpty)  // the server has not even answered the SYN
        #expect(refused.judgement?.reason?.contains("flow table full (2 flows)") == true)
        #expect(inspector.flows.count == 2)
        // A SYN on a flow the table holds starts it again.
        expectUndecided([inspector.inspect(flows[0].syn, now: 1, wallClock: mondayMorning)])
        // Once idle flows are swept, new flows are tracked again.
        let later = 1 + inspector.settings.flowTimeout
        inspector.expire(now: later)
        #expect(inspector.flows.count == 0)
        expectUndecided([inspector.inspect(flows[2].syn, now: later, wallClock: mondayMorning)])
    }

    @Test("a flow seen without its SYN does not grow a full table past its capacity")
    func fullTableMidStream() throws {
        var inspector = try makeInspector { $0.maxFlows = 2 }
        let flows = (1...3).map { Connection(clientPort: UInt16(50_000 + $0)) }
        _ = flows.prefix(2).map { inspector.inspect($0.syn, now: 1, wallClock: mondayMorning) }
        let hello = try HelloFixtures.bytes("curl-curl.example")
        _ = inspector.inspect(flows[2].packet(sequence: flows[2].base, .ack), now: 1, wallClock: mondayMorning)
        let failed = inspector.inspect(flows[2].data(hello[..<100]), now: 1, wallClock: mondayMorning)
        #expect(inspector.flows.count <= 2)
        #expect(failed.verdict == .accept(mark: denied), "untracked data gets the fail verdict (closed)")
    }

    // MARK: A pattern PCRE2 gives up on

    /// A deny rule whose host regex backtracks catastrophically on a host of many a's, then
    /// a permit for everything that a fall-through would reach.
    static let trapPolicy = """
        deny-trap: {
            match-host-regex: ^(a+)+[.]trap$
            action: deny
        }
        permit-everything-after: {
            match-host-regex: .
            action: permit
        }
        """

    @Test("a rule PCRE2 gives up on gets the fail verdict, counted and logged with the rule and PCRE2's reason",
          arguments: [Config.FailMode.closed, .open])
    func matchError(_ mode: Config.FailMode) throws {
        var inspector = try makeInspector(fail: mode, policy: Self.trapPolicy)
        let connection = Connection(serverPort: 80)
        let host = String(repeating: "a", count: 40) + ".trap.x"
        let pieces = segments(http("GET / HTTP/1.1\r\nHost: \(host)\r\nAccept: */*\r\n\r\n"), size: 20)
        let actions = inspector.feed(connection, pieces)
        expectUndecided(actions.dropLast())
        let last = try #require(actions.last)
        expectFail(last, mode, reason: "rule 'deny-trap' pattern ^(a+)+[.]trap$ could not be matched: match limit exceeded (PCRE2 error ")
        if mode == .closed { #expect(last.segments == [connection.reset(after: pieces.last!.offset)]) }
        #expect(inspector.counters.matchErrors == 1)
        #expect(inspector.counters.failVerdicts == 1)
        #expect(inspector.counters.permitted == (mode == .open ? 1 : 0) && inspector.counters.denied == (mode == .closed ? 1 : 0))
        let line = try #require(last.judgement).description
        #expect(line.hasPrefix("level=info msg=flow outcome=\(mode == .closed ? "deny" : "permit") client=192.0.2.10:50000 server=198.51.100.20:80 proto=http host=\(host) method=GET url=http://\(host)/ reason=\"fail \(mode.rawValue): rule 'deny-trap'"), "\(line)")

        // A host the pattern answers quickly goes on to the next rule, uncounted.
        let other = inspector.judge(Connection(clientPort: 50_001, serverPort: 80), http("GET / HTTP/1.1\r\nHost: aaaa.trap.x\r\n\r\n"))
        #expect(other.verdict == .accept(mark: permitted))
        #expect(other.judgement?.decision?.rule == "permit-everything-after")
        #expect(inspector.counters.matchErrors == 1)
    }

    @Test("worker counters from a daemon.json without matchErrors still read")
    func countersDecodeWithoutANewerField() throws {
        let json = #"{"packets":5,"permitted":1,"denied":2,"redirected":0,"failVerdicts":1,"flowsTracked":3,"flowsExpired":4}"#
        let counters = try JSONDecoder().decode(WorkerCounters.self, from: Data(json.utf8))
        var expected = WorkerCounters()
        (expected.packets, expected.permitted, expected.denied, expected.failVerdicts, expected.flowsTracked, expected.flowsExpired) = (5, 1, 2, 1, 3, 4)
        #expect(counters == expected)
        var counted = expected
        counted.matchErrors = 7
        #expect(try JSONDecoder().decode(WorkerCounters.self, from: JSONEncoder().encode(counted)) == counted)
    }

    // MARK: Time windows

    @Test("a rule outside its time window falls through to default_action", arguments: [
        ("2026-11-23T10:00:00Z", denied, "work-hours"),
        ("2026-11-23T17:59:59Z", denied, "work-hours"),
        ("2026-11-23T18:00:00Z", permitted, nil),
        ("2026-11-23T07:59:59Z", permitted, nil),
        ("2026-11-22T10:00:00Z", permitted, nil),  // Sunday
    ] as [(String, UInt32, String?)])
    func timeWindow(_ at: String, _ mark: UInt32, _ rule: String?) throws {
        for (stream, port) in [(try curlHello("work.example"), UInt16(443)), (http("GET / HTTP/1.1\r\nHost: work.example\r\n\r\n"), 80)] {
            var inspector = try makeInspector()
            let action = inspector.judge(Connection(serverPort: port), stream, at: instant(at))
            // Denied over HTTP, the visitor is sent to the block page.
            #expect(action.verdict == .accept(mark: port == 80 && mark == denied ? redirected : mark))
            #expect(action.judgement?.decision?.rule == rule)
        }
    }

    // MARK: Not for the inspector

    @Test("packets that are not TCP pass unmarked", arguments: [
        ("UDP", PacketBuilder.ipv4(protocol: 17, PacketBuilder.udp("query"))),
        ("ICMP", PacketBuilder.ipv4(protocol: 1, [8, 0, 0, 0, 0, 1, 0, 1])),
        ("IPv6 UDP", PacketBuilder.ipv6(next: 17, PacketBuilder.udp("query"))),
        ("later IPv4 fragment", PacketBuilder.ipv4(fragmentField: 185, PacketBuilder.tcp(flags: .ack, "frag"))),
        ("TCP header cut short", Array(PacketBuilder.ipv4(PacketBuilder.tcp(flags: .ack, "data")).prefix(30))),
        ("TCP data offset below 5", PacketBuilder.ipv4(PacketBuilder.tcp(flags: .ack, dataOffsetWords: 4, "x"))),
        ("empty", []),
        ("not IP", [0x00, 0x01, 0x02, 0x03]),
    ] as [(String, [UInt8])])
    func notTCP(_ name: String, _ bytes: [UInt8]) throws {
        var inspector = try makeInspector()
        let action = inspector.inspect(QueuedPacket(id: 7, mark: 0x8000_0001, bytes: bytes), now: 1, wallClock: mondayMorning)
        expectUndecided([action])
        #expect(inspector.flows.count == 0)
    }

    // MARK: Fast Open and evasions

    @Test("data on a SYN (TCP Fast Open) is judged like any first bytes")
    func dataOnSYN() throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let syn = connection.packet(sequence: connection.isn, .syn, try HelloFixtures.bytes("curl-curl.example"))
        let action = inspector.inspect(syn, now: 1, wallClock: mondayMorning)
        #expect(action.verdict == .accept(mark: denied))
    }

    @Test("a warn rule on a Fast Open HTTP request denies: no redirect can be placed before the SYN-ACK")
    func fastOpenWarn() throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let request = Array("GET / HTTP/1.1\r\nHost: warn.example\r\n\r\n".utf8)
        let action = inspector.inspect(connection.packet(sequence: connection.isn, .syn, request), now: 1, wallClock: mondayMorning)
        #expect(action.verdict == .accept(mark: denied))
        #expect(action.segments.isEmpty, "no reset for a server that has not seen the SYN, no redirect without its sequence numbers")
        #expect(action.judgement?.reason?.contains("TCP Fast Open") == true)
    }

    @Test("overlapping segments that disagree get the fail verdict")
    func conflictingOverlap() throws {
        var inspector = try makeInspector()
        let connection = Connection()
        let hello = try HelloFixtures.bytes("curl-curl.example")
        _ = inspector.inspect(connection.syn, now: 1, wallClock: mondayMorning)
        _ = inspector.inspect(connection.data(hello[..<100]), now: 1, wallClock: mondayMorning)
        var altered = Array(hello[50..<150])
        altered[10] ^= 0xff
        let action = inspector.inspect(connection.data(altered, at: 50), now: 1, wallClock: mondayMorning)
        #expect(action.verdict == .accept(mark: denied))
        #expect(action.judgement?.reason?.contains("overlapping segments carry different bytes") == true, "\(String(describing: action.judgement))")
    }
}

/// The fail verdict in `mode`: closed denies and resets the server, open permits.
private func expectFail(_ action: PacketAction, _ mode: Config.FailMode, reason: String,
                        sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    #expect(action.verdict == .accept(mark: mode == .closed ? denied : permitted), sourceLocation: sourceLocation)
    #expect(action.segments.map(\.flags) == (mode == .closed ? [[.rst, .ack]] : []), sourceLocation: sourceLocation)
    #expect(action.segments.allSatisfy { $0.source == client4 && $0.destination == server4 }, sourceLocation: sourceLocation)
    #expect(action.judgement?.outcome == (mode == .closed ? .deny : .permit), sourceLocation: sourceLocation)
    #expect(action.judgement?.decision == nil, sourceLocation: sourceLocation)
    let text = action.judgement?.reason ?? ""
    #expect(text.hasPrefix("fail \(mode.rawValue): ") && text.contains(reason), "reason: \(text)", sourceLocation: sourceLocation)
}
