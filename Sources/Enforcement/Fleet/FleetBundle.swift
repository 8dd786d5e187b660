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
///
/// The table of files itself (every chunk's digest: 16 KB at 14 MB of policy) is a chunk
/// too; the key every agent watches holds a `Head`: the table's digest, and how the table
/// differs from the one before. Every agent receives that key's every value, so a one-line
/// edit sends each a few hundred bytes, not the whole table.
public struct FleetBundle: Sendable, Equatable {
    public struct File: Sendable, Equatable, Codable {
        public var size: Int
        public var chunks: [String]
    }

    /// Path relative to the policy directory → its chunks.
    public let files: [String: File]
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
    /// The digest of `tableData()`: the chunk that names this bundle's files. Worked out
    /// once, when the files are set (an agent compares it with each push's head).
    public private(set) var table: String

    public init(files: [String: File], digest: String, pushedBy: String, pushedAt: Date, message: String?, checkedAt: Int64,
                patches: [String: Patch] = [:]) {
        self.files = files
        self.digest = digest
        self.pushedBy = pushedBy
        self.pushedAt = pushedAt
        self.message = message
        self.checkedAt = checkedAt
        self.patches = patches
        table = SHA256.hex(Self.tableData(files))
    }

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

    /// The manifest's bytes as the store held them before heads: the whole table inline
    /// (JSON, keys sorted so equal bundles are equal bytes). Still read (`Head.decode`).
    public func encoded() throws(FleetError) -> Data {
        let value = Head.Value(format: 1, files: files, digest: digest, pushedBy: pushedBy, pushedAt: ISO8601.string(pushedAt, precision: .milliseconds),
                               message: message, checkedAt: checkedAt, patches: patches.isEmpty ? nil : patches)
        do { return try FleetStore.jsonEncoder.encode(value) } catch { throw .store("cannot encode the bundle: \(error)") }
    }

    public static func decode(_ data: Data) throws(FleetError) -> FleetBundle {
        let head = try Head.decode(data)
        guard let bundle = head.bundle(holding: nil) else { throw .store("the store's bundle names its table of files (\(head.table.prefix(12))): read it with the store") }
        return bundle
    }

    // MARK: The table of files, and the head that names it

    /// The table of files as the chunk `chunk/<table>` holds it: JSON, keys sorted.
    public func tableData() -> Data { Self.tableData(files) }

    static func tableData(_ files: [String: File]) -> Data {
        // Encoding strings and integers cannot fail.
        (try? FleetStore.jsonEncoder.encode(Table(files: files))) ?? Data()
    }

    struct Table: Codable {
        var files: [String: File]
    }

    /// A file's chunks as an edit of its chunks in the bundle before (a new file's: of none).
    public struct Edit: Sendable, Equatable, Codable {
        public var size: Int
        /// In order of `at`, the places that differ: at old chunk `at`, `remove` chunks go and `insert` come.
        public var hunks: [Hunk]

        public struct Hunk: Sendable, Equatable, Codable {
            public var at: Int
            public var remove: Int
            public var insert: [String]
        }

        /// The edit from chunks `old` to `new`. Content-defined chunks keep their order, so a
        /// chunk of `old` found again in `new` is where both agree; what lies between such
        /// places is a hunk.
        static func between(_ old: [String], _ new: [String], size: Int) -> Edit {
            var index: [String: Int] = [:]
            for (position, digest) in old.enumerated() where index[digest] == nil { index[digest] = position }
            var hunks: [Hunk] = [], pending: [String] = []
            var at = 0
            for digest in new {
                if let found = index[digest], found >= at {
                    if found > at || !pending.isEmpty { hunks.append(Hunk(at: at, remove: found - at, insert: pending)) }
                    at = found + 1
                    pending = []
                } else {
                    pending.append(digest)
                }
            }
            if at < old.count || !pending.isEmpty { hunks.append(Hunk(at: at, remove: old.count - at, insert: pending)) }
            return Edit(size: size, hunks: hunks)
        }

        /// `old` edited; nil when the hunks do not fit it.
        func apply(to old: [String]) -> [String]? {
            var out: [String] = []
            out.reserveCapacity(old.count + hunks.reduce(0) { $0 + $1.insert.count })
            var at = 0
            for hunk in hunks {
                guard hunk.at >= at, hunk.remove >= 0, hunk.at + hunk.remove <= old.count else { return nil }
                out += old[at..<hunk.at]
                out += hunk.insert
                at = hunk.at + hunk.remove
            }
            return out + old[at...]
        }

        var inserted: Int { hunks.reduce(0) { $0 + $1.insert.count } }
    }

    /// The value of the watched key: what a push changed, small whatever the policy's size.
    /// `edits` turn the table `since` into `table`; an agent holding the bundle of `since`
    /// makes the new table from them, any other reads the chunk `table` (`FleetStore.resolve`).
    public struct Head: Sendable, Equatable {
        public var table: String
        /// The table the edits apply to; nil: to an empty one.
        public var since: String?
        /// nil when they would be too large to send to every agent: the table is read instead.
        public var edits: [String: Edit]?
        public var removed: [String]
        public var digest: String
        public var pushedBy: String
        public var pushedAt: Date
        public var message: String?
        public var checkedAt: Int64
        public var patches: [String: Patch]
        /// A value written before heads: the table inline.
        var whole: [String: File]?

