import CCrypto

/// SHA-256, for the digest of a policy source on record and the names of a fleet's chunks:
/// the same text `sha256sum` prints. Not used for secrets.
///
/// The system's libcrypto does the work: it uses the processor's SHA instructions where there
/// are any, and every apply, fleet push and agent's cold start hashes the whole policy source
/// (bench/README.md, "Hashing the source with libcrypto"). This is the one file that touches
/// its pointers.
public struct SHA256: ~Copyable {
    private let context: OpaquePointer

    public init() {
        // Only a failed allocation makes these fail, and then nothing else would work either.
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, Self.algorithm, nil) == 1 else {
            fatalError("libcrypto cannot begin a SHA-256")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public mutating func update(_ bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            Self.check(EVP_DigestUpdate(context, buffer.baseAddress, buffer.count))
        }
        if done == nil {
            Array(bytes).withUnsafeBufferPointer { buffer in Self.check(EVP_DigestUpdate(context, buffer.baseAddress, buffer.count)) }
        }
    }

    /// The digest as 64 lowercase hex digits.
    public consuming func hex() -> String {
        var sum = [UInt8](repeating: 0, count: 32)
        sum.withUnsafeMutableBufferPointer { buffer in Self.check(EVP_DigestFinal_ex(context, buffer.baseAddress, nil)) }
        return Self.hex(digest: sum)
    }

    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var hash = SHA256()
        hash.update(bytes)
        return hash.hex()
    }

    /// The algorithm, looked up once: a lookup by name at every hash takes a lock in libcrypto.
    nonisolated(unsafe) private static let algorithm: OpaquePointer = {
        guard let found = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("libcrypto has no SHA-256") }
        return found
    }()

    private static func check(_ result: Int32) {
        if result != 1 { fatalError("libcrypto failed a SHA-256 step") }
    }

    private static func hex(digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
