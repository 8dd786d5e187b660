import Compiler

/// What the enforcer needs from a TLS ClientHello to decide on a flow.
public struct ClientHello: Sendable, Hashable {
    /// The host_name from the server_name extension exactly as sent (case and any
    /// trailing dot kept): normalising it is the caller's job, so the one place that
    /// compares names also decides how.
    public var serverName: String?
    /// Application protocols offered in the ALPN extension, in the client's order.
    public var alpn: [String]
    /// Whether the encrypted_client_hello extension (0xfe0d) is present. When it is,
    /// `serverName` may be only the public (outer) name; a GREASE ECH extension looks the
    /// same on the wire by design, so this says "possibly hidden", not "hidden".
    public var hasEncryptedClientHello: Bool
    /// ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3 clients).
    public var legacyVersion: UInt16
    /// The supported_versions extension's list, GREASE values included; empty when absent.
    public var supportedVersions: [UInt16]

    public init(serverName: String? = nil, alpn: [String] = [], hasEncryptedClientHello: Bool = false,
                legacyVersion: UInt16 = 0x0303, supportedVersions: [UInt16] = []) {
        self.serverName = serverName
        self.alpn = alpn
        self.hasEncryptedClientHello = hasEncryptedClientHello
        self.legacyVersion = legacyVersion
        self.supportedVersions = supportedVersions
    }
}

/// Reads a ClientHello from the first bytes a TLS client sends on a TCP connection.
///
/// The input is the byte stream from its start: one or more handshake records (content
/// type 22) whose fragments concatenate to the ClientHello message. Every answer about
/// a prefix of a valid stream is `.needMoreData`; `.malformed` is only given when no
/// continuation could make the input valid, so hostile lengths are refused early
/// instead of keeping the flow waiting.
public enum ClientHelloParser {
    /// TLSCiphertext's ceiling (RFC 8446 §5.2); plaintext records are smaller still, so
    /// anything larger is not TLS and must not make the worker wait for it.
    public static let maxRecordLength = (1 << 14) + 2048
    /// Cap on the whole handshake message, header included. Real ClientHellos, even
    /// with post-quantum key shares, are a few KiB.
    public static let maxHandshakeLength = 64 * 1024

    static let handshakeContentType: UInt8 = 22
    static let clientHelloMessageType: UInt8 = 1

    enum ExtensionType {
        static let serverName: UInt16 = 0
        static let alpn: UInt16 = 16
        static let preSharedKey: UInt16 = 41
        static let supportedVersions: UInt16 = 43
        static let encryptedClientHello: UInt16 = 0xfe0d
    }

    public static func parse(_ stream: some Collection<UInt8>) -> ParseResult<ClientHello> {
        if let slice = stream as? ArraySlice<UInt8> { return parse(slice: slice) }
        return parse(slice: (stream as? [UInt8] ?? Array(stream))[...])
    }

    static func parse(slice bytes: ArraySlice<UInt8>) -> ParseResult<ClientHello> {
        switch reassembleHandshakeMessage(bytes) {
        case .complete(.inPlace(let range)):
            do { return .complete(try parseClientHelloMessage(bytes, ByteCursor(range))) } catch { return .malformed(reason: error.reason) }
        case .complete(.copied(let message)):
            do { return .complete(try parseClientHelloMessage(message[...], ByteCursor(message.indices))) } catch { return .malformed(reason: error.reason) }
        case .needMoreData(let atLeast):
            return .needMoreData(atLeast: atLeast)
        case .malformed(let reason):
            return .malformed(reason: reason)
        }
    }

    /// Where the whole handshake message is: in the input itself when one record holds it
    /// all (most clients), else concatenated from the records' fragments.
    enum Message {
        case inPlace(Range<Int>)
        case copied([UInt8])
    }

