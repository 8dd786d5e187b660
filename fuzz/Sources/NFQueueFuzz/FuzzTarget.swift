// libFuzzer entry point for the NFQueue parsers and the flow inspector.
//
// One target, no selector byte: every input goes through all four checks below. The
// parsers refuse each other's input on its first byte (0x16 is not an HTTP method
// byte, letters are not a TLS record type), so running all of them costs little, the
// captured ClientHellos and HTTP heads work as seeds byte for byte, and a crash file
// reproduces against the parser directly. Choices the input does not spell out (where
// to cut prefixes, how to split a stream into segments, the inspector's settings) come
// from a generator seeded with a hash of the input, so every run is deterministic.
//
// Built only through fuzz/run.sh (`-sanitize=fuzzer -parse-as-library`); libFuzzer
// supplies `main`. A violated property calls `violated`, which traps.

import Compiler
import Foundation
import NFQueue

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input: [UInt8] = if let data, size > 0 { Array(UnsafeBufferPointer(start: data, count: size)) } else { [] }
    var choices = Choices(seed: input)
    Tally.start()
    ClientHelloChecks.run(input, &choices)
    HTTPChecks.run(input, &choices)
    PacketViewChecks.run(input)
    InspectorChecks.run(input, &choices)
    return 0
}

// MARK: - Support

/// How often each kind of answer came up, printed at exit when NFQUEUE_FUZZ_TALLY is set
/// (run.sh does so when replaying the corpus), to show the properties are not vacuous.
enum Tally {
    nonisolated(unsafe) static var counts: [String: Int] = [:]
    nonisolated(unsafe) static var enabled: Bool?

    static func start() {
        guard enabled == nil else { return }
        enabled = ProcessInfo.processInfo.environment["NFQUEUE_FUZZ_TALLY"] != nil
        if enabled == true {
            atexit {
                let lines = Tally.counts.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)" }
                FileHandle.standardError.write(Data(("NFQueueFuzz tally (inputs or events):\n" + lines.joined(separator: "\n") + "\n").utf8))
            }
        }
    }

    static func count(_ key: @autoclosure () -> String) {
        if enabled == true { counts[key(), default: 0] += 1 }
    }

    /// A reason with its numbers blanked, so the tally groups alike failures.
    static func shape(_ text: Substring) -> String {
        var out = ""
        for character in text where !(character.isNumber && out.last == "N") {
            out.append(character.isNumber ? "N" : character)
        }
        return out
    }

    static func kind<Value>(_ answer: ParseResult<Value>) -> String {
        switch answer {
        case .complete: "complete"
        case .needMoreData: "needMoreData"
        case .malformed: "malformed"
        }
    }
}

/// SplitMix64 seeded with FNV-1a of the input.
struct Choices: RandomNumberGenerator {
    private var state: UInt64

    init(seed bytes: [UInt8]) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        state = hash
    }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    /// True one time in `n`.
    mutating func oneIn(_ n: Int) -> Bool { int(0...(n - 1)) == 0 }
    mutating func pick<T>(_ options: [T]) -> T { options[int(0...(options.count - 1))] }
}

func hex(_ bytes: some Collection<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes { out += [digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]] }
    return String(decoding: out, as: UTF8.self)
}

/// Reports a broken property and traps, so libFuzzer records the input as a crash.
func violated(_ property: String, _ input: [UInt8]) -> Never {
    var message = "\n=== NFQueueFuzz: property violated ===\n\(property)\n"
    message += "input: \(input.count) bytes: \(hex(input.prefix(512)))\(input.count > 512 ? "…" : "")\n"
    FileHandle.standardError.write(Data(message.utf8))
    fatalError("fuzz property violated: \(property)")
}

/// Cut points for prefix checks: every one for short inputs, a sample otherwise.
func prefixCuts(_ count: Int, _ choices: inout Choices) -> [Int] {
    if count <= 48 { return Array(0..<count) }
    return [count - 1, count - 2, count / 2, choices.int(0...(count - 1)), choices.int(0...(count - 1)),
            choices.int(0...(count - 1))]
}

/// Properties every stream-parser answer has: `needMoreData(atLeast:)` asks for ≥ 1 byte.
func checkAnswer<Value>(_ answer: ParseResult<Value>, _ what: String, _ input: [UInt8]) {
    if case .needMoreData(let atLeast?) = answer, atLeast < 1 {
        violated("\(what): needMoreData(atLeast: \(atLeast))", input)
    }
}

