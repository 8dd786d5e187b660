import Compiler
import Foundation
import Kernel

/// A policy directory as the fleet's store holds it: one small manifest (the key `bundle`)
/// naming every file by the SHA-256 digests of its chunks, and the chunks themselves under
/// `chunk/<sha256>`, written before the manifest and never changed after.
///
/// So a push is one transaction of one key however large the policy (etcd limits a request
/// to 1.5 MiB and a transaction to 128 operations), an agent fetches only the chunks it does
/// not hold, and a one-line edit in a 14 MB file costs one chunk. Chunk boundaries depend on
/// the content (a rolling hash over the bytes, cut after a line end): an edit moves only
/// the boundaries near it, so the chunks before and after keep their digests.
public struct FleetBundle: Sendable, Equatable {
    public struct File: Sendable, Equatable, Codable {
        public var size: Int
        public var chunks: [String]
    }

    /// Path relative to the policy directory → its chunks.
    public var files: [String: File]
    /// `SourceSnapshot`'s digest of the whole directory: the same as `enforcer history`
    /// shows for a generation applied from it.
    public var digest: String
    /// Who pushed it, when, and why.
    public var pushedBy: String
    public var pushedAt: Date
    public var message: String?
    /// The store's revision the push was checked against (the previous bundle's).
    public var checkedAt: Int64

    /// The bundle of `snapshot`, and every chunk by digest.
    public static func make(_ snapshot: SourceSnapshot, pushedBy: String, message: String?, checkedAt: Int64,
                            at instant: Date = Date()) -> (FleetBundle, [String: Data]) {
        var files: [String: File] = [:]
        var chunks: [String: Data] = [:]
        for file in snapshot.files {
            let pieces = Chunker.split(file.content)
            var digests: [String] = []
            for piece in pieces {
                let digest = SHA256.hex(piece)
                chunks[digest] = piece
                digests.append(digest)
            }
            files[file.path] = File(size: file.content.count, chunks: digests)
        }
        return (FleetBundle(files: files, digest: snapshot.digest, pushedBy: pushedBy, pushedAt: instant, message: message,
                            checkedAt: checkedAt), chunks)
    }

    /// The manifest's bytes (JSON, keys sorted so equal bundles are equal bytes).
    public func encoded() throws(FleetError) -> Data {
        do { return try FleetStore.jsonEncoder.encode(Manifest(self)) } catch { throw .store("cannot encode the bundle: \(error)") }
    }

    public static func decode(_ data: Data) throws(FleetError) -> FleetBundle {
        do { return try FleetStore.jsonDecoder.decode(Manifest.self, from: data).bundle } catch {
            throw .store("the store's bundle is not one enforcer wrote (\(error))")
        }
    }

    /// The files whose content differs from `other`'s (added, changed or removed), by path.
    public func changedPaths(since other: FleetBundle?) -> [String] {
        guard let other else { return files.keys.sorted() }
        return Set(files.keys).union(other.files.keys).filter { files[$0] != other.files[$0] }.sorted()
    }

    private struct Manifest: Codable {
        var format = 1
        var files: [String: File]
        var digest: String
        var pushedBy: String
        var pushedAt: String
        var message: String?
        var checkedAt: Int64

        init(_ bundle: FleetBundle) {
            files = bundle.files
            digest = bundle.digest
            pushedBy = bundle.pushedBy
            pushedAt = ISO8601.string(bundle.pushedAt, precision: .milliseconds)
            message = bundle.message
            checkedAt = bundle.checkedAt
        }

        var bundle: FleetBundle {
            FleetBundle(files: files, digest: digest, pushedBy: pushedBy, pushedAt: ISO8601.date(pushedAt) ?? Date(timeIntervalSince1970: 0),
                        message: message, checkedAt: checkedAt)
        }
    }
}

/// Content-defined chunks: where a hash of the last 64 bytes says so (one place in 65,536
/// on average, and not before 16 KiB of chunk), the chunk ends at the next line end; at
/// 256 KiB it ends regardless. Inserting or deleting a line moves the boundaries of its own
/// chunk only: the hash looks at the content, not at offsets, so the cuts after the edit
/// fall where they fell before.
enum Chunker {
    static let minimum = 16 << 10
    static let maximum = 256 << 10
    static let mask: UInt64 = (1 << 16) - 1

    static func split(_ data: Data) -> [Data] {
        let bytes = [UInt8](data)
        guard bytes.count > minimum else { return [data] }
        var out: [Data] = []
        var start = 0
        var hash: UInt64 = 0
        var due = false
        var index = 0
        while index < bytes.count {
            // A gear hash: each byte shifts the older ones out after 64 steps.
            hash = (hash << 1) &+ gear[Int(bytes[index])]
            let length = index + 1 - start
            // The high bits: the low ones depend on the last few bytes only, which repeat in policy text.
            if !due, length >= minimum, (hash >> 44) & mask == 0 { due = true }
            if length >= maximum || (due && bytes[index] == UInt8(ascii: "\n")) {
                out.append(Data(bytes[start...index]))
                start = index + 1
                due = false
            }
            index += 1
        }
        if start < bytes.count { out.append(Data(bytes[start...])) }
        return out
    }

    /// 256 fixed pseudo-random words (a splitmix64 sequence), one per byte value.
    static let gear: [UInt64] = {
        var state: UInt64 = 0x656e_666f_7263_6572  // "enforcer"
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }()
}
