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
///
/// A push also writes, in the manifest itself, how each new chunk differs from the chunk it
/// replaces (`patches`): an agent that holds the old chunk makes the new one from it and
/// fetches nothing. Without that, a one-line edit had every agent of the fleet fetch the
/// same 64 KB chunk at once, which is what a push's latency was made of.
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
    /// A new chunk's digest → how to make it from a chunk of the bundle before.
    public var patches: [String: Patch] = [:]

    /// A new chunk as an edit of an older one: the older one's first `head` bytes, then
    /// `insert`, then its last `tail` bytes. Whoever applies it checks the result against
    /// the new chunk's digest, so a wrong base (another revision's) costs a fetch, never a
    /// wrong file.
    public struct Patch: Sendable, Equatable, Codable {
        public var base: String
        public var head: Int
        public var tail: Int
        public var insert: Data

        /// The new chunk, when `base` holds the bytes the patch keeps and the result has the digest `digest`.
        public func apply(to base: Data, expecting digest: String) -> Data? {
            guard head >= 0, tail >= 0, head + tail <= base.count else { return nil }
            var out = Data(capacity: head + insert.count + tail)
            out.append(base.prefix(head))
            out.append(insert)
            out.append(base.suffix(tail))
            return SHA256.hex(out) == digest ? out : nil
        }

        /// The patch from `old` to `new`: their common start and end kept, the middle sent.
        static func between(_ old: Data, _ new: Data, base: String) -> Patch {
            let a = [UInt8](old), b = [UInt8](new)
            var head = 0
            while head < a.count, head < b.count, a[head] == b[head] { head += 1 }
            var tail = 0
            while tail < a.count - head, tail < b.count - head, a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
            return Patch(base: base, head: head, tail: tail, insert: Data(b[head..<(b.count - tail)]))
        }
    }

    /// A patch is worth its place in the manifest (which every agent receives) only while it
    /// is small: a rewritten file is fetched as chunks.
    static let patchLimit = 16 << 10

    /// For each chunk new in this bundle, the chunk of `previous` it most likely replaces:
    /// the one at the same distance from the nearest chunk both bundles share, in the same
    /// file (chunk boundaries come back in step right after an edit, so that is the edited one).
    public func patchBases(from previous: FleetBundle) -> [String: String] {
        var out: [String: String] = [:]
        for (path, file) in files {
            guard let old = previous.files[path]?.chunks, !old.isEmpty else { continue }
            var oldIndex: [String: Int] = [:]
            for (index, digest) in old.enumerated() where oldIndex[digest] == nil { oldIndex[digest] = index }
            let new = file.chunks, newSet = Set(new)
            for (k, digest) in new.enumerated() where oldIndex[digest] == nil && out[digest] == nil {
                var candidates: [Int] = []
                if let a = new[..<k].lastIndex(where: { oldIndex[$0] != nil }) { candidates.append(oldIndex[new[a]]! + (k - a)) } else { candidates.append(k) }
                if let b = new[(k + 1)...].firstIndex(where: { oldIndex[$0] != nil }) { candidates.append(oldIndex[new[b]]! - (b - k)) }
                if let base = candidates.first(where: { old.indices.contains($0) && !newSet.contains(old[$0]) }) { out[digest] = old[base] }
            }
        }
        return out
    }

    /// This bundle with the patches of its new chunks (`chunks`, by digest) from the bases
    /// `patchBases` chose, where `old` has a base's bytes and the patch is small enough.
    public func withPatches(bases: [String: String], old: [String: Data], chunks: [String: Data]) -> FleetBundle {
        var out = self
        out.patches = [:]
        for (digest, base) in bases {
            guard let new = chunks[digest], let before = old[base] else { continue }
            let patch = Patch.between(before, new, base: base)
            if patch.insert.count <= Self.patchLimit, patch.insert.count * 2 < new.count { out.patches[digest] = patch }
        }
        return out
    }

    /// The chunks of this bundle that `have` does not hold but its patches make from one it
    /// does, by digest.
    public func patched(from have: [String: Data]) -> [String: Data] {
        var out: [String: Data] = [:]
        for (digest, patch) in patches where have[digest] == nil {
            if let base = have[patch.base], let made = patch.apply(to: base, expecting: digest) { out[digest] = made }
        }
        return out
    }

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
        /// Absent when empty; an agent of before patches ignores it and fetches.
        var patches: [String: Patch]?

        init(_ bundle: FleetBundle) {
            files = bundle.files
            digest = bundle.digest
            pushedBy = bundle.pushedBy
            pushedAt = ISO8601.string(bundle.pushedAt, precision: .milliseconds)
            message = bundle.message
            checkedAt = bundle.checkedAt
            patches = bundle.patches.isEmpty ? nil : bundle.patches
        }

        var bundle: FleetBundle {
            FleetBundle(files: files, digest: digest, pushedBy: pushedBy, pushedAt: ISO8601.date(pushedAt) ?? Date(timeIntervalSince1970: 0),
                        message: message, checkedAt: checkedAt, patches: patches ?? [:])
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