/// What a prefix's answer promises about the whole input: `.complete` is final (the
/// same value), `.malformed` cannot be cured by more bytes, and `needMoreData(atLeast: k)`
/// means fewer than k further bytes cannot complete it.
func checkPrefix<Value: Equatable>(_ prefix: ParseResult<Value>, cut: Int, whole: ParseResult<Value>,
                                   _ what: String, _ input: [UInt8]) {
    checkAnswer(prefix, what, input)
    switch prefix {
    case .complete:
        if prefix != whole {
            violated("\(what): the first \(cut) bytes give \(prefix) but the whole input gives \(whole)", input)
        }
    case .malformed(let reason):
        if whole.malformedReason == nil {
            violated("\(what): the first \(cut) bytes are malformed (\(reason)) but the whole input gives \(whole)", input)
        }
    case .needMoreData(let atLeast):
        if let atLeast, input.count - cut < atLeast, whole.value != nil {
            violated("\(what): the first \(cut) bytes ask for at least \(atLeast) more bytes, "
                     + "yet \(input.count - cut) more give \(whole)", input)
        }
    }
}

/// Letters, digits, hyphen, underscore, dot (the parsers' own HostNameSyntax, restated).
func isNameByte(_ byte: UInt8) -> Bool {
    switch byte {
    case 0x61...0x7a, 0x41...0x5a, 0x30...0x39, UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."): true
    default: false
    }
}

/// Labels of 1–63 bytes, ≤ 253 bytes, one trailing dot allowed.
func isPlausibleName(_ name: [UInt8]) -> Bool {
    var body = name[...]
    if body.count > 1, body.last == UInt8(ascii: ".") { body = body.dropLast() }
    let labels = body.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    return body.count <= 253 && labels.allSatisfy { (1...63).contains($0.count) }
}

// MARK: - ClientHello

enum ClientHelloChecks {
    static func run(_ input: [UInt8], _ choices: inout Choices) {
        let whole = ClientHelloParser.parse(input)
        Tally.count("ClientHello \(Tally.kind(whole))")
        checkAnswer(whole, "ClientHello", input)
        for cut in prefixCuts(input.count, &choices) {
            // A slice, so the parser's non-Array path is exercised too.
            checkPrefix(ClientHelloParser.parse(input[..<cut]), cut: cut, whole: whole, "ClientHello", input)
        }
        guard case .complete(let hello) = whole else { return }
        checkValue(hello, input)

        // The same handshake message in records of another size is the same ClientHello.
        guard let message = handshakeMessage(input) else {
            violated("ClientHello: .complete, but its records do not concatenate to one handshake message", input)
        }
        let size = choices.pick([1, 2, 3, 4, 5, 7, 64, 511, 16384, choices.int(1...max(1, message.count))])
        let again = ClientHelloParser.parse(records(message, size: size, minor: UInt8(choices.int(0...4))))
        if again != whole {
            violated("ClientHello: re-split into \(size)-byte records gives \(again), whole input gave \(whole)", input)
        }
    }

    static func checkValue(_ hello: ClientHello, _ input: [UInt8]) {
        if hello.legacyVersion >> 8 != 3 {
            violated("ClientHello: legacy_version \(hello.legacyVersion) accepted", input)
        }
        if let name = hello.serverName {
            let bytes = Array(name.utf8)
            if bytes.isEmpty || !bytes.allSatisfy(isNameByte) || !isPlausibleName(bytes) {
                violated("ClientHello: implausible server name \(name.debugDescription) accepted", input)
            }
        }
        // Names are decoded leniently (a bad UTF-8 byte becomes U+FFFD, 3 bytes), so the
        // 255-byte cap is on scalars: each wire byte yields at most one.
        if hello.alpn.contains(where: { $0.isEmpty || $0.unicodeScalars.count > 255 }) {
            violated("ClientHello: ALPN list \(hello.alpn) has an empty or over-long name", input)
        }
        if hello.supportedVersions.count > 127 {
            violated("ClientHello: \(hello.supportedVersions.count) supported versions", input)
        }
    }

    /// The handshake message from a stream of records, walked independently of the parser.
    static func handshakeMessage(_ stream: [UInt8]) -> [UInt8]? {
        var message: [UInt8] = []
        var offset = 0
        while true {
            if message.count >= 4 {
                let total = 4 + (Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3]))
                if message.count == total { return message }
                if message.count > total { return nil }
            }
            guard offset + 5 <= stream.count, stream[offset] == 22, stream[offset + 1] == 3 else { return nil }
            let length = Int(stream[offset + 3]) << 8 | Int(stream[offset + 4])
            guard length > 0, offset + 5 + length <= stream.count else { return nil }
            message += stream[(offset + 5)..<(offset + 5 + length)]
            offset += 5 + length
        }
    }

    static func records(_ message: [UInt8], size: Int, minor: UInt8) -> [UInt8] {
        var out: [UInt8] = []
        for start in stride(from: 0, to: message.count, by: size) {
            let piece = message[start..<min(start + size, message.count)]
            out += [22, 3, minor, UInt8(piece.count >> 8), UInt8(piece.count & 0xff)]
            out += piece
        }
        return out
    }
}

