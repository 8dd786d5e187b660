import Compiler
import Foundation
import GRDB
import Glibc

/// The state directory's record: one SQLite database, `state.sqlite`, holding every kept
/// generation (its ruleset, the policy source it came from, who applied it and why), which
/// one is live, the policies' mark ids and the history of events. `docs/STATE.md` documents
/// the schema, so `sqlite3 /var/lib/enforcer/state.sqlite` answers ad-hoc questions.
///
/// Write-ahead logging and `synchronous = NORMAL`: a transaction survives the death of any
/// process once its commit returns, and a writer killed in the middle of one leaves the
/// database as it was before it (SQLite rolls the unfinished transaction back the next time
/// the file is opened). Only a power loss or kernel crash can take the last transactions
/// (never the database's consistency): the kernel ruleset they describe is lost with it,
/// and a commit then waits for no disk flush of its own (with `FULL` every apply waits for
/// one or two, whose cost depends on the disk). Readers
/// (`status`, `history`) never wait for a writer. Writers across processes are serialised by
/// SQLite's own lock (with a 30 s busy timeout) beneath the state directory's flock.
public final class StateDatabase: @unchecked Sendable {
    public static let fileName = "state.sqlite"

    public let path: String
    let queue: DatabaseQueue

    /// One open database per path and process: opening runs the migrations and costs a
    /// few file operations that the daemon should not repeat on every event.
    nonisolated(unsafe) private static var open: [String: StateDatabase] = [:]
    private static let openLock = NSLock()

    /// The database of state directory `directory`, created (0600, in a directory made 0700)
    /// and brought to the current schema when needed.
    public static func at(directory: String) throws(StateError) -> StateDatabase {
        let path = URL(fileURLWithPath: directory).standardizedFileURL.path + "/" + fileName
        openLock.lock()
        defer { openLock.unlock() }
        // A file deleted or replaced since (a test wiping its directory) is opened anew.
        var info = stat()
        if let existing = open[path], lstat(path, &info) == 0, info.st_ino == existing.inode { return existing }
        let database = try StateDatabase(path: path)
        open[path] = database
        return database
    }

    private let inode: ino_t

