import Compiler
import Foundation
import Testing
@testable import NFQueue

/// A fixture from Fixtures/ and what a correct parse of it reports.
struct CapturedHello: Sendable, CustomTestStringConvertible {
    let file: String
    let records: Int
    let expected: ClientHello
    var testDescription: String { file }
}

/// A one-field mutation of the curl fixture and the exact answer it must get.
struct HelloVariant: Sendable, CustomTestStringConvertible {
    enum Outcome: Sendable {
        /// `.malformed` with a reason containing this text.
        case malformed(String)
        case needMoreData
        case complete(serverName: String?, ech: Bool = false)
    }

    let name: String
    let outcome: Outcome
    let mutate: @Sendable (inout HelloEditor) -> Void

    init(_ name: String, _ outcome: Outcome, _ mutate: @escaping @Sendable (inout HelloEditor) -> Void) {
        self.name = name
        self.outcome = outcome
        self.mutate = mutate
    }

    var testDescription: String { name }
}

private let tls13Down: [UInt16] = [0x0304, 0x0303, 0x0302, 0x0301]
/// What capture.py offers with -alpn: proto-000 … proto-149.
private let manyProtocols = (0..<150).map { "proto-\($0, width: 3)" }
private let chromeLike = ClientHello(alpn: ["h2", "http/1.1"], hasEncryptedClientHello: true,
                                     supportedVersions: [0x3a3a, 0x0304, 0x0303])

private func with(_ hello: ClientHello, serverName: String) -> ClientHello {
    var copy = hello
    copy.serverName = serverName
    return copy
}

@Suite("TLS ClientHello parser")
struct ClientHelloParserTests {
    static let captured: [CapturedHello] = [
        CapturedHello(file: "openssl-openssl.example", records: 1, expected: ClientHello(serverName: "openssl.example", supportedVersions: tls13Down)),
        CapturedHello(file: "openssl-nosni", records: 1, expected: ClientHello(serverName: nil, supportedVersions: tls13Down)),
        CapturedHello(file: "openssl-bigalpn.example", records: 4, expected: ClientHello(serverName: "bigalpn.example", alpn: manyProtocols, supportedVersions: tls13Down)),
        CapturedHello(file: "curl-curl.example", records: 1, expected: ClientHello(serverName: "curl.example", alpn: ["h2", "http/1.1"], supportedVersions: tls13Down)),
        CapturedHello(file: "python-python.example", records: 1, expected: ClientHello(serverName: "python.example", supportedVersions: [0x0304, 0x0303])),
        CapturedHello(file: "gnutls-gnutls.example", records: 1, expected: ClientHello(serverName: "gnutls.example", supportedVersions: tls13Down)),
        CapturedHello(file: "synthetic-pq.example", records: 1, expected: with(chromeLike, serverName: "pq.example")),
        CapturedHello(file: "synthetic-split.example", records: 3, expected: with(chromeLike, serverName: "split.example")),
    ]

    @Test("whole fixture parses", arguments: captured)
    func wholeFixture(_ fixture: CapturedHello) throws {
        let stream = try HelloFixtures.bytes(fixture.file)
        #expect(ClientHelloParser.parse(stream) == .complete(fixture.expected))
        #expect(ClientHelloParser.parse(Data(stream)) == .complete(fixture.expected), "non-Array collections too")
        #expect(Self.countRecords(stream) == fixture.records)
    }

    /// Fed one byte at a time, every prefix must be a valid prefix: need-more-data,
    /// never malformed and never a (possibly wrong) early answer, with `atLeast` a true
    /// lower bound on what is still missing.
    @Test("every prefix needs more data", arguments: captured)
    func everyPrefix(_ fixture: CapturedHello) throws {
        let stream = try HelloFixtures.bytes(fixture.file)
        var wrong: [Int] = []
        for length in 0..<stream.count {
            switch ClientHelloParser.parse(stream[..<length]) {
            case .needMoreData(let atLeast?) where atLeast >= 1 && length + atLeast <= stream.count:
                continue
            default:
                wrong.append(length)
            }
        }
        #expect(wrong.isEmpty, "prefix lengths with a wrong answer: \(wrong.prefix(10))")
    }