// MARK: - HTTP request head

enum HTTPChecks {
    static func run(_ input: [UInt8], _ choices: inout Choices) {
        let whole = HTTPRequestParser.parse(input)
        Tally.count("HTTP \(Tally.kind(whole))")
        checkAnswer(whole, "HTTP", input)
        for cut in prefixCuts(input.count, &choices) {
            checkPrefix(HTTPRequestParser.parse(input[..<cut]), cut: cut, whole: whole, "HTTP", input)
        }

        // A smaller head limit can only turn answers into "too long": never a different head.
        if input.count < HTTPRequestParser.defaultMaxHeadLength {
            let limit = choices.int(0...(input.count + 2))
            let limited = HTTPRequestParser.parse(input, maxHeadLength: limit)
            checkAnswer(limited, "HTTP (maxHeadLength \(limit))", input)
            if limited.value != nil, limited != whole {
                violated("HTTP: maxHeadLength \(limit) gives \(limited), the default limit gives \(whole)", input)
            }
            if whole.malformedReason != nil, limited.malformedReason == nil {
                violated("HTTP: malformed with the default limit (\(whole)) but \(limited) with maxHeadLength \(limit)", input)
            }
        }

        guard case .complete(let head) = whole else { return }
        checkValue(head, input)

        // LF-only line ends are read like CRLF, both ways round.
        let lfOnly = replacingCRLF(input)
        let lfAnswer = HTTPRequestParser.parse(lfOnly)
        if lfAnswer != whole {
            violated("HTTP: with CRLF turned into LF the head parses as \(lfAnswer), not \(whole)", input)
        }
        let crlf = addingCR(input)
        if crlf.count < HTTPRequestParser.defaultMaxHeadLength {
            let crlfAnswer = HTTPRequestParser.parse(crlf)
            if crlfAnswer != whole {
                violated("HTTP: with every LF made CRLF the head parses as \(crlfAnswer), not \(whole)", input)
            }
        }
    }

    static func checkValue(_ head: HTTPRequestHead, _ input: [UInt8]) {
        let method = Array(head.method.utf8)
        let tokenBytes = Array("!#$%&'*+-.^_`|~".utf8)
        if method.isEmpty || method.count > 32 || !method.allSatisfy({ isNameByte($0) || tokenBytes.contains($0) }) {
            violated("HTTP: method \(head.method.debugDescription) accepted", input)
        }
        let version = Array(head.version.utf8)
        if version.count != 8 || !version.starts(with: "HTTP/1.".utf8) || !(0x30...0x39).contains(version[7]) {
            violated("HTTP: version \(head.version.debugDescription) accepted", input)
        }
        if head.target.utf8.isEmpty || !head.target.utf8.allSatisfy({ (0x21...0x7e).contains($0) && $0 != UInt8(ascii: "#") }) {
            violated("HTTP: target \(head.target.debugDescription) accepted", input)
        }
        if let host = head.host {
            let bytes = Array(host.utf8)
            let isLiteral = bytes.contains(UInt8(ascii: ":"))
            let allowed = bytes.allSatisfy { byte in
                isLiteral ? (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte) || byte == 0x3a || byte == 0x2e
                    : isNameByte(byte) && !(0x41...0x5a).contains(byte)
            }
            if bytes.isEmpty || !allowed || (!isLiteral && (bytes.last == UInt8(ascii: ".") || !isPlausibleName(bytes))) {
                violated("HTTP: host \(host.debugDescription) is not canonical", input)
            }
            let shown = isLiteral ? "[\(host)]" : host
            guard let schemeEnd = head.url.range(of: "://"),
                  head.url[schemeEnd.upperBound...].hasPrefix(shown) else {
                violated("HTTP: url \(head.url.debugDescription) does not name host \(host.debugDescription)", input)
            }
        } else if head.hostPort != nil || !head.url.hasPrefix("/") {
            violated("HTTP: no host, yet port \(String(describing: head.hostPort)) and url \(head.url.debugDescription)", input)
        }
        if let agent = head.userAgent {
            let scalars = agent.unicodeScalars
            let isSpace = { (s: Unicode.Scalar) in s == " " || s == "\t" }
            if scalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7f })
                || scalars.first.map(isSpace) == true || scalars.last.map(isSpace) == true {
                violated("HTTP: User-Agent \(agent.debugDescription) has controls or untrimmed whitespace", input)
            }
        }
    }

    static func replacingCRLF(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for (index, byte) in bytes.enumerated() {
            if byte == 0x0d, index + 1 < bytes.count, bytes[index + 1] == 0x0a { continue }
            out.append(byte)
        }
        return out
    }

    static func addingCR(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 8)
        for (index, byte) in bytes.enumerated() {
            if byte == 0x0a, index == 0 || bytes[index - 1] != 0x0d { out.append(0x0d) }
            out.append(byte)
        }
        return out
    }
}

