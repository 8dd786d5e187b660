import Compiler
import Etcd
import Foundation

/// A fleet's keys in etcd, read and written the way every enforcer command and agent agrees
/// on (`FleetLayout`): the pushed bundle, its chunks, its history, the agents' presence.
public struct FleetStore: Sendable {
    public let client: any EtcdClient
    public let layout: FleetLayout

    public init(client: any EtcdClient, layout: FleetLayout) {
        self.client = client
        self.layout = layout
    }

    /// The bundle as of `revision` (0: now), the store's revision of that read, and the
    /// revision the bundle was last written at (0 when none was ever pushed).
    public struct Read: Sendable {
        public var bundle: FleetBundle?
        public var revision: Int64
        public var modRevision: Int64
    }

    public func bundle(at revision: Int64 = 0) async throws(FleetError) -> Read {
        let response: RangeResponse
        do { response = try await client.range(.key(layout.pushKey), RangeOptions(revision: revision)) } catch {
            throw Self.failure("read the bundle of fleet \(layout.fleet)", error)
        }
        guard let kv = response.kvs.first else { return Read(bundle: nil, revision: response.header.revision, modRevision: 0) }
        return Read(bundle: try await resolve(kv.value).bundle, revision: response.header.revision, modRevision: kv.modRevision)
    }

    /// The bundle a value of the watched key names: made from `held` when the value's edits
    /// apply to it, else from the table's chunk, read and checked against its digest.
    /// `tableRead`: whether the table was read (an agent counts it among the chunks fetched).
    public func resolve(_ value: Data, holding held: FleetBundle? = nil) async throws(FleetError) -> (bundle: FleetBundle, tableRead: Bool) {
        let head = try FleetBundle.Head.decode(value)
        if let made = head.bundle(holding: held) { return (made, false) }
        return (try head.bundle(table: try await fetch([head.table])[head.table] ?? Data()), true)
    }

    /// The files of `bundle`, in path order, and its chunks by digest (to reuse for the next
    /// bundle). Chunks in `have` are not fetched again; the others are, several at a time.
    /// Every chunk is checked against its digest.
    public func files(of bundle: FleetBundle, reusing have: [String: Data] = [:]) async throws(FleetError)
        -> (files: [(path: String, content: Data)], chunks: [String: Data], patched: Int, fetched: Int) {
        let (pieces, patched, fetched) = try await pieces(of: bundle, reusing: have)
        return (pieces.paths.map { (path: $0, content: pieces.content($0)) }, pieces.chunks, patched, fetched)
    }

    /// Every chunk of a bundle at hand; a file's bytes are joined only when asked for (an
    /// agent writes only the files a push changed: joining all 14 MB took 12–20 ms of each push).
    public struct Pieces: Sendable {
        public let bundle: FleetBundle
        /// By digest.
        public let chunks: [String: Data]
        public var paths: [String] { bundle.files.keys.sorted() }

        public func content(_ path: String) -> Data {
            guard let file = bundle.files[path] else { return Data() }
            var content = Data()
            content.reserveCapacity(file.size)
            for digest in file.chunks { content.append(chunks[digest]!) }
            return content
        }
    }

    /// The chunks of `bundle`: those of `have` it names, those its patches make from them,
    /// and the others fetched. `patched`, `fetched`: how many were made, how many fetched.
    public func pieces(of bundle: FleetBundle, reusing have: [String: Data] = [:]) async throws(FleetError)
        -> (pieces: Pieces, patched: Int, fetched: Int) {
        let named = Set(bundle.files.values.flatMap(\.chunks))
        var chunks = have.filter { named.contains($0.key) }
        // What the manifest's patches make from chunks held need not be fetched.
        let patched = bundle.patched(from: have)
        chunks.merge(patched) { held, _ in held }
        let fetched = try await fetch(Array(named.subtracting(chunks.keys)))
        for (digest, data) in fetched { chunks[digest] = data }
        if let lost = named.first(where: { chunks[$0] == nil }) { throw .missing("chunk \(lost) is missing from the store") }
        return (Pieces(bundle: bundle, chunks: chunks), patched.count, fetched.count)
    }

    /// `bundle` with the patches that make its new chunks (`chunks`) from those of
    /// `previous`, the bundle it replaces. The old chunks are read from the store; where one
    /// cannot be, its patch is left out (an agent then fetches that chunk).
    public func withPatches(_ bundle: FleetBundle, chunks: [String: Data], since previous: FleetBundle?) async -> FleetBundle {
        guard let previous else { return bundle }
        let bases = bundle.patchBases(from: previous)
        guard !bases.isEmpty, let old = try? await fetch(Array(Set(bases.values))) else { return bundle }
        return bundle.withPatches(bases: bases, old: old, chunks: chunks)
    }