    /// The same handshake message in records of any size gives the same answer.
    @Test("record boundaries do not matter", arguments: captured, [1, 3, 64, 16384])
    func recordSizes(_ fixture: CapturedHello, recordSize: Int) throws {
        let message = HelloFixtures.handshakeMessage(try HelloFixtures.bytes(fixture.file))
        let stream = HelloFixtures.records(message, size: recordSize)
        #expect(ClientHelloParser.parse(stream) == .complete(fixture.expected))
    }

    /// What follows the ClientHello (ChangeCipherSpec, early data) is not looked at.
    @Test("records after the ClientHello are ignored", arguments: captured)
    func laterRecords(_ fixture: CapturedHello) throws {
        let stream = try HelloFixtures.bytes(fixture.file)
        let changeCipherSpec: [UInt8] = [20, 3, 3, 0, 1, 1]
        let applicationData: [UInt8] = [23, 3, 3, 0xff, 0xff, 1, 2, 3]
        #expect(ClientHelloParser.parse(stream + changeCipherSpec + applicationData) == .complete(fixture.expected))
    }

    static let variants: [HelloVariant] = [
        HelloVariant("record length +1", .malformed("record extends 1 bytes past the ClientHello")) { $0.add(1, at: HelloLayout.recordLength, width: 2) },
        HelloVariant("record length +3 with 3 trailing bytes", .malformed("record extends 3 bytes past the ClientHello")) { $0.add(3, at: HelloLayout.recordLength, width: 2); $0.bytes += [0, 0, 0] },
        HelloVariant("record length -1: last byte read as a record type", .malformed("record content type 0 is not handshake")) { $0.add(-1, at: HelloLayout.recordLength, width: 2) },
        HelloVariant("record length -1, stream ends with the record", .needMoreData) { $0.add(-1, at: HelloLayout.recordLength, width: 2); $0.bytes.removeLast() },
        HelloVariant("record length 0", .malformed("empty handshake record")) { $0.set(at: HelloLayout.recordLength, width: 2, to: 0) },
        HelloVariant("record length 2^14+2049", .malformed("record length 18433 exceeds 18432")) { $0.set(at: HelloLayout.recordLength, width: 2, to: 18433) },
        HelloVariant("record length 0xffff", .malformed("record length 65535 exceeds")) { $0.set(at: HelloLayout.recordLength, width: 2, to: 0xffff) },
        HelloVariant("record content type alert", .malformed("record content type 21")) { $0.bytes[0] = 21 },
        HelloVariant("record version major 2", .malformed("record version major 2")) { $0.bytes[1] = 2 },
        HelloVariant("handshake type ServerHello", .malformed("handshake message type 2 is not ClientHello")) { $0.bytes[5] = 2 },
        HelloVariant("handshake length +1: continues in a next record", .needMoreData) { $0.add(1, at: HelloLayout.handshakeLength, width: 3) },
        HelloVariant("handshake length -1", .malformed("record extends 1 bytes past the ClientHello")) { $0.add(-1, at: HelloLayout.handshakeLength, width: 3) },
        HelloVariant("handshake length over 64 KiB", .malformed("handshake length 65533 exceeds 65532")) { $0.set(at: HelloLayout.handshakeLength, width: 3, to: 65533) },
        HelloVariant("handshake length 0xffffff", .malformed("handshake length 16777215 exceeds")) { $0.set(at: HelloLayout.handshakeLength, width: 3, to: 0xffffff) },
        HelloVariant("legacy_version 0x0200", .malformed("legacy_version 0x0200 is not TLS")) { $0.set(at: 9, width: 2, to: 0x0200) },
        HelloVariant("session id length +1", .malformed("session id length 33 exceeds 32")) { $0.add(1, at: $0.layout.sessionIDLength, width: 1) },
        HelloVariant("session id length 255", .malformed("session id length 255 exceeds 32")) { $0.set(at: $0.layout.sessionIDLength, width: 1, to: 255) },
        HelloVariant("cipher suites length odd", .malformed("cipher suites length 61 is not a positive even number")) { $0.add(-1, at: $0.layout.cipherSuitesLength, width: 2) },
        HelloVariant("cipher suites length 0", .malformed("cipher suites length 0 is not a positive even number")) { $0.set(at: $0.layout.cipherSuitesLength, width: 2, to: 0) },
        HelloVariant("cipher suites length overlong", .malformed("cipher suites length exceeds the message")) { $0.set(at: $0.layout.cipherSuitesLength, width: 2, to: 0xfffe) },
        HelloVariant("compression methods length 0", .malformed("no compression methods")) { $0.set(at: $0.layout.compressionLength, width: 1, to: 0) },
        HelloVariant("extensions length +1", .malformed("extensions length exceeds the message")) { $0.add(1, at: $0.layout.extensionsLength, width: 2) },
        HelloVariant("extensions length -1", .malformed("1 trailing bytes after the extensions")) { $0.add(-1, at: $0.layout.extensionsLength, width: 2) },
        HelloVariant("server_name extension length +1", .malformed("server_name list length does not match the extension")) { $0.add(1, at: $0.layout.extension(0).lengthField, width: 2) },
        HelloVariant("last extension length +1", .malformed("truncated extension")) { $0.add(1, at: $0.layout.extensions[$0.layout.extensions.count - 1].lengthField, width: 2) },
        HelloVariant("SNI list length +1", .malformed("server_name list length does not match the extension")) { $0.add(1, at: $0.layout.extension(0).data, width: 2) },
        HelloVariant("SNI list length -1", .malformed("server_name list length does not match the extension")) { $0.add(-1, at: $0.layout.extension(0).data, width: 2) },
        HelloVariant("host name length +1", .malformed("server name length exceeds the list")) { $0.add(1, at: $0.layout.extension(0).data + 3, width: 2) },
        HelloVariant("host name length -1", .malformed("server name length exceeds the list")) { $0.add(-1, at: $0.layout.extension(0).data + 3, width: 2) },
        HelloVariant("host name length 0", .malformed("empty server name")) { $0.set(at: $0.layout.extension(0).data + 3, width: 2, to: 0) },
        HelloVariant("ALPN list length +1", .malformed("ALPN list length does not match the extension")) { $0.add(1, at: $0.layout.extension(16).data, width: 2) },
        HelloVariant("ALPN list length -1", .malformed("ALPN list length does not match the extension")) { $0.add(-1, at: $0.layout.extension(16).data, width: 2) },
        HelloVariant("ALPN protocol length +1", .malformed("ALPN protocol length exceeds the list")) { $0.add(1, at: $0.layout.extension(16).data + 2, width: 1) },
        HelloVariant("ALPN protocol length 0", .malformed("empty ALPN protocol name")) { $0.set(at: $0.layout.extension(16).data + 2, width: 1, to: 0) },
        HelloVariant("supported_versions length -1", .malformed("supported_versions length does not match the extension")) { $0.add(-1, at: $0.layout.extension(43).data, width: 1) },
        HelloVariant("duplicate server_name extension", .malformed("duplicate extension 0x0000")) { editor in
            let sni = editor.layout.extension(0)
            let copy = Array(editor.bytes[sni.start..<(sni.data + sni.length)])
            editor.insert(copy, at: sni.data + sni.length, growing: editor.outerLengths)
        },
        HelloVariant("padding retyped as a second ALPN", .malformed("duplicate extension 0x0010")) { $0.set(at: $0.layout.extension(21).start, width: 2, to: 16) },
        HelloVariant("second host_name in the SNI list", .malformed("more than one host_name in server_name")) { editor in
            let sni = editor.layout.extension(0)
            editor.insertInExtension(0, [0, 0, 9] + Array("b.example".utf8), atDataOffset: sni.length, alsoGrowing: [(sni.data, 2)])
        },
        HelloVariant("trailing bytes inside the server_name extension", .malformed("server_name list length does not match the extension")) { editor in
            editor.insertInExtension(0, [0, 0], atDataOffset: editor.layout.extension(0).length)
        },
        HelloVariant("trailing bytes after the extensions block", .malformed("2 trailing bytes after the extensions")) { editor in
            editor.insert([0, 0], at: editor.bytes.count, growing: [(HelloLayout.recordLength, 2), (HelloLayout.handshakeLength, 3)])
        },
        HelloVariant("pre_shared_key before other extensions", .malformed("pre_shared_key is not the last extension")) { $0.set(at: $0.layout.extension(0x31).start, width: 2, to: 41) },
        HelloVariant("NUL in host name", .malformed("NUL byte in server name")) { $0.replaceHostName(with: "curl\0example") },
        HelloVariant("non-ASCII host name", .malformed("non-ASCII byte 0xc3 in server name")) { $0.replaceHostName(with: Array("curl.exampl".utf8) + [0xc3]) },
        HelloVariant("space in host name", .malformed("byte 0x20 not allowed in server name")) { $0.replaceHostName(with: "curl example") },
        HelloVariant("empty label in host name", .malformed("server name is not a plausible DNS name")) { $0.replaceHostName(with: "curl..xample") },
        HelloVariant("64-byte label in host name", .malformed("server name is not a plausible DNS name")) { editor in
            let sni = editor.layout.extension(0)
            editor.insertInExtension(0, Array(repeating: UInt8(ascii: "a"), count: 60), atDataOffset: 5, alsoGrowing: [(sni.data, 2), (sni.data + 3, 2)])
        },
        HelloVariant("upper-case host name is reported as sent", .complete(serverName: "CURL.EXAMPLE")) { $0.replaceHostName(with: "CURL.EXAMPLE") },
        HelloVariant("trailing dot is reported as sent", .complete(serverName: "curl.example.")) { editor in
            let sni = editor.layout.extension(0)
            editor.insertInExtension(0, [UInt8(ascii: ".")], atDataOffset: sni.length, alsoGrowing: [(sni.data, 2), (sni.data + 3, 2)])
        },
        HelloVariant("entry of an unknown name type is skipped", .complete(serverName: "curl.example")) { editor in
            let sni = editor.layout.extension(0)
            editor.insertInExtension(0, [1, 0, 3, 1, 2, 3], atDataOffset: sni.length, alsoGrowing: [(sni.data, 2)])
        },
        HelloVariant("padding retyped as encrypted_client_hello", .complete(serverName: "curl.example", ech: true)) { $0.set(at: $0.layout.extension(21).start, width: 2, to: 0xfe0d) },
    ]

