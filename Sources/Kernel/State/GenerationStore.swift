import Compiler
import Foundation
import GRDB
import Glibc
import Synchronization

/// One applied generation as recorded in the state database.
public struct GenerationInfo: Codable, Sendable, Equatable {
    public var number: Int
    public var appliedAt: Date
    public var system: String
    public var policyDirectory: String
    /// The kernel's handle of enforcer's table after the apply: a delta is only computed
    /// against a table that is still the one enforcer left (not deleted and re-created).
    public var tableHandle: UInt64?
    /// The network namespace (inode of /proc/self/ns/net) the table lives in.
    public var networkNamespace: UInt64?
    public var summary: String
    /// SHA-256 of the policy source as applied (see `SourceSnapshot`), nil when the
    /// generation came from no source (a rollback).
    public var sourceDigest: String?
    /// Who applied it ("alice via sudo, pid 4242 (apply)") and why (`--reason`).
    public var actor: String?
    public var reason: String?

    public init(number: Int, appliedAt: Date, system: String, policyDirectory: String, tableHandle: UInt64?, networkNamespace: UInt64?,
                summary: String, sourceDigest: String? = nil, actor: String? = nil, reason: String? = nil) {
        self.number = number
        self.appliedAt = appliedAt
        self.system = system
        self.policyDirectory = policyDirectory
        self.tableHandle = tableHandle
        self.networkNamespace = networkNamespace
        self.summary = summary
        self.sourceDigest = sourceDigest
        self.actor = actor
        self.reason = reason
    }

    /// The inode of this process's network namespace.
    public static func currentNetworkNamespace() -> UInt64? {
        // The link reads "net:[4026531840]".
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net") else { return nil }
        return UInt64(link.filter(\.isNumber))
    }
}