    /// Concatenates record fragments until the handshake message is whole.
    ///
    /// Headers are checked byte by byte as they arrive, and the handshake header is
    /// checked as soon as its four bytes are in, so garbage fails on its first bytes.
    /// The message must end exactly where a record ends: the client's first flight
    /// holds only the ClientHello, so a record reaching past it is malformed.
    static func reassembleHandshakeMessage(_ bytes: ArraySlice<UInt8>) -> ParseResult<Message> {
        var stream = ByteCursor(bytes.indices)
        var message: [UInt8] = []
        /// Header plus body length, once the handshake header has been read.
        var messageLength: Int?

        while true {
            guard let contentType = stream.readUInt8(bytes) else { return .needMoreData(atLeast: 5) }
            guard contentType == handshakeContentType else {
                return .malformed(reason: "record content type \(contentType) is not handshake (22)")
            }
            guard let major = stream.readUInt8(bytes) else { return .needMoreData(atLeast: 4) }
            guard major == 3 else {
                return .malformed(reason: "record version major \(major) is not 3")
            }
            guard stream.skip(1) else { return .needMoreData(atLeast: 3) }
            guard let declared = stream.readUInt16(bytes) else {
                return .needMoreData(atLeast: 2 - stream.remaining)
            }
            let recordLength = Int(declared)
            guard recordLength > 0 else {
                return .malformed(reason: "empty handshake record")
            }
            guard recordLength <= maxRecordLength else {
                return .malformed(reason: "record length \(recordLength) exceeds \(maxRecordLength)")
            }

            let before = message.count
            if before == 0, recordLength >= 4, recordLength <= stream.remaining {
                // The first record is all here: when it is exactly the message, read it in place.
                var record = stream
                let messageType = record.readUInt8(bytes)!, bodyLength = Int(record.readUInt24(bytes)!)
                if messageType == clientHelloMessageType, bodyLength <= maxHandshakeLength - 4, 4 + bodyLength == recordLength {
                    return .complete(.inPlace(stream.position..<(stream.position + recordLength)))
                }
            }
            let fragment = stream.readAvailable(upTo: recordLength)
            message.append(contentsOf: bytes[fragment])

            if let messageType = message.first, messageType != clientHelloMessageType {
                return .malformed(reason: "handshake message type \(messageType) is not ClientHello")
            }
            if messageLength == nil, message.count >= 4 {
                let bodyLength = Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3])
                guard bodyLength <= maxHandshakeLength - 4 else {
                    return .malformed(reason: "handshake length \(bodyLength) exceeds \(maxHandshakeLength - 4)")
                }
                messageLength = 4 + bodyLength
            }
            if let total = messageLength, before + recordLength > total {
                return .malformed(reason: "record extends \(before + recordLength - total) bytes past the ClientHello")
            }
            if fragment.count < recordLength {
                return .needMoreData(atLeast: recordLength - fragment.count)
            }
            if let total = messageLength, message.count == total {
                return .complete(.copied(message))
            }
            // Record complete but the message is not: it continues in the next record.
        }
    }

    /// Parses a whole handshake message (4-byte header included), the `message` cursor over
    /// `bytes`, as a ClientHello (RFC 8446 §4.1.2; the extension-less TLS 1.0-era form is
    /// accepted too).
    static func parseClientHelloMessage(_ bytes: ArraySlice<UInt8>, _ message: ByteCursor) throws(MalformedInput) -> ClientHello {
        var header = message
        guard header.readUInt8(bytes) == clientHelloMessageType, var body = header.readLengthPrefixed24(bytes),
              header.isAtEnd else {
            throw MalformedInput("handshake length does not match the message")
        }

        guard let legacyVersion = body.readUInt16(bytes) else { throw MalformedInput("truncated legacy_version") }
        guard legacyVersion >> 8 == 3 else {
            throw MalformedInput("legacy_version 0x\(ZeroPadded.string(legacyVersion, width: 4, radix: 16)) is not TLS")
        }
        guard body.skip(32) else { throw MalformedInput("truncated random") }
        guard let sessionID = body.readLengthPrefixed8(bytes) else {
            throw MalformedInput("session id length exceeds the message")
        }
        guard sessionID.remaining <= 32 else {
            throw MalformedInput("session id length \(sessionID.remaining) exceeds 32")
        }
        guard let cipherSuites = body.readLengthPrefixed16(bytes) else {
            throw MalformedInput("cipher suites length exceeds the message")
        }
        guard cipherSuites.remaining >= 2, cipherSuites.remaining % 2 == 0 else {
            throw MalformedInput("cipher suites length \(cipherSuites.remaining) is not a positive even number")
        }
        guard let compression = body.readLengthPrefixed8(bytes) else {
            throw MalformedInput("compression methods length exceeds the message")
        }
        guard compression.remaining >= 1 else { throw MalformedInput("no compression methods") }

        var hello = ClientHello(legacyVersion: legacyVersion)
        // Before TLS 1.2 extensions were optional: the body may simply end here.
        if body.isAtEnd { return hello }

        guard var extensions = body.readLengthPrefixed16(bytes) else {
            throw MalformedInput("extensions length exceeds the message")
        }
        guard body.isAtEnd else {
            throw MalformedInput("\(body.remaining) trailing bytes after the extensions")
        }

        // The first 64 on the stack, so an ordinary ClientHello allocates nothing here; a
        // hostile one with thousands falls back to a set so the check stays linear.
        var seen = InlineArray<64, UInt16>(repeating: 0)
        var seenCount = 0
        // One bit per type modulo 64: the list is searched only when the bit is already set.
        var seenBits: UInt64 = 0
        var many = Set<UInt16>()
        while !extensions.isAtEnd {
            guard let type = extensions.readUInt16(bytes), var data = extensions.readLengthPrefixed16(bytes) else {
                throw MalformedInput("truncated extension")
            }
            // A second copy of an extension is the classic way to show a filter one
            // value and the server another.
            let repeated: Bool
            if seenCount < seen.count {
                var found = false
                let bit: UInt64 = 1 << (type & 63)
                if seenBits & bit != 0 {
                    for index in 0..<seenCount where seen[index] == type { found = true; break }
                }
                seenBits |= bit
                repeated = found
                seen[seenCount] = type
                seenCount += 1
            } else {
                if many.isEmpty { for index in seen.indices { many.insert(seen[index]) } }
                repeated = !many.insert(type).inserted
            }
            guard !repeated else {
                throw MalformedInput("duplicate extension 0x\(ZeroPadded.string(type, width: 4, radix: 16))")
            }
            switch type {
            case ExtensionType.serverName:
                hello.serverName = try parseServerName(bytes, &data)
            case ExtensionType.alpn:
                hello.alpn = try parseALPN(bytes, &data)
            case ExtensionType.supportedVersions:
                hello.supportedVersions = try parseSupportedVersions(bytes, &data)
            case ExtensionType.encryptedClientHello:
                hello.hasEncryptedClientHello = true
            case ExtensionType.preSharedKey:
                guard extensions.isAtEnd else {
                    throw MalformedInput("pre_shared_key is not the last extension")
                }
            default:
                break
            }
        }
        return hello
    }

    /// server_name (RFC 6066 §3): a non-empty list; entries of unknown name types are
    /// skipped, at most one host_name is allowed.
    static func parseServerName(_ bytes: ArraySlice<UInt8>, _ data: inout ByteCursor) throws(MalformedInput) -> String? {
        guard var list = data.readLengthPrefixed16(bytes), data.isAtEnd else {
            throw MalformedInput("server_name list length does not match the extension")
        }
        guard !list.isAtEnd else { throw MalformedInput("empty server_name list") }
        var hostName: String?
        while !list.isAtEnd {
            guard let nameType = list.readUInt8(bytes), let name = list.readLengthPrefixed16(bytes) else {
                throw MalformedInput("server name length exceeds the list")
            }
            guard !name.isAtEnd else { throw MalformedInput("empty server name") }
            guard nameType == 0 else { continue }
            guard hostName == nil else { throw MalformedInput("more than one host_name in server_name") }
            hostName = try validatedServerName(bytes[name.range])
        }
        return hostName
    }

    /// The name must look like DNS text: letters, digits, hyphen, underscore and dots,
    /// labels of 1–63 bytes, at most 253 bytes besides one optional trailing dot.
    /// Anything else (NUL, non-ASCII, spaces) would compare differently in the filter
    /// and in the server, so it is refused rather than passed on.
    static func validatedServerName(_ bytes: ArraySlice<UInt8>) throws(MalformedInput) -> String {
        for byte in bytes where !HostNameSyntax.isNameByte(byte) {
            switch byte {
            case 0: throw MalformedInput("NUL byte in server name")
            case 0x80...: throw MalformedInput("non-ASCII byte 0x\(ZeroPadded.string(byte, width: 2, radix: 16)) in server name")
            default: throw MalformedInput("byte 0x\(ZeroPadded.string(byte, width: 2, radix: 16)) not allowed in server name")
            }
        }
        guard HostNameSyntax.hasPlausibleLabels(bytes) else {
            throw MalformedInput("server name is not a plausible DNS name")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// ALPN (RFC 7301 §3.1): a non-empty list of non-empty protocol names.
    static func parseALPN(_ bytes: ArraySlice<UInt8>, _ data: inout ByteCursor) throws(MalformedInput) -> [String] {
        guard var list = data.readLengthPrefixed16(bytes), data.isAtEnd else {
            throw MalformedInput("ALPN list length does not match the extension")
        }
        guard !list.isAtEnd else { throw MalformedInput("empty ALPN list") }
        var protocols: [String] = []
        while !list.isAtEnd {
            guard let name = list.readLengthPrefixed8(bytes) else {
                throw MalformedInput("ALPN protocol length exceeds the list")
            }
            guard !name.isAtEnd else { throw MalformedInput("empty ALPN protocol name") }
            protocols.append(String(decoding: bytes[name.range], as: UTF8.self))
        }
        return protocols
    }

    /// supported_versions in a ClientHello (RFC 8446 §4.2.1): a list of 1–127 versions.
    static func parseSupportedVersions(_ bytes: ArraySlice<UInt8>, _ data: inout ByteCursor) throws(MalformedInput) -> [UInt16] {
        guard var list = data.readLengthPrefixed8(bytes), data.isAtEnd else {
            throw MalformedInput("supported_versions length does not match the extension")
        }
        guard list.remaining >= 2, list.remaining % 2 == 0 else {
            throw MalformedInput("supported_versions length \(list.remaining) is not a positive even number")
        }
        var versions: [UInt16] = []
        versions.reserveCapacity(list.remaining / 2)
        while let version = list.readUInt16(bytes) {
            versions.append(version)
        }
        return versions
    }
}

/// Syntax checks shared by the SNI and HTTP Host parsers, so both judge names alike.
enum HostNameSyntax {
    /// Letters, digits, hyphen, underscore and dot: what DNS names are written with.
    static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }

    /// Labels of 1–63 bytes, at most 253 bytes in all, one trailing dot (the root) allowed.
    static func hasPlausibleLabels(_ name: some Collection<UInt8>) -> Bool {
        // One pass, no label list: this runs on every judged flow.
        var label = 0, length = 0
        for byte in name {
            length += 1
            if byte == UInt8(ascii: ".") {
                guard (1...63).contains(label) else { return false }
                label = 0
            } else {
                label += 1
            }
        }
        // A trailing dot (the root) ends the last label; the dot itself does not count.
        if label == 0, length > 0 { length -= 1 } else if !(1...63).contains(label) { return false }
        return length <= 253
    }
}