    /// The chunks named by `digests`, fetched several at a time and each checked against its
    /// digest; for a caller that keeps chunks rather than whole files.
    public func chunks(_ digests: [String]) async throws(FleetError) -> [String: Data] {
        try await fetch(digests)
    }

    private func fetch(_ digests: [String]) async throws(FleetError) -> [String: Data] {
        guard !digests.isEmpty else { return [:] }
        let client = client, layout = layout
        do {
            return try await withThrowingTaskGroup(of: (String, Data).self) { group in
                var out: [String: Data] = [:]
                var pending = digests[...]
                // Eight at a time: a cold agent's first snapshot fetches hundreds.
                for _ in 0..<min(8, pending.count) {
                    let digest = pending.removeFirst()
                    group.addTask { try await Self.chunk(digest, client: client, layout: layout) }
                }
                while let (digest, data) = try await group.next() {
                    out[digest] = data
                    if let next = pending.popFirst() { group.addTask { try await Self.chunk(next, client: client, layout: layout) } }
                }
                return out
            }
        } catch let error as FleetError {
            throw error
        } catch {
            throw Self.failure("fetch chunks of fleet \(layout.fleet)", error)
        }
    }

    private static func chunk(_ digest: String, client: any EtcdClient, layout: FleetLayout) async throws -> (String, Data) {
        guard let kv = try await client.get(layout.chunkKey(digest)) else {
            throw FleetError.missing("chunk \(digest) is missing from the store")
        }
        guard SHA256.hex(kv.value) == digest else { throw FleetError.store("chunk \(digest) in the store does not match its digest") }
        return (digest, kv.value)
    }