public struct StateError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Applied generations in the state database (`StateDatabase`, under the state directory,
/// default /var/lib/enforcer): each generation's table (without set elements, as JSON), the
/// elements of every set (`ElementCodec`), the senders it left in the recent table, the
/// policy source it was applied from, who applied it and why; which one is live; the
/// policies' mark ids. A generation is staged (written, not yet on record) while the kernel
/// takes its transaction and recorded in one database transaction once the kernel has it,
/// so a crash leaves either the old or the new generation on record, never half of one.
public struct GenerationStore: Sendable {
    public let directory: String
    /// Generations kept with their snapshot (the live one always stays).
    public var keep = 20

    public init(directory: String) { self.directory = directory }

    public func database() throws(StateError) -> StateDatabase { try StateDatabase.at(directory: directory) }

    /// Whether anything was ever recorded here: the database, or the JSON files of an
    /// earlier enforcer that its first open takes in (`JSONStateImport`).
    var hasRecord: Bool {
        FileManager.default.fileExists(atPath: directory + "/" + StateDatabase.fileName) || FileManager.default.fileExists(atPath: directory + "/generations")
    }

    /// The database for reading; nil when there is none yet (nothing ever applied) or it
    /// cannot be opened (every reader treats that as "nothing on record").
    private func existingDatabase() -> StateDatabase? {
        guard hasRecord else { return nil }
        return try? database()
    }

    private func setting(_ name: String) -> String? {
        try? existingDatabase()?.read { db in try String.fetchOne(db, sql: "SELECT value FROM setting WHERE name = ?", arguments: [name]) }
    }

    /// Policy name → mark id as recorded by earlier applies (empty before the first).
    public func policyIDs() -> PolicyIDs {
        guard let text = setting("policy_ids") else { return PolicyIDs() }
        // The daemon reads them on every reload: what this process wrote last is not decoded again.
        if let memo = Self.recordedLock.withLock({ Self.recordedIDs[directory] }), memo.text == text { return memo.ids }
        guard let ids = try? Self.decoder.decode(PolicyIDs.self, from: Data(text.utf8)) else { return PolicyIDs() }
        return ids
    }

    public func recordPolicyIDs(_ ids: PolicyIDs) throws(StateError) {
        // Every apply records them and they rarely change, while encoding a thousand of them
        // costs milliseconds: the text this process wrote last is kept, and while the record
        // still holds it (nobody else wrote since) the same ids are not written again.
        let memo = Self.recordedLock.withLock { Self.recordedIDs[directory] }
        if let memo, memo.ids == ids, setting("policy_ids") == memo.text { return }
        let text: String
        do { text = String(decoding: try Self.encoder.encode(ids), as: UTF8.self) } catch {
            throw StateError(description: "cannot encode the policy ids: \(error)")
        }
        try database().write { db in
            try db.execute(sql: "INSERT INTO setting (name, value) VALUES ('policy_ids', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                           arguments: [text])
        }
        Self.recordedLock.withLock { Self.recordedIDs[directory] = (ids, text) }
    }

    public func currentNumber() -> Int? { setting("current").flatMap { Int($0) } }

    /// The generations on record, oldest first.
    public func numbers() -> [Int] {
        (try? existingDatabase()?.read { db in try Int.fetchAll(db, sql: "SELECT number FROM generation WHERE recorded = 1 ORDER BY number") }) ?? []
    }

    public func info(_ number: Int) throws(StateError) -> GenerationInfo {
        let row = try database().read { db in
            try Row.fetchOne(db, sql: """
                SELECT applied_at, system, policy_source, table_handle, network_namespace, summary, source_digest, actor, reason
                FROM generation WHERE number = ? AND recorded = 1
                """, arguments: [number])
        }
        guard let row else { throw StateError(description: "generation \(number) is not on record in \(directory)") }
        let appliedAt: String = row["applied_at"] ?? ""
        return GenerationInfo(number: number, appliedAt: ISO8601.date(appliedAt) ?? Date(timeIntervalSince1970: 0), system: row["system"],
                              policyDirectory: row["policy_source"], tableHandle: (row["table_handle"] as Int64?).map { UInt64(bitPattern: $0) },
                              networkNamespace: (row["network_namespace"] as Int64?).map { UInt64(bitPattern: $0) }, summary: row["summary"],
                              sourceDigest: row["source_digest"], actor: row["actor"], reason: row["reason"])
    }

    /// The generation this process recorded last, per state directory: `enforcer run`
    /// applies again and again, and reading a large generation back costs time and a copy
    /// of memory that the daemon already holds.
    private struct Recorded {
        var info: GenerationInfo
        var ruleset: Ruleset
    }
    nonisolated(unsafe) private static var recorded: [String: Recorded] = [:]
    /// The policy ids this process recorded last, per state directory, and their text.
    nonisolated(unsafe) private static var recordedIDs: [String: (ids: PolicyIDs, text: String)] = [:]
    private static let recordedLock = NSLock()
    /// The text of the table this process staged last, per state directory, by chain and set.
    private static let tableTexts = Mutex<[String: TableText]>([:])

    /// The ruleset a generation put into the kernel.
    public func ruleset(_ number: Int) throws(StateError) -> Ruleset {
        let memo = Self.recordedLock.withLock { Self.recorded[directory] }
        // Only while the generation on record is the one this process recorded (a state
        // directory wiped and used again would reuse its numbers).
        if let memo, memo.info.number == number, let info = try? self.info(number), info == memo.info {
            return memo.ruleset
        }
        let row = try database().read { db in
            try Row.fetchOne(db, sql: "SELECT table_json, elements FROM generation WHERE number = ? AND recorded = 1", arguments: [number])
        }
        guard let row else { throw StateError(description: "generation \(number) is not on record in \(directory)") }
        var table = try Self.decodeTable(row["table_json"], number: number)
        let blob: Data = row["elements"] ?? Data()
        guard let elements = ElementCodec.decode([UInt8](blob)) else {
            throw StateError(description: "generation \(number): its set elements in \(directory)/\(StateDatabase.fileName) are damaged")
        }
        for index in table.sets.indices { table.sets[index].elements = elements[table.sets[index].name] ?? [] }
        return Ruleset(table: table)
    }

    /// The table a generation put into the kernel without its set elements: its sets and
    /// chains by name and role, read without the elements a large generation holds.
    public func table(_ number: Int) throws(StateError) -> Compiler.Table {
        let text = try database().read { db in
            try String.fetchOne(db, sql: "SELECT table_json FROM generation WHERE number = ? AND recorded = 1", arguments: [number])
        }
        guard let text else { throw StateError(description: "generation \(number) is not on record in \(directory)") }
        return try Self.decodeTable(text, number: number)
    }

    private static func decodeTable(_ text: String?, number: Int) throws(StateError) -> Compiler.Table {
        do { return try decoder.decode(Compiler.Table.self, from: Data((text ?? "").utf8)) } catch {
            throw StateError(description: "generation \(number): its table on record is damaged: \(error)")
        }
    }

    /// The sender elements that generation `number` left in the recent table (see
    /// `RecentTable`), by map name; empty when it left none.
    public func recent(_ number: Int) -> [String: [SetElement]] {
        let text = try? existingDatabase()?.read { db in
            try String.fetchOne(db, sql: "SELECT recent_json FROM generation WHERE number = ?", arguments: [number])
        }
        guard let text, let recent = try? Self.decoder.decode([String: [SetElement]].self, from: Data(text.utf8)) else { return [:] }
        return recent
    }

    /// The policy files generation `number` was applied from, by path relative to its
    /// source, with their contents.
    public func sourceFiles(_ number: Int) throws(StateError) -> [(path: String, content: Data)] {
        try database().read { db in
            try Row.fetchAll(db, sql: "SELECT path, content FROM source_file WHERE generation = ? ORDER BY path", arguments: [number])
                .map { (path: $0["path"], content: $0["content"]) }
        }
    }

    /// A generation written to the database but not yet on record: `record(_:info:)` puts it
    /// on record and makes it current, `discard` removes it. Staging needs only the ruleset,
    /// so it runs while the kernel works through the transaction that loads it.
    public struct Staged: Sendable {
        public let number: Int
        fileprivate let ruleset: Ruleset
        fileprivate let digest: String?
        fileprivate let failure: StateError?
    }

    /// Writes everything of generation `number` but its info and recent senders: the table,
    /// the elements and a snapshot of the policy source.
    public func stage(_ ruleset: Ruleset, number: Int, policySource: String?) -> Staged {
        var skeleton = ruleset.table
        var elements: [String: SetElements] = [:]
        var count = 0
        for index in skeleton.sets.indices {
            elements[skeleton.sets[index].name] = skeleton.sets[index].elements
            count += skeleton.sets[index].elements.count
            skeleton.sets[index].elements = []
        }
        Trace.phase("staging begins")
        defer { Trace.phase("staging written") }
        do {
            let tableText = try Self.tableTexts.withLock { texts in try texts[directory, default: TableText()].text(of: skeleton, encoder: Self.encoder) }
            let blob = Data(ElementCodec.encode(elements))
            // Files this process hashed before as they are now are neither read nor hashed
            // again, and a file's bytes are stored once whatever the generations holding them.
            let snapshot = try policySource.map { source throws(StateError) in try SourceSnapshot.digests(directory: source) }
            try database().write { db in
                // A row of this number can only be staging left by a process that died.
                try db.execute(sql: "DELETE FROM generation WHERE number = ?", arguments: [number])
                try db.execute(sql: """
                    INSERT INTO generation (number, recorded, staged_by, table_json, elements, element_count, source_digest, policy_source)
                    VALUES (?, 0, ?, ?, ?, ?, ?, ?)
                    """, arguments: [number, Int(getpid()), tableText, blob, count, snapshot?.digest, policySource ?? ""])
                for file in snapshot?.files ?? [] {
                    var digest = file.digest
                    if try !Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM source_blob WHERE digest = ?)", arguments: [digest])! {
                        // Known by its digest, but not to this database: read it now, and
                        // hashed again unless the file is still the one its digest was taken of.
                        let path = policySource! + "/" + file.path
                        guard let content = file.content ?? FileManager.default.contents(atPath: path) else {
                            throw StateError(description: "cannot read \(path): \(SystemErrno(errno))")
                        }
                        if file.content == nil && !file.stillDescribes(content, at: path) { digest = SHA256.hex(content) }
                        try db.execute(sql: "INSERT OR IGNORE INTO source_blob (digest, content) VALUES (?, ?)", arguments: [digest, content])
                    }
                    try db.execute(sql: "INSERT INTO generation_file (generation, path, digest) VALUES (?, ?, ?)",
                                   arguments: [number, file.path, digest])
                }
            }
            return Staged(number: number, ruleset: ruleset, digest: snapshot?.digest, failure: nil)
        } catch let error as StateError {
            return Staged(number: number, ruleset: ruleset, digest: nil,
                          failure: StateError(description: "cannot record generation \(number): \(error)"))
        } catch {
            return Staged(number: number, ruleset: ruleset, digest: nil,
                          failure: StateError(description: "cannot record generation \(number) in \(directory): \(SystemErrno.describe(error))"))
        }
    }

    /// Puts a staged generation on record with its info and the senders it leaves in the
    /// recent table, and makes it current: one database transaction.
    /// `kernelGeneration`: the nf_tables generation id the commit made, when known.
    public func record(_ staged: Staged, info: GenerationInfo, recent: [String: [SetElement]] = [:], kernelGeneration: UInt32? = nil) throws(StateError) {
        precondition(staged.number == info.number, "generation \(info.number) recorded from the staging of \(staged.number)")
        if let failure = staged.failure { throw failure }
        var info = info
        info.sourceDigest = info.sourceDigest ?? staged.digest
        let recentText: String?
        do {
            recentText = recent.values.contains(where: { !$0.isEmpty }) ? String(decoding: try Self.encoder.encode(recent), as: UTF8.self) : nil
        } catch { throw StateError(description: "cannot encode the recent senders: \(error)") }
        let recordedInfo = info
        try database().write { db in
            try db.execute(sql: """
                UPDATE generation SET recorded = 1, applied_at = ?, system = ?, policy_source = ?, table_handle = ?, network_namespace = ?,
                    summary = ?, source_digest = ?, actor = ?, reason = ?, recent_json = ?, kernel_generation = ?
                WHERE number = ? AND recorded = 0
                """, arguments: [ISO8601.string(recordedInfo.appliedAt, precision: .milliseconds), recordedInfo.system, recordedInfo.policyDirectory,
                                 recordedInfo.tableHandle.map { Int64(bitPattern: $0) }, recordedInfo.networkNamespace.map { Int64(bitPattern: $0) },
                                 recordedInfo.summary, recordedInfo.sourceDigest, recordedInfo.actor, recordedInfo.reason, recentText,
                                 kernelGeneration.map { Int64($0) }, recordedInfo.number])
            guard db.changesCount == 1 else {
                throw StateError(description: "generation \(recordedInfo.number) was not staged in \(directory) (removed by another process?)")
            }
            try Self.setCurrent(recordedInfo.number, in: db)
        }
        (try? database())?.checkpointAside()
        // What reads back: the instant as recorded (to the millisecond).
        if let stored = try? self.info(info.number) {
            Self.recordedLock.withLock { Self.recorded[directory] = Recorded(info: stored, ruleset: staged.ruleset) }
        }
        prune()
    }

    /// Removes a staged generation that will not be recorded (its transaction was refused).
    public func discard(_ staged: Staged) {
        _ = try? database().write { db in
            try db.execute(sql: "DELETE FROM generation WHERE number = ? AND recorded = 0", arguments: [staged.number])
        }
    }

    /// Records a generation and makes it current.
    public func record(_ ruleset: Ruleset, info: GenerationInfo, policySource: String?, recent: [String: [SetElement]] = [:]) throws(StateError) {
        try record(stage(ruleset, number: info.number, policySource: policySource), info: info, recent: recent)
    }

    /// The nf_tables generation id at which the kernel held generation `number` exactly as
    /// enforcer left it; nil when unknown (an older record, or a commit whose outcome was
    /// not followed).
    public func kernelGeneration(of number: Int) -> UInt32? {
        (try? existingDatabase()?.read { db in
            try Int64.fetchOne(db, sql: "SELECT kernel_generation FROM generation WHERE number = ? AND recorded = 1", arguments: [number])
        }).flatMap { $0 }.map { UInt32(truncatingIfNeeded: $0) }
    }

    /// The current generation is still as enforcer left it at nf_tables generation `to`, if
    /// it was at `from`: a commit that did not touch enforcer's tables (seen by the daemon's
    /// monitor), or enforcer's own change of the timed grants. Nothing otherwise, so a record
    /// that fell behind stays behind (and the next apply replaces the table whole).
    public func advanceKernelGeneration(from: UInt32, to: UInt32) {
        _ = try? database().write { db in
            try db.execute(sql: """
                UPDATE generation SET kernel_generation = ?
                WHERE number = (SELECT CAST(value AS INTEGER) FROM setting WHERE name = 'current') AND kernel_generation = ?
                """, arguments: [Int64(to), Int64(from)])
        }
    }

    public func setCurrent(_ number: Int?) throws(StateError) {
        try database().write { db in try Self.setCurrent(number, in: db) }
    }

    private static func setCurrent(_ number: Int?, in db: Database) throws {
        if let number {
            try db.execute(sql: "INSERT INTO setting (name, value) VALUES ('current', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                           arguments: [String(number)])
        } else {
            try db.execute(sql: "DELETE FROM setting WHERE name = 'current'")
        }
    }

    /// Oldest generations beyond `keep` go, never the current one; so does the staging of
    /// processes that are gone.
    private func prune() {
        let keep = keep
        _ = try? database().write { db in
            for row in try Row.fetchAll(db, sql: "SELECT number, staged_by FROM generation WHERE recorded = 0") {
                let pid: Int32 = row["staged_by"] ?? 0
                if pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
                    try db.execute(sql: "DELETE FROM generation WHERE number = ?", arguments: [row["number"] as Int])
                }
            }
            let current = try String.fetchOne(db, sql: "SELECT value FROM setting WHERE name = 'current'").flatMap { Int($0) } ?? -1
            try db.execute(sql: """
                DELETE FROM generation WHERE recorded = 1 AND number != ? AND number NOT IN
                    (SELECT number FROM generation WHERE recorded = 1 ORDER BY number DESC LIMIT ?)
                """, arguments: [current, keep])
            try db.execute(sql: "DELETE FROM source_blob WHERE digest NOT IN (SELECT digest FROM generation_file)")
        }
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601Text()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601Text
        return decoder
    }
}

