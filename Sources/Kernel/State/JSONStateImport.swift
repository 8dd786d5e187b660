import Compiler
import Foundation
import GRDB
import Glibc

/// The state directory as enforcer kept it before the database: `current`,
/// `policy-ids.json` and `generations/NNNNNN/` (`info.json`, `table.json`, `elements.bin`,
/// `recent.json`, `policy/`). An upgraded host must not lose its live generation (its next
/// apply would replace the table whole instead of sending a delta) nor the generations it
/// can roll back to, so the first open of a new database takes them in, in one transaction,
/// and then renames `generations` to `generations.imported` (kept, not deleted: it is the
/// operator's record).
enum JSONStateImport {
    /// Whether it took anything in (the caller then renames `generations`, once committed).
    static func run(directory: String, into db: Database) throws -> Bool {
        let fm = FileManager.default
        let generations = directory + "/generations"
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: generations, isDirectory: &isDirectory), isDirectory.boolValue,
              try Int.fetchOne(db, sql: "SELECT count(*) FROM generation") == 0 else { return false }
        let decoder = GenerationStore.decoder
        var imported = 0
        for name in ((try? fm.contentsOfDirectory(atPath: generations)) ?? []).sorted() {
            guard let number = Int(name) else { continue }
            let base = generations + "/" + name
            // A generation that does not read back whole is left out, not half taken in.
            guard let infoData = fm.contents(atPath: base + "/info.json"), let info = try? decoder.decode(GenerationInfo.self, from: infoData),
                  let tableData = fm.contents(atPath: base + "/table.json"), (try? decoder.decode(Compiler.Table.self, from: tableData)) != nil,
                  let elements = fm.contents(atPath: base + "/elements.bin"), let sets = ElementCodec.decode([UInt8](elements)) else { continue }
            let snapshot = try? SourceSnapshot(directory: base + "/policy")
            let hasSource = fm.fileExists(atPath: base + "/policy")
            try db.execute(sql: """
                INSERT INTO generation (number, recorded, applied_at, system, policy_source, source_digest, table_handle, network_namespace,
                                        summary, table_json, elements, element_count, recent_json)
                VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [number, ISO8601.string(info.appliedAt, precision: .milliseconds), info.system, info.policyDirectory,
                                 hasSource ? snapshot?.digest : nil, info.tableHandle.map { Int64(bitPattern: $0) },
                                 info.networkNamespace.map { Int64(bitPattern: $0) }, info.summary, String(decoding: tableData, as: UTF8.self),
                                 elements, sets.values.reduce(0) { $0 + $1.count },
                                 fm.contents(atPath: base + "/recent.json").map { String(decoding: $0, as: UTF8.self) }])
            for file in hasSource ? snapshot?.files ?? [] : [] {
                let digest = SHA256.hex(file.content)
                try db.execute(sql: "INSERT OR IGNORE INTO source_blob (digest, content) VALUES (?, ?)", arguments: [digest, file.content])
                try db.execute(sql: "INSERT INTO generation_file (generation, path, digest) VALUES (?, ?, ?)", arguments: [number, file.path, digest])
            }
            imported += 1
        }
        if let text = try? String(contentsOfFile: directory + "/current", encoding: .utf8), let current = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)),
           try Int.fetchOne(db, sql: "SELECT count(*) FROM generation WHERE number = ?", arguments: [current]) == 1 {
            try db.execute(sql: "INSERT INTO setting (name, value) VALUES ('current', ?)", arguments: [String(current)])
        }
        if let ids = fm.contents(atPath: directory + "/policy-ids.json") {
            try db.execute(sql: "INSERT INTO setting (name, value) VALUES ('policy_ids', ?)", arguments: [String(decoding: ids, as: UTF8.self)])
        }
        try db.execute(sql: "INSERT INTO event (at, kind, summary) VALUES (?, 'apply', ?)",
                       arguments: [ISO8601.string(Date(), precision: .milliseconds),
                                   "took in \(imported) generation\(imported == 1 ? "" : "s") from the JSON files of an earlier enforcer (\(generations), now generations.imported)"])
        return true
    }

    /// After the import committed. Should the rename fail, the next open finds a database
    /// that is no longer empty and takes in nothing twice.
    static func setAside(directory: String) {
        _ = rename(directory + "/generations", directory + "/generations.imported")
    }
}
