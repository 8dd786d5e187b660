import Foundation
import Testing
@testable import NFQueue

/// The captured and synthesised ClientHellos in Fixtures/ (see Fixtures/capture.py).
enum HelloFixtures {
    static func bytes(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "bin", subdirectory: "Fixtures"),
                               "missing fixture \(name).bin")
        return Array(try Data(contentsOf: url))
    }

    /// The handshake message carried by a stream of handshake records, record headers removed.
    /// Written independently of the parser under test, for trusted fixtures only.
    static func handshakeMessage(_ stream: [UInt8]) -> [UInt8] {
        var message: [UInt8] = []
        var offset = 0
        while offset + 5 <= stream.count {
            let length = Int(stream[offset + 3]) << 8 | Int(stream[offset + 4])
            message += stream[(offset + 5)..<(offset + 5 + length)]
            offset += 5 + length
        }
        return message
    }

    /// `message` cut into handshake records of `size` bytes (the last may be shorter).
    static func records(_ message: [UInt8], size: Int) -> [UInt8] {
        stride(from: 0, to: message.count, by: size).flatMap { start -> [UInt8] in
            let piece = message[start..<min(start + size, message.count)]
            return [22, 3, 1, UInt8(piece.count >> 8), UInt8(piece.count & 0xff)] + piece
        }
    }
}

/// Byte offsets of the length fields in a single-record ClientHello, found by a
/// straightforward walk of a trusted fixture so the mutations below can change one
/// field at a time and, when inserting bytes, keep every enclosing length consistent.
struct HelloLayout {
    struct Extension {
        var type: UInt16
        /// Offset of the extension's type field.
        var start: Int
        /// Offset of its data, right after the 2-byte length.
        var data: Int
        var length: Int
        var lengthField: Int { start + 2 }
    }

    static let recordLength = 3
    static let handshakeLength = 6
    let sessionIDLength: Int
    let cipherSuitesLength: Int
    let compressionLength: Int
    let extensionsLength: Int
    let extensions: [Extension]

    init(_ bytes: [UInt8]) {
        func u16(_ at: Int) -> Int { Int(bytes[at]) << 8 | Int(bytes[at + 1]) }
        sessionIDLength = 9 + 2 + 32
        cipherSuitesLength = sessionIDLength + 1 + Int(bytes[sessionIDLength])
        compressionLength = cipherSuitesLength + 2 + u16(cipherSuitesLength)
        extensionsLength = compressionLength + 1 + Int(bytes[compressionLength])
        var found: [Extension] = []
        var offset = extensionsLength + 2
        let end = offset + u16(extensionsLength)
        while offset < end {
            let length = u16(offset + 2)
            found.append(Extension(type: UInt16(u16(offset)), start: offset, data: offset + 4, length: length))
            offset += 4 + length
        }
        extensions = found
    }

    func `extension`(_ type: UInt16) -> Extension {
        guard let found = extensions.first(where: { $0.type == type }) else {
            preconditionFailure("fixture lacks extension \(type)")
        }
        return found
    }
}

/// A single-record ClientHello being edited for a broken-length variant.
struct HelloEditor {
    var bytes: [UInt8]
    var layout: HelloLayout { HelloLayout(bytes) }

    /// Offsets and widths of the length fields that enclose everything in the extensions block.
    var outerLengths: [(offset: Int, width: Int)] {
        [(HelloLayout.recordLength, 2), (HelloLayout.handshakeLength, 3), (layout.extensionsLength, 2)]
    }

    func value(at offset: Int, width: Int) -> Int {
        bytes[offset..<(offset + width)].reduce(0) { $0 << 8 | Int($1) }
    }

    mutating func set(at offset: Int, width: Int, to value: Int) {
        for index in 0..<width {
            bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * (width - 1 - index)))
        }
    }

    mutating func add(_ delta: Int, at offset: Int, width: Int) {
        set(at: offset, width: width, to: value(at: offset, width: width) + delta)
    }

    /// Inserts bytes and grows each given length field (all of which precede `offset`).
    mutating func insert(_ new: [UInt8], at offset: Int, growing fields: [(offset: Int, width: Int)]) {
        bytes.insert(contentsOf: new, at: offset)
        for field in fields { add(new.count, at: field.offset, width: field.width) }
    }

    /// Inserts bytes inside the data of extension `type`, growing its length and all outer ones.
    mutating func insertInExtension(_ type: UInt16, _ new: [UInt8], atDataOffset relative: Int,
                                    alsoGrowing inner: [(offset: Int, width: Int)] = []) {
        let target = layout.extension(type)
        insert(new, at: target.data + relative, growing: outerLengths + [(target.lengthField, 2)] + inner)
    }

    /// Overwrites the bytes of the SNI host name (same length) with `name`.
    mutating func replaceHostName(with name: [UInt8]) {
        let sni = layout.extension(0)
        let nameRange = (sni.data + 5)..<(sni.data + sni.length)
        precondition(nameRange.count == name.count, "replacement must keep the length")
        bytes.replaceSubrange(nameRange, with: name)
    }

    mutating func replaceHostName(with name: String) {
        replaceHostName(with: Array(name.utf8))
    }
}

/// SplitMix64: a small deterministic generator so failures reproduce exactly.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