/// A compact binary form of set elements (a generation can hold millions of them).
///
/// `ENFS2` (written): per set its name and either a list of elements or, for elements stored
/// by column (`HostColumns`), the family, the distinct verdicts, then every address and
/// every verdict number end to end. `ENFS1` (read only, from older generations): a list for
/// every set. Integers are little-endian.
enum ElementCodec {
    static let magic = Array("ENFS2".utf8)
    static let listMagic = Array("ENFS1".utf8)

    static func encode(_ sets: [String: SetElements]) -> [UInt8] {
        var out = magic
        func u8(_ v: UInt8) { out.append(v) }
        func u16(_ v: UInt16) { out.append(UInt8(truncatingIfNeeded: v)); out.append(UInt8(truncatingIfNeeded: v >> 8)) }
        func u32(_ v: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> shift)) } }
        func u128(_ v: UInt128) { for shift in stride(from: 0, to: 128, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> shift)) } }
        func string(_ s: String?) {
            guard let s else { u32(.max); return }
            u32(UInt32(s.utf8.count))
            out += s.utf8
        }
        func verdict(_ verdict: Verdict?) {
            switch verdict {
            case nil: u8(0)
            case .accept?: u8(1)
            case .drop?: u8(2)
            case .return?: u8(3)
            case .jump(let chain)?: u8(4); string(chain)
            case .goto(let chain)?: u8(5); string(chain)
            }
        }
        u32(UInt32(sets.count))
        for (name, elements) in sets.sorted(by: { $0.key < $1.key }) {
            string(name)
            if let hosts = elements.hostColumns {
                u8(1)
                u8(hosts.family == .v4 ? 4 : 6)
                u32(UInt32(hosts.verdicts.count))
                for each in hosts.verdicts { verdict(each) }
                u32(UInt32(hosts.count))
                out.reserveCapacity(out.count + hosts.words.count * 4 + hosts.count * 2)
                for word in hosts.words { u32(word) }
                for number in hosts.verdictIndex { u16(number) }
                continue
            }
            u8(0)
            u32(UInt32(elements.count))
            for element in elements {
                u8(UInt8(element.key.count))
                for part in element.key {
                    switch part {
                    case .addresses(let range):
                        u8(range.family == .v4 ? 4 : 6)
                        u128(range.first.value)
                        u128(range.last.value)
                    case .proto(let proto): u8(1); u8(proto.rawValue)
                    case .ports(let ports): u8(2); u16(ports.first); u16(ports.last)
                    case .mark(let mark): u8(3); u32(mark)
                    }
                }
                verdict(element.verdict)
                u32(element.timeout.map { UInt32(clamping: $0) } ?? .max)
                string(element.comment)
            }
        }
        return out
    }

    static func decode(_ input: [UInt8]) -> [String: SetElements]? {
        guard input.count >= magic.count else { return nil }
        let head = Array(input[0..<magic.count])
        guard head == magic || head == listMagic else { return nil }
        let columns = head == magic
        var offset = magic.count
        func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, offset + n <= input.count else { return nil }
            defer { offset += n }
            return input[offset..<(offset + n)]
        }
        func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
            take(MemoryLayout<T>.size).map { bytes in bytes.reversed().reduce(T(0)) { $0 << 8 | T($1) } }
        }
        func string() -> String?? {
            guard let count = integer(UInt32.self) else { return nil }
            if count == .max { return .some(nil) }
            guard let bytes = take(Int(count)) else { return nil }
            return .some(String(decoding: bytes, as: UTF8.self))
        }
        func verdict() -> Verdict?? {
            switch integer(UInt8.self) {
            case 0?: return .some(nil)
            case 1?: return .accept
            case 2?: return .drop
            case 3?: return .return
            case 4?: guard let chain = string(), let chain else { return nil }; return .jump(chain)
            case 5?: guard let chain = string(), let chain else { return nil }; return .goto(chain)
            default: return nil
            }
        }
        func hosts() -> SetElements? {
            guard let familyByte = integer(UInt8.self), familyByte == 4 || familyByte == 6,
                  let verdictCount = integer(UInt32.self), verdictCount <= 65536 else { return nil }
            var verdicts: [Verdict?] = []
            for _ in 0..<verdictCount {
                guard let each = verdict() else { return nil }
                verdicts.append(each)
            }
            guard let count = integer(UInt32.self).map(Int.init) else { return nil }
            let perAddress = familyByte == 4 ? 1 : 4
            guard let wordBytes = take(count * perAddress * 4), let indexBytes = take(count * 2) else { return nil }
            var words = [UInt32](repeating: 0, count: count * perAddress)
            var at = wordBytes.startIndex
            for i in words.indices {
                words[i] = UInt32(wordBytes[at]) | UInt32(wordBytes[at + 1]) << 8 | UInt32(wordBytes[at + 2]) << 16 | UInt32(wordBytes[at + 3]) << 24
                at += 4
            }
            var index = [UInt16](repeating: 0, count: count)
            at = indexBytes.startIndex
            for i in index.indices {
                index[i] = UInt16(indexBytes[at]) | UInt16(indexBytes[at + 1]) << 8
                at += 2
            }
            return SetElements(family: familyByte == 4 ? .v4 : .v6, words: words, verdicts: verdicts, verdictIndex: index)
        }
        guard let setCount = integer(UInt32.self) else { return nil }
        var sets: [String: SetElements] = [:]
        for _ in 0..<setCount {
            guard let name = string(), let name else { return nil }
            if columns {
                switch integer(UInt8.self) {
                case 1?:
                    guard let elements = hosts() else { return nil }
                    sets[name] = elements
                    continue
                case 0?: break
                default: return nil
                }
            }
            guard let count = integer(UInt32.self) else { return nil }
            var elements = SetElements()
            for _ in 0..<count {
                guard let parts = integer(UInt8.self) else { return nil }
                var key: [KeyPart] = []
                for _ in 0..<parts {
                    switch integer(UInt8.self) {
                    case 4?, 6?:
                        let v4 = input[offset - 1] == 4
                        guard let first = integer(UInt128.self), let last = integer(UInt128.self), first <= last,
                              !v4 || last <= UInt128(UInt32.max) else { return nil }
                        func address(_ value: UInt128) -> IPAddress { v4 ? IPAddress(v4: UInt32(value)) : IPAddress(v6: value) }
                        key.append(.addresses(AddressRange(first: address(first), last: address(last))))
                    case 1?:
                        guard let raw = integer(UInt8.self), let proto = IPProtocol(rawValue: raw) else { return nil }
                        key.append(.proto(proto))
                    case 2?:
                        guard let first = integer(UInt16.self), let last = integer(UInt16.self), first <= last else { return nil }
                        key.append(.ports(PortRange(first: first, last: last)))
                    case 3?:
                        guard let mark = integer(UInt32.self) else { return nil }
                        key.append(.mark(mark))
                    default: return nil
                    }
                }
                guard let verdict = verdict(), let timeout = integer(UInt32.self), let comment = string() else { return nil }
                elements.append(SetElement(key, verdict: verdict, timeout: timeout == .max ? nil : Int(timeout), comment: comment))
            }
            sets[name] = elements
        }
        return offset == input.count ? sets : nil
    }
}