// MARK: - PacketView

enum PacketViewChecks {
    struct Facts: Hashable {
        var version: PacketView.IPVersion
        var source: PacketAddress?
        var destination: PacketAddress?
        var transportProtocol: UInt8?
        var isFragment: Bool
        var fragmentOffset: Int?
        var isTruncated: Bool
        var tcp: TCPSegmentHeader?
        var udp: UDPDatagramHeader?
        var payloadRange: Range<Int>?

        init(_ view: PacketView) {
            version = view.version
            source = view.source
            destination = view.destination
            transportProtocol = view.transportProtocol
            isFragment = view.isFragment
            fragmentOffset = view.fragmentOffset
            isTruncated = view.isTruncated
            tcp = view.tcp
            udp = view.udp
            payloadRange = view.payloadRange
        }
    }

    static func run(_ input: [UInt8]) {
        let view = PacketView(input)
        Tally.count("PacketView \(view.version)\(view.tcp != nil ? " tcp" : view.udp != nil ? " udp" : "")\(view.payload?.isEmpty == false ? " +payload" : "")")
        check(view, input)

        // When every byte the IP header declares was delivered, bytes past that length
        // change nothing (an IPv6 jumbogram has no such length: it takes what is delivered).
        let declaredLength: Int? = switch view.version {
        case .v4 where input.count >= 20: Int(input[2]) << 8 | Int(input[3])
        case .v6 where input.count >= 40 && !(input[4] == 0 && input[5] == 0 && input[6] == 0):
            40 + (Int(input[4]) << 8 | Int(input[5]))
        default: nil
        }
        if let declaredLength, declaredLength <= input.count {
            let padded = PacketView(input + [0x16, 0x03, 0x01, 0x00, 0x45, 0x60, 0x00, 0xff])
            if Facts(padded) != Facts(view) {
                violated("PacketView: trailing bytes past the declared length changed \(Facts(view)) into \(Facts(padded))", input)
            }
        }
    }

    static func check(_ view: PacketView, _ input: [UInt8]) {
        let expected: PacketView.IPVersion = switch input.first.map({ $0 >> 4 }) {
        case 4: .v4
        case 6: .v6
        default: .unknown
        }
        var problems: [String] = []
        if view.version != expected { problems.append("version \(view.version)") }
        if view.bytes != input { problems.append("bytes differ from the input") }
        let width = view.version == .v4 ? 4 : 16
        if view.version == .unknown {
            if view.source != nil || view.destination != nil || view.transportProtocol != nil || view.tcp != nil
                || view.udp != nil || view.payloadRange != nil || view.isFragment || view.isTruncated {
                problems.append("an unknown version decoded fields")
            }
        } else if [view.source, view.destination].contains(where: { $0 != nil && $0?.bytes.count != width }) {
            problems.append("address width")
        }
        if let range = view.payloadRange {
            if range.lowerBound < 0 || range.upperBound > input.count { problems.append("payload range \(range)") }
            if view.tcp == nil && view.udp == nil { problems.append("payload without a transport header") }
        }
        if view.tcp != nil && view.udp != nil { problems.append("both TCP and UDP") }
        if view.tcp != nil && view.transportProtocol != PacketView.ProtocolNumber.tcp { problems.append("TCP header, protocol \(String(describing: view.transportProtocol))") }
        if view.udp != nil && view.transportProtocol != PacketView.ProtocolNumber.udp { problems.append("UDP header, protocol \(String(describing: view.transportProtocol))") }
        if view.isNonInitialFragment && (view.tcp != nil || view.udp != nil) { problems.append("transport header in a non-initial fragment") }
        if view.isFragment != (view.fragmentOffset != nil) { problems.append("isFragment vs fragmentOffset") }
        if let tcp = view.tcp, view.payloadRange != nil, !(20...60).contains(tcp.headerLength) {
            problems.append("TCP payload with header length \(tcp.headerLength)")
        }
        if let udp = view.udp, view.payloadRange != nil, udp.length < 8 { problems.append("UDP payload with length \(udp.length)") }
        if !problems.isEmpty {
            violated("PacketView: \(problems.joined(separator: "; ")) in \(Facts(view))", input)
        }
    }
}