        /// The bundle this head names, made from `held` (or from nothing); nil when it cannot
        /// be (another bundle held, no edits carried): the table must be read.
        public func bundle(holding held: FleetBundle?) -> FleetBundle? {
            if let whole { return bundle(files: whole) }
            guard let edits else { return nil }
            var files: [String: File]
            if let since {
                guard let held, held.table == since else { return nil }
                files = held.files
            } else {
                files = [:]
            }
            for path in removed { files[path] = nil }
            for (path, edit) in edits {
                guard let chunks = edit.apply(to: files[path]?.chunks ?? []) else { return nil }
                files[path] = File(size: edit.size, chunks: chunks)
            }
            let made = bundle(files: files)
            // The edits were made against `since`; the result must be the table they name.
            return made.table == table ? made : nil
        }

        /// The bundle this head names, from the table's chunk (already checked against `table`).
        public func bundle(table data: Data) throws(FleetError) -> FleetBundle {
            do { return bundle(files: try FleetStore.jsonDecoder.decode(Table.self, from: data).files) } catch {
                throw .store("the table of files \(table.prefix(12)) is not one enforcer wrote (\(error))")
            }
        }

        func bundle(files: [String: File]) -> FleetBundle {
            FleetBundle(files: files, digest: digest, pushedBy: pushedBy, pushedAt: pushedAt, message: message, checkedAt: checkedAt, patches: patches)
        }

        public func encoded() throws(FleetError) -> Data {
            let value = Value(format: 2, table: table, since: since, edits: edits, removed: removed.isEmpty ? nil : removed, files: nil, digest: digest,
                              pushedBy: pushedBy, pushedAt: ISO8601.string(pushedAt, precision: .milliseconds), message: message,
                              checkedAt: checkedAt, patches: patches.isEmpty ? nil : patches)
            do { return try FleetStore.jsonEncoder.encode(value) } catch { throw .store("cannot encode the bundle: \(error)") }
        }

        /// A head, or a whole manifest as written before heads.
        public static func decode(_ data: Data) throws(FleetError) -> Head {
            let value: Value
            do { value = try FleetStore.jsonDecoder.decode(Value.self, from: data) } catch {
                throw .store("the store's bundle is not one enforcer wrote (\(error))")
            }
            let at = ISO8601.date(value.pushedAt) ?? Date(timeIntervalSince1970: 0)
            if value.format == 1 || value.format == nil, let files = value.files {
                return Head(table: SHA256.hex(FleetBundle.tableData(files)), since: nil, edits: nil,
                            removed: [], digest: value.digest, pushedBy: value.pushedBy, pushedAt: at, message: value.message,
                            checkedAt: value.checkedAt, patches: value.patches ?? [:], whole: files)
            }
            guard value.format == 2, let table = value.table else {
                throw .store("the store's bundle is of format \(value.format.map(String.init) ?? "?"), which this enforcer cannot read: upgrade it")
            }
            return Head(table: table, since: value.since, edits: value.edits, removed: value.removed ?? [], digest: value.digest,
                        pushedBy: value.pushedBy, pushedAt: at, message: value.message, checkedAt: value.checkedAt, patches: value.patches ?? [:])
        }

        /// The JSON of either format: 2 (a head) or 1 (the whole table, written before heads;
        /// `FleetBundle.encoded()` still writes it, for what reads a manifest whole).
        fileprivate struct Value: Codable {
            var format: Int?
            var table: String?
            var since: String?
            var edits: [String: Edit]?
            var removed: [String]?
            /// Format 1 only.
            var files: [String: File]?
            var digest: String
            var pushedBy: String
            var pushedAt: String
            var message: String?
            var checkedAt: Int64
            var patches: [String: Patch]?
        }
    }

    /// Chunk digests an edit may carry to every agent; past that the table is read (a
    /// rewritten policy: each agent fetches it once).
    static let editLimit = 32

    /// This bundle's head, as the edit of `previous` (nil: of nothing).
    public func head(since previous: FleetBundle?) -> Head {
        let before = previous?.files ?? [:]
        var edits: [String: Edit] = [:]
        var inserted = 0
        for (path, file) in files where before[path] != file {
            let edit = Edit.between(before[path]?.chunks ?? [], file.chunks, size: file.size)
            inserted += edit.inserted
            edits[path] = edit
        }
        return Head(table: table, since: previous?.table, edits: inserted <= Self.editLimit ? edits : nil,
                    removed: before.keys.filter { files[$0] == nil }.sorted(), digest: digest, pushedBy: pushedBy, pushedAt: pushedAt,
                    message: message, checkedAt: checkedAt, patches: patches)
    }

    /// The files whose content differs from `other`'s (added, changed or removed), by path.
    public func changedPaths(since other: FleetBundle?) -> [String] {
        guard let other else { return files.keys.sorted() }
        return Set(files.keys).union(other.files.keys).filter { files[$0] != other.files[$0] }.sorted()
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