    @Test("one-field mutations of a real ClientHello", arguments: variants)
    func variant(_ variant: HelloVariant) throws {
        var editor = HelloEditor(bytes: try HelloFixtures.bytes("curl-curl.example"))
        variant.mutate(&editor)
        let result = ClientHelloParser.parse(editor.bytes)
        switch variant.outcome {
        case .malformed(let expected):
            let reason = try #require(result.malformedReason, "got \(result)")
            #expect(reason.contains(expected), "reason was '\(reason)'")
        case .needMoreData:
            #expect(result.isNeedMoreData, "got \(result)")
        case .complete(let serverName, let ech):
            let hello = try #require(result.value, "got \(result)")
            #expect(hello.serverName == serverName)
            #expect(hello.hasEncryptedClientHello == ech)
        }
    }

    @Test("server names must look like DNS text", arguments: [
        ("a.example", true),
        ("A-b_c.Example", true),
        ("xn--bcher-kva.example", true),
        ("single", true),
        ("trailing.dot.", true),
        ("127.0.0.1", true),
        (".", false),
        (".leading.dot", false),
        ("two..dots", false),
        ("trailing.dots..", false),
        ("with space.example", false),
        ("star.*.example", false),
        ("colon:443", false),
        ("ümlaut.example", false),
        (String(repeating: "a", count: 63) + ".example", true),
        (String(repeating: "a", count: 64) + ".example", false),
        (Array(repeating: String(repeating: "a", count: 49), count: 5).joined(separator: ".") + ".abc", true),
        (Array(repeating: String(repeating: "a", count: 49), count: 5).joined(separator: ".") + ".abcd", false),
    ])
    func serverNameSyntax(_ name: String, _ valid: Bool) {
        let accepted = (try? ClientHelloParser.validatedServerName(ArraySlice(name.utf8))) != nil
        #expect(accepted == valid)
    }