    /// Writes the chunks the store lacks, then the bundle in one transaction on the condition
    /// that the bundle is still the one last written at `expecting` (0: none yet). Returns
    /// the revision of the push; another push in between is `FleetError.conflict`.
    /// The value written is the bundle's head as an edit of `previous` (the bundle read at
    /// `expecting`), and its table is one more chunk.
    public func push(_ bundle: FleetBundle, chunks: [String: Data], expecting modRevision: Int64, previous: FleetBundle?) async throws(FleetError) -> Int64 {
        let head = bundle.head(since: previous)
        var chunks = chunks
        chunks[head.table] = bundle.tableData()
        let client = client, layout = layout
        let present: Set<String>
        let collected: Int64
        do {
            // Read before the chunks are listed: a `fleet gc` batch after this read fails the push.
            collected = try await client.get(layout.collectionKey)?.modRevision ?? 0
            present = Set(try await chunkKeys().map(digest))
        } catch { throw Self.failure("list the chunks of fleet \(layout.fleet)", error) }
        let missing = chunks.filter { !present.contains($0.key) }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                var pending = missing.sorted { $0.key < $1.key }[...]
                for _ in 0..<min(8, pending.count) {
                    let (digest, data) = pending.removeFirst()
                    group.addTask { try await client.put(layout.chunkKey(digest), data) }
                }
                while try await group.next() != nil {
                    if let (digest, data) = pending.popFirst() { group.addTask { try await client.put(layout.chunkKey(digest), data) } }
                }
            }
        } catch { throw Self.failure("write the chunks of fleet \(layout.fleet)", error) }
        let manifest = try head.encoded()
        let response: TxnResponse
        do {
            let unchanged: [Compare] = [Compare.modRevision(layout.pushKey, .equal, modRevision), Compare.modRevision(layout.collectionKey, .equal, collected)]
            response = try await client.txn(if: unchanged,
                                            then: [.put(key: Data(layout.pushKey.utf8), value: manifest, lease: 0, prevKV: false)],
                                            else: [.range(.key(layout.pushKey))])
        } catch { throw Self.failure("write the bundle of fleet \(layout.fleet)", error) }
        guard response.succeeded else {
            var who = ""
            if case .range(let range)? = response.responses.first, (range.kvs.first?.modRevision ?? 0) == modRevision {
                throw .conflict("`fleet gc` removed chunks while this push was written: push again")
            }
            if case .range(let range)? = response.responses.first, let kv = range.kvs.first, let other = try? FleetBundle.Head.decode(kv.value) {
                who = " (revision \(kv.modRevision), pushed by \(other.pushedBy) at \(ISO8601.string(other.pushedAt)))"
            }
            throw .conflict("another push landed since this one was checked\(who): check the policy against it and push again")
        }
        return response.header.revision
    }

    /// Earlier pushes, newest first, as far back as the store keeps them (etcd forgets
    /// revisions before its last compaction): each head, and its bundle while the store
    /// still holds its table of files (`fleet gc` deletes those of revisions it does not keep).
    public func history(limit: Int = 20) async throws(FleetError) -> [(revision: Int64, head: FleetBundle.Head, bundle: FleetBundle?)] {
        var out: [(revision: Int64, head: FleetBundle.Head, bundle: FleetBundle?)] = []
        var at: Int64 = 0
        var newer: FleetBundle?
        while out.count < limit {
            let response: RangeResponse
            do { response = try await client.range(.key(layout.pushKey), RangeOptions(revision: at)) } catch {
                if error.kind == .compacted { break }
                throw Self.failure("read the history of fleet \(layout.fleet)", error)
            }
            guard let kv = response.kvs.first else { break }
            let head = try FleetBundle.Head.decode(kv.value)
            var bundle = head.bundle(holding: nil)
            if bundle == nil, newer?.table == head.table { bundle = newer.map { head.bundle(files: $0.files) } }
            if bundle == nil {
                let table: KeyValue?
                do { table = try await client.get(layout.chunkKey(head.table)) } catch { throw Self.failure("read the history of fleet \(layout.fleet)", error) }
                if let table, SHA256.hex(table.value) == head.table { bundle = try head.bundle(table: table.value) }
            }
            out.append((kv.modRevision, head, bundle))
            newer = bundle
            guard kv.modRevision > 1 else { break }
            at = kv.modRevision - 1
        }
        return out
    }

    // MARK: Chunks no kept revision names

    /// What `collectGarbage` did (or, dry, would do).
    public struct Collection: Sendable, Equatable {
        /// The revisions whose chunks were kept, newest first.
        public var kept: [Int64]
        public var deleted: Int
        public var deletedBytes: Int
        /// Chunks the kept revisions name.
        public var named: Int
        /// Chunks written after the current bundle: a push in progress, kept.
        public var recent: Int
    }

    /// Deletes the chunks named by none of the last `keep` revisions of the bundle (the
    /// current one among them) and written before the current bundle was (later ones belong
    /// to a push in progress). Each batch of deletions is one transaction on the condition
    /// that the bundle is still the one read, and it touches `collectionKey`, so a push that
    /// listed the chunks before it fails rather than name a chunk just deleted.
    public func collectGarbage(keep: Int, dryRun: Bool) async throws(FleetError) -> Collection {
        guard keep >= 1 else { throw .usage("--keep-revisions: at least 1 (the current policy)") }
        let history = try await history(limit: keep)
        guard let current = history.first else { return Collection(kept: [], deleted: 0, deletedBytes: 0, named: 0, recent: 0) }
        guard current.bundle != nil else { throw .store("the table of files of revision \(current.revision) is missing from the store: push the policy again") }
        // A revision whose table is gone already (an earlier `fleet gc` with fewer kept) cannot be restored: nothing to keep for it.
        let kept = history.compactMap { entry in entry.bundle.map { (revision: entry.revision, table: entry.head.table, bundle: $0) } }
        let named = Set(kept.flatMap { $0.bundle.files.values.flatMap(\.chunks) + [$0.table] })
        let client = client, layout = layout
        let listed: [KeyValue]
        do { listed = try await chunkKeys() } catch { throw Self.failure("list the chunks of fleet \(layout.fleet)", error) }
        let unnamed = listed.filter { !named.contains(digest(of: $0)) }
        let doomed = unnamed.filter { $0.createRevision <= current.revision }.map(\.keyString)
        var collection = Collection(kept: kept.map(\.revision), deleted: 0, deletedBytes: 0, named: listed.count - unnamed.count,
                                    recent: unnamed.count - doomed.count)
        do {
            // 100 deletions and the mark: under etcd's 128 operations per transaction.
            for start in stride(from: 0, to: doomed.count, by: 100) {
                let batch = doomed[start..<min(start + 100, doomed.count)]
                if dryRun {
                    for key in batch { collection.deletedBytes += try await client.get(key)?.value.count ?? 0 }
                    collection.deleted += batch.count
                    continue
                }
                var operations: [TxnOperation] = batch.map { TxnOperation.delete(KeyRange.key($0), prevKV: true) }
                operations.append(TxnOperation.put(layout.collectionKey, ""))
                let answer = try await client.txn(if: [.modRevision(layout.pushKey, .equal, current.revision)], then: operations)
                guard answer.succeeded else {
                    throw FleetError.conflict("a push landed while `fleet gc` ran (\(collection.deleted) chunks deleted so far): run it again")
                }
                for case .delete(let deleted) in answer.responses {
                    collection.deleted += Int(deleted.deleted)
                    collection.deletedBytes += deleted.prevKVs.reduce(0) { $0 + $1.value.count }
                }
            }
        } catch { throw Self.failure("delete chunks of fleet \(layout.fleet)", error) }
        return collection
    }

    /// The chunks of `bundle` the store no longer holds (`fleet gc` deleted them).
    public func missingChunks(of bundle: FleetBundle) async throws(FleetError) -> [String] {
        let present: Set<String>
        do { present = Set(try await chunkKeys().map(digest)) } catch { throw Self.failure("list the chunks of fleet \(layout.fleet)", error) }
        return Set(bundle.files.values.flatMap(\.chunks)).subtracting(present).sorted()
    }

    /// The keys (without values) of every chunk the store holds.
    private func chunkKeys() async throws(EtcdError) -> [KeyValue] {
        try await client.range(.prefix(layout.chunkPrefix), RangeOptions(keysOnly: true)).kvs
    }

    private func digest(of chunk: KeyValue) -> String { String(chunk.keyString.dropFirst(layout.chunkPrefix.count)) }

    // MARK: Presence

    /// What an agent tells the fleet about itself.
    public struct Presence: Codable, Sendable, Equatable {
        public var host: String
        public var system: String
        /// The store revision whose bundle it enforces (0: none yet).
        public var revision: Int64
        public var generation: Int?
        public var appliedAt: String?
        /// Why its last attempt failed (a refused bundle's diagnostics, the store unreachable).
        public var error: String?
        public var updatedAt: String

        public init(host: String, system: String, revision: Int64, generation: Int?, appliedAt: Date?, error: String?, at instant: Date = Date()) {
            self.host = host
            self.system = system
            self.revision = revision
            self.generation = generation
            self.appliedAt = appliedAt.map { ISO8601.string($0, precision: .milliseconds) }
            self.error = error
            updatedAt = ISO8601.string(instant, precision: .milliseconds)
        }
    }

    public func announce(_ presence: Presence, lease: Int64) async throws(FleetError) {
        let data: Data
        do { data = try Self.jsonEncoder.encode(presence) } catch { throw .store("cannot encode presence: \(error)") }
        do { try await client.put(layout.presenceKey(presence.host), data, lease: lease) } catch {
            throw Self.failure("write the presence of \(presence.host)", error)
        }
    }

    /// An enrolled host's word about itself: its name and reachable addresses, under `lease`.
    public func announceMember(slot: String, name: String, addresses: [IPAddress], lease: Int64, at instant: Date = Date()) async throws(FleetError) {
        let member = Enrolment.Member(name: name, addresses: addresses.filter(Enrolment.isReachable).sorted().map(\.description),
                                      updatedAt: ISO8601.string(instant, precision: .milliseconds))
        let data: Data
        do { data = try Self.jsonEncoder.encode(member) } catch { throw .store("cannot encode the member record: \(error)") }
        do { try await client.put(layout.memberKey(slot), data, lease: lease) } catch {
            throw Self.failure("write the member record of \(name)", error)
        }
    }

    /// Every agent's presence, with the store's current revision.
    public func presences() async throws(FleetError) -> (revision: Int64, hosts: [Presence]) {
        let response: RangeResponse
        do { response = try await client.range(.prefix(layout.presencePrefix)) } catch {
            throw Self.failure("read the presence of fleet \(layout.fleet)", error)
        }
        let hosts = response.kvs.compactMap { try? Self.jsonDecoder.decode(Presence.self, from: $0.value) }
        return (response.header.revision, hosts.sorted { $0.host < $1.host })
    }

    /// The JSON of every value enforcer writes to the store (the bundle, presence): keys
    /// sorted, so equal values are equal bytes, and in snake case.
    static let jsonEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }()
    static let jsonDecoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    static func failure(_ what: String, _ error: any Error) -> FleetError {
        if let error = error as? FleetError { return error }
        return .store("cannot \(what): \(error)")
    }
}