// MARK: - Inspector

func queuedPacket(id: UInt32, mark: UInt32, bytes: [UInt8]) -> QueuedPacket {
    QueuedPacket(id: id, mark: mark, bytes: bytes)
}

enum InspectorChecks {
    static let wallClock = Date(timeIntervalSince1970: 1_790_000_000)
    static let client4 = PacketAddress(bytes: [10, 0, 0, 1])!
    static let server4 = PacketAddress(bytes: [192, 0, 2, 7])!
    static let client6 = PacketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])!
    static let server6 = PacketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2])!

    static func run(_ input: [UInt8], _ choices: inout Choices) {
        rawPacket(input, &choices)
        stream(input, &choices)
    }

    static func makeInspector(_ choices: inout Choices, streamLength: Int) -> Inspector {
        let mask: UInt32 = choices.oneIn(2) ? 0x00ff_ff00 : choices.pick([0xffff_ffff, 0x0000_0003, 0xc000_0000, 0x0000_0ff0])
        var settings = InspectorSettings(layout: MarkLayout(mask: mask), fail: choices.oneIn(2) ? .open : .closed,
                                         portalURL: choices.oneIn(2) ? "http://portal.example:8088/" : "http://portal.example/stop?from=enforcer")
        if choices.oneIn(4) { settings.bufferLimit = choices.int(1...(streamLength + 8)) }
        if choices.oneIn(4) { settings.maxPacketsUndecided = choices.int(1...8) }
        settings.maxFlows = choices.int(1...4)
        return Inspector(matcher: WebMatcher(rules: [], defaultAction: choices.pick(WebAction.allCases)), settings: settings)
    }

    static func expectedMark(_ outcome: FlowOutcome, packetMark: UInt32, _ layout: MarkLayout) -> UInt32 {
        let state: WebFlowState = switch outcome {
        case .permit: .permitted
        case .deny: .denied
        case .redirect: .redirected
        }
        return packetMark & ~layout.webMask | layout.webMark(state)
    }

    /// What holds for every answer: other mark bits kept, forged segments well formed.
    static func checkAction(_ action: PacketAction, _ packet: QueuedPacket, _ inspector: Inspector, _ input: [UInt8]) {
        let layout = inspector.settings.layout
        if case .accept(let mark?) = action.verdict {
            let states = WebFlowState.allCases.filter { $0 != .undecided }.map { layout.webMark($0) }
            if mark & ~layout.webMask != packet.mark & ~layout.webMask || !states.contains(mark & layout.webMask) {
                violated("Inspector: packet mark \(hex32(packet.mark)) answered with mark \(hex32(mark)) (mask \(hex32(layout.mask)))", input)
            }
        } else if action.judgement != nil {
            violated("Inspector: a judgement without a marked accept: \(action.verdict)", input)
        }
        for segment in action.segments { checkSegment(segment, input) }
    }

    static func hex32(_ value: UInt32) -> String { "0x" + hex([24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) }) }

    /// A forged segment decodes back to exactly what was asked for, checksums valid.
    static func checkSegment(_ segment: ForgedSegment, _ input: [UInt8]) {
        let bytes = segment.bytes
        let view = PacketView(bytes)
        let headerLength = segment.source.isIPv4 ? 20 : 40
        var ok = view.version == (segment.source.isIPv4 ? .v4 : .v6) && view.source == segment.source
            && view.destination == segment.destination && !view.isFragment && !view.isTruncated
            && view.payload.map(Array.init) == segment.payload && bytes.count == headerLength + 20 + segment.payload.count
        if let tcp = view.tcp {
            ok = ok && tcp.sourcePort == segment.sourcePort && tcp.destinationPort == segment.destinationPort
                && tcp.sequenceNumber == segment.sequence && tcp.acknowledgmentNumber == segment.acknowledgment
                && tcp.flags == segment.flags && tcp.headerLength == 20
        } else {
            ok = false
        }
        if ok {
            var pseudo = segment.source.bytes + segment.destination.bytes
            let tcpLength = bytes.count - headerLength
            pseudo += segment.source.isIPv4 ? [0, 6, UInt8(tcpLength >> 8), UInt8(tcpLength & 0xff)]
                : [0, 0, UInt8(tcpLength >> 8), UInt8(tcpLength & 0xff), 0, 0, 0, 6]
            ok = onesComplementSum(pseudo + bytes[headerLength...]) == 0xffff
                && (!segment.source.isIPv4 || onesComplementSum(bytes[0..<20]) == 0xffff)
        }
        if !ok {
            violated("Inspector: forged segment \(segment) encodes as \(hex(bytes)), which decodes as \(PacketViewChecks.Facts(view)) or has a bad checksum", input)
        }
    }

    static func onesComplementSum(_ bytes: some Collection<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var high: UInt8?
        for byte in bytes {
            if let first = high {
                sum += UInt32(first) << 8 | UInt32(byte)
                high = nil
            } else {
                high = byte
            }
        }
        if let first = high { sum += UInt32(first) << 8 }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return UInt16(sum)
    }

    /// The input as one queued packet, twice (the second time as a retransmission).
    static func rawPacket(_ input: [UInt8], _ choices: inout Choices) {
        var inspector = makeInspector(&choices, streamLength: input.count)
        let packet = queuedPacket(id: 1, mark: UInt32.random(in: 0...UInt32.max, using: &choices), bytes: input)
        let first = inspector.inspect(packet, now: 100, wallClock: wallClock)
        Tally.count("Inspector raw packet \(first.judgement.map { "judged \($0.kind ?? "-") \($0.outcome)" } ?? "\(first.verdict)")")
        checkAction(first, packet, inspector, input)
        checkAction(inspector.inspect(packet, now: 100.001, wallClock: wallClock), packet, inspector, input)
        let counters = inspector.counters
        if counters.packets != 2 || counters.permitted + counters.denied + counters.redirected > 2 {
            violated("Inspector: counters \(counters) after two packets", input)
        }
    }

    /// The input as a client's TCP stream, split into segments that may come out of
    /// order, duplicated or overlapping, then judged against the parsers' own answers.
    static func stream(_ stream: [UInt8], _ choices: inout Choices) {
        guard !stream.isEmpty else { return }
        var inspector = makeInspector(&choices, streamLength: stream.count)
        let settings = inspector.settings
        let defaultAction = inspector.matcher.defaultAction
        let isTLS = stream.first == 0x16
        let v6 = choices.oneIn(3)
        let client = v6 ? client6 : client4, server = v6 ? server6 : server4
        let clientPort = UInt16(choices.int(1024...65535)), serverPort: UInt16 = isTLS ? 443 : 80
        let key = FlowEnds(client: client, server: server, clientPort: clientPort, serverPort: serverPort)
        // Sequence numbers near the wrap point now and then.
        let isn: UInt32 = choices.oneIn(4) ? UInt32.max &- UInt32(choices.int(0...64)) : UInt32.random(in: 0...UInt32.max, using: &choices)
        let withSYN = !choices.oneIn(4)
        // TCP Fast Open now and then: the SYN itself carries the first piece.
        let fastOpen = withSYN && choices.oneIn(4)
        let base = withSYN ? isn &+ 1 : isn
        let serverSequence = UInt32.random(in: 0...UInt32.max, using: &choices)
        let packetMark = UInt32.random(in: 0...UInt32.max, using: &choices)

        // Segment plan: consecutive pieces, then maybe reordered, duplicated, overlapped.
        var pieces: [Range<Int>] = []
        let minimum = max(1, (stream.count + 47) / 48)
        let mode = choices.int(0...3)
        var start = 0
        while start < stream.count {
            let size = switch mode {
            case 0: stream.count
            case 1: choices.int(1...8)
            case 2: choices.int(1...600)
            default: choices.int(1...max(1, stream.count / 3))
            }
            let end = min(stream.count, start + max(size, minimum))
            pieces.append(start..<end)
            start = end
        }
        let firstPiece = pieces[0]
        // Without a SYN the first packet seen starts the stream, so it must be the first piece.
        let fixed = withSYN ? 0 : 1
        if choices.oneIn(3), pieces.count > fixed {
            for _ in 0..<choices.int(1...4) {
                let a = choices.int(fixed...(pieces.count - 1)), b = choices.int(fixed...(pieces.count - 1))
                pieces.swapAt(a, b)
            }
            if choices.oneIn(2) {
                let copy = pieces[choices.int(0...(pieces.count - 1))]
                pieces.insert(copy, at: choices.int(fixed...pieces.count))
            }
            if choices.oneIn(2) {
                let a = choices.int(0...(stream.count - 1)), b = choices.int((a + 1)...stream.count)
                pieces.insert(a..<b, at: choices.int(fixed...pieces.count))
            }
        }
        // After the stream: the first piece again (a retransmission).
        pieces.append(pieces[0])

        var now = 50.0
        var id: UInt32 = 1
        func send(_ flags: TCPFlags, sequence: UInt32, payload: [UInt8]) -> (QueuedPacket, PacketAction) {
            let segment = ForgedSegment(source: client, destination: server, sourcePort: clientPort, destinationPort: serverPort,
                                        sequence: sequence, acknowledgment: serverSequence, flags: flags, payload: payload)
            let packet = queuedPacket(id: id, mark: packetMark, bytes: segment.bytes)
            id += 1
            now += 0.001
            let action = inspector.inspect(packet, now: now, wallClock: wallClock)
            checkAction(action, packet, inspector, stream)
            return (packet, action)
        }

        var plan: [(flags: TCPFlags, sequence: UInt32, range: Range<Int>)] = []
        if withSYN { plan.append((flags: [.syn], sequence: isn, range: fastOpen ? firstPiece : 0..<0)) }
        plan += pieces.map { (flags: [.ack, .psh], sequence: base &+ UInt32($0.lowerBound), range: $0) }
        plan.append((flags: [.fin, .ack], sequence: base &+ UInt32(stream.count), range: stream.count..<stream.count))
        var judgement: Judgement?
        var judgedAt = 0
        for (index, step) in plan.enumerated() {
            let (packet, action) = send(step.flags, sequence: step.sequence, payload: Array(stream[step.range]))
            if step.flags.contains(.syn), step.range.isEmpty, action.judgement != nil || action.verdict != .accept(mark: nil) {
                violated("Inspector: a SYN without data got \(action.verdict), judgement \(String(describing: action.judgement))", stream)
            }
            if let decided = judgement {
                // Decided flows: the same mark on every later packet, nothing new said or sent.
                let expected = expectedMark(decided.outcome, packetMark: packet.mark, settings.layout)
                if action.verdict != .accept(mark: expected) || action.judgement != nil || !action.segments.isEmpty {
                    violated("Inspector: packet \(index) after a \(decided.outcome) verdict got \(action.verdict), "
                             + "judgement \(String(describing: action.judgement)), \(action.segments.count) segments", stream)
                }
            } else if let new = action.judgement {
                judgement = new
                judgedAt = index
                if step.flags.contains(.syn) { Tally.count("Inspector stream judged on a Fast Open SYN") }
                Tally.count("Inspector stream judged \(new.kind ?? "-") \(new.outcome)"
                            + (new.decision == nil ? " (fail:\(Tally.shape(new.reason?.split(separator: ":").dropFirst().first ?? "")))" : ""))
                checkJudgement(new, action: action, packet: packet, key: key, base: base, stream: stream,
                               settings: settings, defaultAction: defaultAction)
            } else if action.verdict != .accept(mark: nil) || !action.segments.isEmpty {
                violated("Inspector: undecided packet \(index) got \(action.verdict) and \(action.segments.count) segments", stream)
            }
        }

        if judgement == nil { Tally.count("Inspector stream undecided") }
        let counters = inspector.counters
        let verdicts = counters.permitted + counters.denied + counters.redirected
        if counters.packets != Int(id) - 1 || verdicts != (judgement == nil ? 0 : 1)
            || counters.failVerdicts != (judgement != nil && judgement?.decision == nil ? 1 : 0) {
            violated("Inspector: counters \(counters) after \(Int(id) - 1) packets and judgement \(String(describing: judgement))", stream)
        }

        // With every piece delivered and no limit in the way, the flow must be judged exactly
        // when the parser has an answer for the whole stream.
        let dataPackets = plan.filter { !$0.range.isEmpty }.count
        if stream.count < settings.bufferLimit, dataPackets <= min(settings.maxPacketsUndecided, 32) {
            let waiting = isTLS ? ClientHelloParser.parse(stream).isNeedMoreData
                : HTTPRequestParser.parse(stream, maxHeadLength: settings.bufferLimit).isNeedMoreData
            if waiting != (judgement == nil) {
                violated("Inspector: whole stream \(waiting ? "needs more data" : "has an answer"), yet judgement "
                         + "\(String(describing: judgement)) (packet \(judgedAt) of \(plan.count))", stream)
            }
        }
    }

    /// The judgement agrees with what the parsers say about the whole stream (every stream
    /// the inspector reassembles is a prefix of it), and the action carries it out.
    static func checkJudgement(_ judgement: Judgement, action: PacketAction, packet: QueuedPacket, key: FlowEnds, base: UInt32,
                               stream: [UInt8], settings: InspectorSettings, defaultAction: WebAction) {
        let isTLS = stream.first == 0x16
        func fail(_ what: String) -> Never { violated("Inspector: \(what); judgement \(judgement)", stream) }
        if !key.matches(judgement.flow) { fail("judgement for another flow") }
        if let decision = judgement.decision {
            if decision.action != defaultAction || decision.rule != nil { fail("no rules, yet decision \(decision)") }
            if isTLS {
                guard judgement.kind == "tls", case .complete(let hello) = ClientHelloParser.parse(stream) else {
                    fail("decided as TLS, but the whole stream parses as \(ClientHelloParser.parse(stream))")
                }
                var name = (hello.serverName ?? "").lowercased()
                if name.hasSuffix(".") { name.removeLast() }
                if judgement.host != name { fail("host \(String(describing: judgement.host)), ClientHello names \(String(describing: hello.serverName))") }
            } else {
                let answer = HTTPRequestParser.parse(stream, maxHeadLength: settings.bufferLimit)
                guard judgement.kind == "http", case .complete(let head) = answer else {
                    fail("decided as HTTP, but the whole stream parses as \(answer)")
                }
                if judgement.host != (head.host ?? key.server.description) {
                    fail("host \(String(describing: judgement.host)), request head names \(String(describing: head.host))")
                }
            }
            // warn/aup redirect plain HTTP; on TLS, and on a Fast Open SYN (no server sequence
            // numbers yet to place a page at), they deny.
            let decidedOnSYN = PacketView(packet.bytes).tcp?.flags.contains(.syn) == true
            let expected: FlowOutcome = switch decision.action {
            case .permit: .permit
            case .deny: .deny
            case .warn, .aup: isTLS || decidedOnSYN ? .deny : .redirect
            }
            if judgement.outcome != expected { fail("\(decision.action) on \(isTLS ? "TLS" : "HTTP") gave \(judgement.outcome)") }
        } else {
            let expected: FlowOutcome = settings.fail == .open ? .permit : .deny
            guard judgement.outcome == expected, let reason = judgement.reason, reason.hasPrefix("fail \(settings.fail.rawValue): ") else {
                fail("fail verdict should be \(expected) with a 'fail \(settings.fail.rawValue):' reason")
            }
            if reason.contains("malformed ClientHello") {
                let answer = ClientHelloParser.parse(stream)
                if !isTLS || answer.malformedReason == nil { fail("whole stream parses as \(answer)") }
            } else if reason.contains("not a readable HTTP request") {
                let answer = HTTPRequestParser.parse(stream, maxHeadLength: settings.bufferLimit)
                if isTLS || answer.malformedReason == nil { fail("whole stream parses as \(answer)") }
            } else if reason.contains("without a server name") {
                let answer = ClientHelloParser.parse(stream)
                guard case .complete(let hello) = answer, hello.serverName.map({ $0 == "." || $0.isEmpty }) ?? true else {
                    fail("whole stream parses as \(answer)")
                }
            }
        }

        // Carrying it out: the deciding packet's mark; a reset to the server unless permitted
        // (none when a Fast Open SYN decides: the server has no connection yet); the portal
        // redirect to the client on a redirect.
        let expectedMark = expectedMark(judgement.outcome, packetMark: packet.mark, settings.layout)
        if action.verdict != .accept(mark: expectedMark) { fail("verdict \(action.verdict), expected mark \(hex32(expectedMark))") }
        let onSYN = PacketView(packet.bytes).tcp?.flags.contains(.syn) == true
        var segments = action.segments[...]
        if judgement.outcome != .permit && !onSYN {
            guard let reset = segments.popFirst(), reset.flags == [.rst, .ack], reset.source == key.client,
                  reset.sourcePort == key.clientPort, reset.destinationPort == key.serverPort,
                  reset.sequence &- base <= UInt32(stream.count), reset.payload.isEmpty else {
                fail("no reset to the server first: \(action.segments)")
            }
        }
        if judgement.outcome == .redirect {
            let separator = settings.portalURL.contains("?") ? "&" : "?"
            let prefix = "HTTP/1.1 302 Found\r\nLocation: \(settings.portalURL)\(separator)rule="
            // The redirect's sequence number is the client's acknowledgment (never on a SYN).
            guard !onSYN, segments.count == 1, let redirect = segments.first, redirect.source == key.server,
                  redirect.flags == [.psh, .ack, .fin], redirect.payload.starts(with: prefix.utf8),
                  redirect.sequence == packet.tcpAcknowledgment else {
                fail("redirect segments \(action.segments)")
            }
        } else if !segments.isEmpty {
            fail("a \(judgement.outcome) sent \(action.segments.count) segments")
        }
    }
}

/// FlowKey's initializer is internal; the four fields it must hold.
struct FlowEnds {
    var client: PacketAddress
    var server: PacketAddress
    var clientPort: UInt16
    var serverPort: UInt16

    func matches(_ key: FlowKey) -> Bool {
        key.client == client && key.server == server && key.clientPort == clientPort && key.serverPort == serverPort
    }
}

extension QueuedPacket {
    /// The acknowledgment number of the client's segment (the server's next sequence number).
    var tcpAcknowledgment: UInt32? { PacketView(bytes).tcp?.acknowledgmentNumber }
}