    /// The label rule as first written (split on dots, drop one empty root label), against
    /// which the one-pass check is held.
    private static func plausibleBySplitting(_ name: [UInt8]) -> Bool {
        var labels = name.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        if labels.count > 1, labels.last?.isEmpty == true { labels.removeLast() }
        let length = labels.reduce(0) { $0 + $1.count } + labels.count - 1
        return length <= 253 && labels.allSatisfy { (1...63).contains($0.count) }
    }

    @Test("the one-pass label check agrees with splitting on dots, on 20,000 generated names")
    func labelCheckAgrees() {
        var state: UInt64 = 0x5eed
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        var disagreements: [String] = []
        for _ in 0..<20_000 {
            // Labels of 0...70 bytes (empty ones and over-long ones included), up to 260 bytes.
            var name: [UInt8] = []
            for label in 0..<(1 + next(8)) {
                if label > 0 { name.append(UInt8(ascii: ".")) }
                name += Array(repeating: UInt8(ascii: "a"), count: next(4) == 0 ? next(71) : next(40))
            }
            if next(3) == 0 { name.append(UInt8(ascii: ".")) }
            if HostNameSyntax.hasPlausibleLabels(name) != Self.plausibleBySplitting(name) {
                disagreements.append(String(decoding: name, as: UTF8.self))
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
    }

    @Test("non-TLS first bytes are refused at once", arguments: [
        "GET / HTTP/1.1\r\n",
        "\u{0}",
        "SSH-2.0-OpenSSH_9.2\r\n",
    ])
    func notTLS(_ text: String) {
        #expect(ClientHelloParser.parse(Array(text.utf8)).malformedReason != nil)
    }

    @Test("an empty stream needs a record header")
    func emptyStream() {
        #expect(ClientHelloParser.parse([UInt8]()) == .needMoreData(atLeast: 5))
    }

    /// An SSLv2-compatible ClientHello (high bit set in the first byte) is not TLS records.
    @Test("SSLv2-format hello is malformed")
    func sslv2() {
        #expect(ClientHelloParser.parse([0x80, 0x2e, 0x01, 0x03, 0x01]).malformedReason?.contains("record content type 128") == true)
    }

    @Test("a ClientHello without extensions is accepted")
    func noExtensions() {
        let body: [UInt8] = [3, 3] + Array(repeating: 7, count: 32) + [0] + [0, 2, 0x00, 0x2f] + [1, 0]
        let message: [UInt8] = [1, 0, 0, UInt8(body.count)] + body
        let expected = ClientHello(serverName: nil, legacyVersion: 0x0303)
        #expect(ClientHelloParser.parse(HelloFixtures.records(message, size: 100)) == .complete(expected))
    }

    static func countRecords(_ stream: [UInt8]) -> Int {
        var count = 0
        var offset = 0
        while offset + 5 <= stream.count {
            offset += 5 + (Int(stream[offset + 3]) << 8 | Int(stream[offset + 4]))
            count += 1
        }
        return count
    }

    /// Many empty extensions (types 0x7000 upward) appended to a real ClientHello; with
    /// `duplicateAt`, that one's type appears twice.
    static func withManyExtensions(_ count: Int, duplicateAt: Int? = nil) throws -> [UInt8] {
        var editor = HelloEditor(bytes: try HelloFixtures.bytes("openssl-openssl.example"))
        var added: [UInt8] = []
        for index in 0..<count {
            let type = 0x7000 + (index == duplicateAt ? 0 : index)
            added += [UInt8(type >> 8), UInt8(type & 0xff), 0, 0]
        }
        let layout = editor.layout
        let end = layout.extensionsLength + 2 + editor.value(at: layout.extensionsLength, width: 2)
        editor.insert(added, at: end, growing: editor.outerLengths)
        return editor.bytes
    }

    @Test("a duplicate among many extensions is still found, in linear time", arguments: [10, 63, 64, 65, 200, 4000])
    func duplicatesAmongManyExtensions(count: Int) throws {
        #expect(ClientHelloParser.parse(try Self.withManyExtensions(count)).value?.serverName == "openssl.example")
        let duplicated = ClientHelloParser.parse(try Self.withManyExtensions(count, duplicateAt: count - 1))
        #expect(duplicated.malformedReason == "duplicate extension 0x7000", "\(duplicated)")
    }
}
