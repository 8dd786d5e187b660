import Compiler
import Foundation
import GRDB
import Testing
@testable import Kernel

/// Recorded generations read back: from this process's memory while the record is the one
/// it wrote, from the database once another writer has replaced it; retention, the source
/// snapshot, the history.
@Suite struct GenerationStoreTests {
    static func temporaryDirectory() -> String { NSTemporaryDirectory() + "enforcer-store-\(UUID().uuidString)" }

    static func info(_ number: Int, summary: String) -> GenerationInfo {
        GenerationInfo(number: number, appliedAt: Date(), system: "db-1", policyDirectory: "", tableHandle: 7, networkNamespace: nil, summary: summary)
    }

    @Test func aRecordedGenerationReadsBackTheSame() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = GenerationStore(directory: directory)
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        try store.record(ruleset, info: Self.info(1, summary: "first"), policySource: nil)
        #expect(try store.ruleset(1) == ruleset)
        // A second store on the same directory (another process's view) reads the files.
        #expect(try GenerationStore(directory: directory + "/.").ruleset(1) == ruleset)
    }

    /// The table's text is put together from its chains' and sets' and is the text the
    /// encoder makes of the whole; a generation after a change encodes only the pieces that
    /// changed, and reads back as recorded.
    @Test func aTableIsEncodedByTheChainsThatChanged() throws {
        var table = try exampleRuleset("enclave", system: "db-1").table
        for index in table.sets.indices { table.sets[index].elements = [] }
        var texts = TableText()
        func expectSameAsWhole(_ table: Compiler.Table) throws {
            let whole = String(decoding: try GenerationStore.encoder.encode(table), as: UTF8.self)
            #expect(try texts.text(of: table, encoder: GenerationStore.encoder) == whole)
        }
        try expectSameAsWhole(table)
        #expect(texts.encodedLast == table.chains.count + table.sets.count)
        try expectSameAsWhole(table)
        #expect(texts.encodedLast == 0)
        let changed = try #require(table.chains.firstIndex { !$0.rules.isEmpty })
        table.chains[changed].rules.removeLast()
        table.sets[0].comment = "changed"
        try expectSameAsWhole(table)
        #expect(texts.encodedLast == 2)
        table.chains.remove(at: changed)
        try expectSameAsWhole(table)
        #expect(texts.encodedLast == 0)

        // Through the store: each generation reads back as it was recorded.
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = GenerationStore(directory: directory)
        var ruleset = try exampleRuleset("enclave", system: "db-1")
        try store.record(ruleset, info: Self.info(1, summary: "first"), policySource: nil)
        ruleset.table.chains[changed].rules.removeLast()
        try store.record(ruleset, info: Self.info(2, summary: "second"), policySource: nil)
        #expect(try GenerationStore(directory: directory + "/.").ruleset(2) == ruleset)
        #expect(try GenerationStore(directory: directory + "/.").ruleset(1) == (try exampleRuleset("enclave", system: "db-1")))
    }

    /// The intent an apply leaves from before its transaction until its record: read back
    /// whole, root's alone, no temporary file left beside it, gone when ended; a damaged
    /// one (a power loss, say) reads as none; and a symbolic link planted at the temporary
    /// name is not followed.
    @Test func anApplyIntentReadsBackAndADamagedOneIsNone() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = GenerationStore(directory: directory)
        #expect(store.intent() == nil)
        try store.beginIntent(number: 4, system: "db-1")
        let intent = try #require(store.intent())
        #expect(intent.number == 4 && intent.system == "db-1" && intent.pid == getpid() && intent.isUnderWay)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("applying") } == ["applying"])
        let mode = try FileManager.default.attributesOfItem(atPath: directory + "/applying")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        store.endIntent()
        #expect(store.intent() == nil)

        try Data("{\"number\":4,\"pi".utf8).write(to: URL(fileURLWithPath: directory + "/applying"))
        #expect(store.intent() == nil)

        let elsewhere = directory + "/elsewhere"
        try FileManager.default.createSymbolicLink(atPath: directory + "/applying.next", withDestinationPath: elsewhere)
        #expect(throws: StateError.self) { try store.beginIntent(number: 5, system: "db-1") }
        #expect(!FileManager.default.fileExists(atPath: elsewhere))
    }

    @Test func aDatabaseReplacedByAnotherWriterIsReadFromDisk() throws {
        let mine = Self.temporaryDirectory(), theirs = Self.temporaryDirectory()
        defer { for d in [mine, theirs] { try? FileManager.default.removeItem(atPath: d) } }
        let first = try exampleRuleset("enclave", system: "db-1")
        let other = try exampleRuleset("enclave", system: "sre-1")
        #expect(first != other)
        try GenerationStore(directory: mine).record(first, info: Self.info(1, summary: "mine"), policySource: nil)
        // Another writer wipes the state directory and records its own generation 1 there.
        try GenerationStore(directory: theirs).record(other, info: Self.info(1, summary: "theirs"), policySource: nil)
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: mine + "/state.sqlite" + suffix) }
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: theirs + "/state.sqlite" + suffix) {
            try FileManager.default.copyItem(atPath: theirs + "/state.sqlite" + suffix, toPath: mine + "/state.sqlite" + suffix)
        }
        #expect(try GenerationStore(directory: mine).ruleset(1) == other)
    }

    /// A generation recorded before sets carried a role reads back with the roles the
    /// compiler gives them now, so the first apply after an upgrade can still be a delta.
    @Test func aRecordWithoutSetRolesReadsBackWithThem() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        let store = GenerationStore(directory: directory)
        try store.record(ruleset, info: Self.info(1, summary: "old"), policySource: nil)
        let queue = try DatabaseQueue(path: directory + "/state.sqlite")
        try queue.write { db in
            let text = try #require(try String.fetchOne(db, sql: "SELECT table_json FROM generation WHERE number = 1"))
            var table = try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            let sets = try #require(table["sets"] as? [[String: Any]])
            table["sets"] = sets.map { $0.filter { $0.key != "role" } }
            let stripped = String(decoding: try JSONSerialization.data(withJSONObject: table), as: UTF8.self)
            // Also "another writer": the applied_at changes, so no memo of this process answers.
            try db.execute(sql: "UPDATE generation SET table_json = ?, applied_at = '2026-01-01T00:00:00Z' WHERE number = 1", arguments: [stripped])
        }
        let read = try store.ruleset(1)
        #expect(read == ruleset)
        #expect(read.table.sets(withRole: .timedGrants).map(\.name) == ["timed_policies"])
        #expect(Set(read.table.sets(withRole: .senderHostsMap).map(\.name)) == ["in_hosts_v4", "in_hosts_v6"])
    }

    /// Only `keep` generations stay, and always the current one; staging left by a process
    /// that is gone is removed, that of a live one stays.
    @Test func retentionKeepsTheNewestAndTheCurrent() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var store = GenerationStore(directory: directory)
        store.keep = 3
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        try store.record(ruleset, info: Self.info(1, summary: "1"), policySource: nil)
        // A staging row of a process that no longer runs (pid 2^22 + 1 is beyond pid_max's default).
        _ = store.stage(ruleset, number: 99, policySource: nil)
        try store.database().write { db in try db.execute(sql: "UPDATE generation SET staged_by = 4194305 WHERE number = 99") }
        try store.setCurrent(1)
        for number in 2...6 { try store.record(ruleset, info: Self.info(number, summary: "\(number)"), policySource: nil) }
        #expect(store.numbers() == [4, 5, 6])
        try store.setCurrent(4)
        try store.record(ruleset, info: Self.info(7, summary: "7"), policySource: nil)
        // 4 was current when 7 was recorded (7 is current now); the newest three plus nothing else.
        #expect(store.numbers() == [5, 6, 7])
        let staged = try store.database().read { db in try Int.fetchAll(db, sql: "SELECT number FROM generation WHERE recorded = 0") }
        #expect(staged.isEmpty)
        _ = store.stage(ruleset, number: 8, policySource: nil)
        try store.setCurrent(7)
        try store.record(ruleset, info: Self.info(9, summary: "9"), policySource: nil)
        let stillStaged = try store.database().read { db in try Int.fetchAll(db, sql: "SELECT number FROM generation WHERE recorded = 0") }
        #expect(stillStaged == [8], "this process's own staging stays")
    }

    /// The policy source is kept with its generation, and its digest is the SHA-256 of the
    /// documented framing of its files.
    @Test func theSourceIsSnapshotWithItsDigest() throws {
        let directory = Self.temporaryDirectory(), source = Self.temporaryDirectory()
        defer { for d in [directory, source] { try? FileManager.default.removeItem(atPath: d) } }
        try FileManager.default.createDirectory(atPath: source + "/rules.d", withIntermediateDirectories: true)
        try "[state]\n".write(toFile: source + "/enforcer.conf", atomically: true, encoding: .utf8)
        try "policy a {}\n".write(toFile: source + "/rules.d/10-a.policy", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: source + "/link", withDestinationPath: "/etc/passwd")
        let store = GenerationStore(directory: directory)
        try store.record(try exampleRuleset("enclave", system: "db-1"), info: Self.info(1, summary: "s"), policySource: source)
        let files = try store.sourceFiles(1)
        #expect(files.map(\.path) == ["enforcer.conf", "rules.d/10-a.policy"], "symbolic links are not followed")
        var framed: [UInt8] = []
        for file in files { framed += Array(file.path.utf8) + [0] + Array(String(file.content.count).utf8) + [0] + Array(SHA256.hex(file.content).utf8) }
        #expect(try store.info(1).sourceDigest == SHA256.hex(framed))
    }

    /// A large source is recorded into the write-ahead log and copied into the database file
    /// by the checkpoint the record starts on another connection, not by the recording
    /// connection (whose own limit is far above this source); all of it reads back.
    @Test func aRecordedGenerationIsCheckpointedAside() throws {
        let directory = Self.temporaryDirectory(), source = Self.temporaryDirectory()
        defer { for d in [directory, source] { try? FileManager.default.removeItem(atPath: d) } }
        try FileManager.default.createDirectory(atPath: source + "/rules.d", withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        let content = Data((0..<6_000_000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try content.write(to: URL(fileURLWithPath: source + "/rules.d/10-a.policy"))
        let store = GenerationStore(directory: directory)
        try store.record(try exampleRuleset("enclave", system: "db-1"), info: Self.info(1, summary: "s"), policySource: source)
        let file = directory + "/" + StateDatabase.fileName
        var size = 0
        for _ in 0..<100 {
            size = try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int ?? 0
            if size > content.count { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(size > content.count, "the database file holds the source after the checkpoint (\(size) bytes)")
        // Under SQLite's own limit, the recording connection left the log to the checkpoint.
        #expect(content.count / 4096 < StateDatabase.checkpointPages)
        #expect(try store.sourceFiles(1).first?.content == content)
    }

    /// The history keeps the newest events, filters by kind and generation, and reads back
    /// what was written.
    @Test func historyAppendsFiltersAndBounds() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = GenerationStore(directory: directory)
        #expect(try store.events().isEmpty)
        let at = Date(timeIntervalSince1970: 1_795_442_400.25)
        for index in 0..<30 {
            let kind: HistoryEvent.Kind = index % 3 == 0 ? .apply : index % 3 == 1 ? .drift : .refusal
            try store.append(HistoryEvent(at: at, kind: kind, generation: index % 3 == 0 ? index : nil, actor: "root", reason: nil,
                                          summary: "event \(index)", detail: index == 1 ? "line 1\nline 2" : nil), keeping: 25)
        }
        let all = try store.events()
        #expect(all.count == 25)
        #expect(all.first?.summary == "event 5")
        #expect(all.last?.summary == "event 29")
        #expect(all.first?.at == at)
        #expect(try store.events(limit: 2).map(\.summary) == ["event 28", "event 29"])
        #expect(try store.events(kinds: [.drift]).allSatisfy { $0.kind == .drift })
        #expect(try store.events(kinds: [.drift, .refusal]).count == 17)
        #expect(try store.events(generation: 27).map(\.summary) == ["event 27"])
    }

    /// A state directory an earlier enforcer wrote as JSON files is taken in at the first
    /// open: the same generations, rulesets, live one and policy ids, the source digest of
    /// the kept policy copy; the old files are set aside, not deleted.
    @Test func anEarlierJSONStateIsTakenIn() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try exampleRuleset("enclave", system: "db-1"), second = try exampleRuleset("enclave", system: "srv-1")
        for (number, ruleset) in [(1, first), (2, second)] {
            let base = directory + "/generations/" + String(format: "%06d", number)
            try FileManager.default.createDirectory(atPath: base + "/policy/rules.d", withIntermediateDirectories: true)
            var skeleton = ruleset.table
            var elements: [String: SetElements] = [:]
            for index in skeleton.sets.indices {
                elements[skeleton.sets[index].name] = skeleton.sets[index].elements
                skeleton.sets[index].elements = []
            }
            try GenerationStore.encoder.encode(skeleton).write(to: URL(fileURLWithPath: base + "/table.json"))
            try Data(ElementCodec.encode(elements)).write(to: URL(fileURLWithPath: base + "/elements.bin"))
            try GenerationStore.encoder.encode(Self.info(number, summary: "old \(number)")).write(to: URL(fileURLWithPath: base + "/info.json"))
            try "policy \(number)\n".write(toFile: base + "/policy/rules.d/10-a.policy", atomically: true, encoding: .utf8)
        }
        try "2\n".write(toFile: directory + "/current", atomically: true, encoding: .utf8)
        try #"{"assigned":{"a":1}}"#.write(toFile: directory + "/policy-ids.json", atomically: true, encoding: .utf8)

        let store = GenerationStore(directory: directory)
        #expect(store.numbers() == [1, 2])
        #expect(store.currentNumber() == 2)
        #expect(try store.ruleset(1) == first && store.ruleset(2) == second)
        #expect(try store.info(2).summary == "old 2")
        let content = Array("policy 2\n".utf8)
        let framed = Array("rules.d/10-a.policy".utf8) + [0] + Array(String(content.count).utf8) + [0] + Array(SHA256.hex(content).utf8)
        #expect(try store.info(2).sourceDigest == SHA256.hex(framed))
        #expect(try store.sourceFiles(2).map(\.path) == ["rules.d/10-a.policy"])
        let setting = try store.database().read { db in try String.fetchOne(db, sql: "SELECT value FROM setting WHERE name = 'policy_ids'") }
        #expect(setting == #"{"assigned":{"a":1}}"#)
        #expect(store.policyIDs() == PolicyIDs(assigned: ["a": 1]))
        #expect(try store.events().last?.summary.hasPrefix("took in 2 generations from the JSON files") == true)
        #expect(!FileManager.default.fileExists(atPath: directory + "/generations"))
        #expect(FileManager.default.fileExists(atPath: directory + "/generations.imported/000002/info.json"))
        // The next generation follows on.
        try store.record(first, info: Self.info(3, summary: "new"), policySource: nil)
        #expect(store.numbers() == [1, 2, 3])
    }

    /// The ids are written once while they stay the same, and read back from the record,
    /// not from what this process wrote, once another writer changed them.
    @Test func policyIDsFollowTheRecordNotTheProcessMemory() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = GenerationStore(directory: directory)
        let ours = PolicyIDs(assigned: ["a": 1, "b": 2])
        try store.recordPolicyIDs(ours)
        #expect(store.policyIDs() == ours)
        let queue = try DatabaseQueue(path: directory + "/" + StateDatabase.fileName)
        func written() throws -> String? { try queue.read { db in try String.fetchOne(db, sql: "SELECT value FROM setting WHERE name = 'policy_ids'") } }
        // Another writer (another enforcer process) records other ids.
        try queue.write { db in try db.execute(sql: #"UPDATE setting SET value = '{"assigned":{"a":1,"c":3}}' WHERE name = 'policy_ids'"#) }
        #expect(store.policyIDs() == PolicyIDs(assigned: ["a": 1, "c": 3]))
        // Recording ours again writes them, though this process wrote the same before.
        try store.recordPolicyIDs(ours)
        #expect(try written() == #"{"assigned":{"a":1,"b":2}}"#)
        #expect(store.policyIDs() == ours)
        // Unchanged, they are not written again: a trigger counts the writes to the row.
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE seen_writes (value TEXT)")
            try db.execute(sql: "CREATE TRIGGER count_writes AFTER UPDATE ON setting WHEN new.name = 'policy_ids' BEGIN INSERT INTO seen_writes VALUES (new.value); END")
        }
        func writes() throws -> Int { try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM seen_writes") ?? -1 } }
        try store.recordPolicyIDs(ours)
        #expect(try writes() == 0)
        #expect(try written() == #"{"assigned":{"a":1,"b":2}}"#)
        try store.recordPolicyIDs(PolicyIDs(assigned: ["a": 1, "b": 2, "d": 4]))
        #expect(try writes() == 1)
        #expect(try written() == #"{"assigned":{"a":1,"b":2,"d":4}}"#)
        #expect(store.policyIDs() == PolicyIDs(assigned: ["a": 1, "b": 2, "d": 4]))
    }

    @Test func theDatabaseIsRootsAloneInWALMode() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let previous = umask(0)
        defer { umask(previous) }
        try GenerationStore(directory: directory).record(try exampleRuleset("enclave", system: "db-1"), info: Self.info(1, summary: "s"), policySource: nil)
        for file in ["state.sqlite", "state.sqlite-wal", "state.sqlite-shm"] {
            let mode = try #require(FileManager.default.attributesOfItem(atPath: directory + "/" + file)[.posixPermissions] as? Int)
            #expect(mode == 0o600, "\(file): \(String(mode, radix: 8))")
        }
        let database = try GenerationStore(directory: directory).database()
        #expect(try database.integrity() == "ok")
        let mode = try DatabaseQueue(path: directory + "/state.sqlite").read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    /// Instants recorded by Foundation's `.iso8601` strategy (earlier generations) read back,
    /// and are written again as the same text.
    @Test func instantsOfEarlierRecordsReadBack() throws {
        let old = JSONEncoder()
        old.dateEncodingStrategy = .iso8601
        let info = GenerationInfo(number: 3, appliedAt: Date(timeIntervalSince1970: 1_795_442_400), system: "db-1", policyDirectory: "/p",
                                  tableHandle: 7, networkNamespace: 4_026_531_840, summary: "table replaced")
        let written = try old.encode(info)
        #expect(try GenerationStore.decoder.decode(GenerationInfo.self, from: written) == info)
        let text = String(decoding: try GenerationStore.encoder.encode(info), as: UTF8.self)
        #expect(text.contains(#""appliedAt":"2026-11-23T14:00:00Z""#), "\(text)")
        #expect(String(decoding: written, as: UTF8.self).contains(#""appliedAt":"2026-11-23T14:00:00Z""#))
    }

    /// A database of schema version 2 (every generation's files whole in `source_file`)
    /// migrates to files stored once by digest, and reads the same.
    @Test func sourceFilesOfSchemaTwoMoveToBlobsByDigest() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: directory + "/" + StateDatabase.fileName)
        try StateDatabase.migrator.migrate(queue, upTo: "2 kernel generation")
        try queue.write { db in
            for number in 1...3 {
                try db.execute(sql: "INSERT INTO generation (number, recorded, table_json, elements) VALUES (?, 1, '{}', X'')", arguments: [number])
                try db.execute(sql: "INSERT INTO source_file (generation, path, content) VALUES (?, 'enforcer.conf', ?)", arguments: [number, Data("[kernel]\n".utf8)])
                try db.execute(sql: "INSERT INTO source_file (generation, path, content) VALUES (?, 'rules.d/a.policy', ?)",
                               arguments: [number, Data("policy \(number == 3 ? 2 : 1)\n".utf8)])
            }
        }
        try queue.close()
        let store = GenerationStore(directory: directory)
        #expect(try store.sourceFiles(1).map(\.content) == [Data("[kernel]\n".utf8), Data("policy 1\n".utf8)])
        #expect(try store.sourceFiles(3).map(\.content) == [Data("[kernel]\n".utf8), Data("policy 2\n".utf8)])
        let blobs = try StateDatabase.at(directory: directory).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM source_blob") }
        #expect(blobs == 3, "three distinct files among nine")
    }
}