    private init(path: String) throws(StateError) {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK {
                throw StateError(description: "\(path) is a symbolic link; enforcer follows none in its state directory")
            }
            var configuration = Configuration()
            configuration.journalMode = .wal
            configuration.busyMode = .timeout(30)
            configuration.label = "enforcer state"
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.checkpointPages)")
            }
            queue = try DatabaseQueue(path: path, configuration: configuration)
            // The database and its journal files are root's alone, whatever the umask.
            for file in [path, path + "-wal", path + "-shm"] { _ = chmod(file, 0o600) }
            try Self.migrator.migrate(queue)
            if try queue.write({ db in try JSONStateImport.run(directory: directory, into: db) }) { JSONStateImport.setAside(directory: directory) }
            guard lstat(path, &info) == 0 else { throw StateError(description: "cannot inspect \(path): \(SystemErrno(errno))") }
            inode = info.st_ino
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError(description: "cannot open the state database \(path): \(Self.describe(error))")
        }
    }

    /// A checkpoint copies the write-ahead log into the database file and flushes both to
    /// disk. SQLite's own runs in the writer that crosses its limit (1,000 pages by default),
    /// and a generation's record of a large policy source crosses it each time: the apply then
    /// waited for the disk (bench/README.md, "The cold start's record"). Here a recorded
    /// generation asks for a checkpoint on another connection and thread instead
    /// (`checkpointAside`), which no writer waits for; SQLite's own stays as a backstop, at a
    /// limit ten times as high, for a process that writes much and records nothing.
    static let checkpointPages = 10_000

    private let checkpointLock = NSLock()
    /// Under `checkpointLock`: the connection that checkpoints, made at the first one, and
    /// whether a checkpoint is running.
    nonisolated(unsafe) private var checkpointConnection: DatabaseQueue?
    nonisolated(unsafe) private var checkpointRunning = false

    /// Starts a checkpoint on a connection and thread of its own, unless one is running. A
    /// process that exits before it ends leaves the log for the next checkpoint: SQLite
    /// loses nothing either way.
    public func checkpointAside() {
        let start = checkpointLock.withLock { () -> Bool in
            if checkpointRunning { return false }
            checkpointRunning = true
            return true
        }
        guard start else { return }
        let path = path
        DispatchQueue.global(qos: .utility).async { [self] in
            let connection = checkpointLock.withLock {
                if checkpointConnection == nil { checkpointConnection = try? DatabaseQueue(path: path) }
                return checkpointConnection
            }
            // PASSIVE: copies what no reader still needs, and blocks no writer meanwhile.
            _ = try? connection?.writeWithoutTransaction { try $0.checkpoint(.passive) }
            checkpointLock.withLock { checkpointRunning = false }
        }
    }

    /// Reads in a consistent snapshot of the database.
    func read<T>(_ body: (Database) throws -> T) throws(StateError) -> T {
        do { return try queue.read(body) } catch { throw StateError(description: "cannot read \(path): \(Self.describe(error))") }
    }

    /// Writes in one transaction: all of it or nothing.
    func write<T>(_ body: (Database) throws -> T) throws(StateError) -> T {
        do { return try queue.write(body) } catch let error as StateError { throw error } catch {
            throw StateError(description: "cannot write \(path): \(Self.describe(error))")
        }
    }

    /// `PRAGMA integrity_check`: "ok", or what is wrong.
    public func integrity() throws(StateError) -> String {
        try read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error.resultCode)" }
        return SystemErrno.describe(error)
    }

    /// The schema, one migration per version; `docs/STATE.md` describes each table.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1 generations, settings, events") { db in
            try db.execute(sql: """
                CREATE TABLE generation (
                    number            INTEGER PRIMARY KEY,
                    recorded          INTEGER NOT NULL DEFAULT 0,
                    staged_by         INTEGER,
                    applied_at        TEXT,
                    system            TEXT NOT NULL DEFAULT '',
                    policy_source     TEXT NOT NULL DEFAULT '',
                    source_digest     TEXT,
                    table_handle      INTEGER,
                    network_namespace INTEGER,
                    summary           TEXT NOT NULL DEFAULT '',
                    actor             TEXT,
                    reason            TEXT,
                    table_json        TEXT NOT NULL,
                    elements          BLOB NOT NULL,
                    element_count     INTEGER NOT NULL DEFAULT 0,
                    recent_json       TEXT
                );
                CREATE TABLE source_file (
                    generation INTEGER NOT NULL REFERENCES generation(number) ON DELETE CASCADE,
                    path       TEXT NOT NULL,
                    content    BLOB NOT NULL,
                    PRIMARY KEY (generation, path)
                );
                CREATE TABLE setting (
                    name  TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                );
                CREATE TABLE event (
                    id         INTEGER PRIMARY KEY AUTOINCREMENT,
                    at         TEXT NOT NULL,
                    kind       TEXT NOT NULL,
                    generation INTEGER,
                    actor      TEXT,
                    reason     TEXT,
                    summary    TEXT NOT NULL,
                    detail     TEXT
                );
                CREATE INDEX event_by_kind ON event(kind, id);
                CREATE INDEX event_by_generation ON event(generation);
                """)
        }
        migrator.registerMigration("2 kernel generation") { db in
            // The nf_tables generation id right after the commit that made the generation
            // live (or the last commit since that left enforcer's tables as they were).
            try db.execute(sql: "ALTER TABLE generation ADD COLUMN kernel_generation INTEGER")
        }
        migrator.registerMigration("3 source files by digest") { db in
            // A policy directory of 14 MB was stored whole with every generation, though a
            // reload changes one file if any. Each file's bytes are now stored once, by
            // their SHA-256; `source_file` stays, as a view, for the queries that read it.
            try db.execute(sql: """
                CREATE TABLE source_blob (
                    digest  TEXT PRIMARY KEY,
                    content BLOB NOT NULL
                );
                CREATE TABLE generation_file (
                    generation INTEGER NOT NULL REFERENCES generation(number) ON DELETE CASCADE,
                    path       TEXT NOT NULL,
                    digest     TEXT NOT NULL,
                    PRIMARY KEY (generation, path)
                );
                CREATE INDEX generation_file_by_digest ON generation_file(digest);
                """)
            let rows = try Row.fetchAll(db, sql: "SELECT generation, path, content FROM source_file")
            for row in rows {
                let content: Data = row["content"]
                let digest = SHA256.hex(content)
                try db.execute(sql: "INSERT OR IGNORE INTO source_blob (digest, content) VALUES (?, ?)", arguments: [digest, content])
                try db.execute(sql: "INSERT INTO generation_file (generation, path, digest) VALUES (?, ?, ?)",
                               arguments: [row["generation"] as Int, row["path"] as String, digest])
            }
            try db.execute(sql: """
                DROP TABLE source_file;
                CREATE VIEW source_file AS
                    SELECT f.generation AS generation, f.path AS path, b.content AS content, f.digest AS digest
                    FROM generation_file f JOIN source_blob b ON b.digest = f.digest;
                """)
        }
        return migrator
    }
}
