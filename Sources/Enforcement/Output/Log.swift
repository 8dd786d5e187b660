import Compiler
import Foundation
import Glibc

/// How important a log line is, with syslog's numbers: journald files a line under the
/// priority written before it (`<3>` …), and `journalctl -p warning` filters by it.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case error = 3, warning = 4, info = 6, debug = 7

    public var name: String {
        switch self {
        case .error: "error"
        case .warning: "warning"
        case .info: "info"
        case .debug: "debug"
        }
    }

    public init?(name: String) {
        guard let level = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = level
    }

    /// Ordered as a threshold reads: a line is written when its level is at most the
    /// threshold's (error < warning < info < debug, as syslog numbers them).
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// One line of the daemon's log: a sentence for people (`msg`) and fields for programs, such
/// as `generation=3 reason=SIGHUP`.
public struct LogEntry: Sendable, Equatable {
    public var level: LogLevel
    public var message: String
    public var fields: [Field]

    public struct Field: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(_ level: LogLevel, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) {
        self.level = level
        self.message = message
        self.fields = fields.map { Field($0.key, $0.value) }
    }

    public static func error(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) -> LogEntry { LogEntry(.error, message, fields) }
    public static func warning(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) -> LogEntry { LogEntry(.warning, message, fields) }
    public static func info(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) -> LogEntry { LogEntry(.info, message, fields) }
    public static func debug(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) -> LogEntry { LogEntry(.debug, message, fields) }

    /// `level=info msg="reload (SIGHUP): applied generation 3" generation=3`: logfmt, so that
    /// both grep and a log shipper's parser read it.
    public var logfmt: String {
        var text = "level=\(level.name) msg=" + Log.quoted(message)
        for field in fields { text += " \(field.key)=" + Log.quoted(field.value) }
        return text
    }
}

/// The daemon's log: lines to standard error. Under systemd (its journal on standard error,
/// as `JOURNAL_STREAM` says) each line starts with its syslog priority, `<6>`, and carries no
/// time of its own, the journal stamps it; elsewhere each starts with a UTC time ending in
/// `Z`. What follows is logfmt (`LogEntry.logfmt`).
public enum Log {
    public enum Destination: Sendable { case journal, stream }

    /// The least important lines written: `--log-level` when given, else `[log] level` of the
    /// policy in force. Set on the daemon's loop thread, which writes every line.
    nonisolated(unsafe) public private(set) static var threshold: LogLevel = .info
    /// `--log-level`: it overrides `[log] level`.
    nonisolated(unsafe) public static var override: LogLevel? {
        didSet { threshold = override ?? threshold }
    }

    /// Follows `[log] level` of the policy in force, unless `--log-level` was given.
    public static func follow(_ setting: Config.LogLevelSetting) {
        threshold = override ?? LogLevel(name: setting.rawValue) ?? .info
    }
    public static let destination: Destination = journalIsStandardError(ProcessInfo.processInfo.environment["JOURNAL_STREAM"]) ? .journal : .stream

    public static func error(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { emit(.error(message, fields)) }
    public static func warning(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { emit(.warning(message, fields)) }
    public static func info(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { emit(.info(message, fields)) }
    public static func debug(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { emit(.debug(message, fields)) }

    /// One line, if its level passes the threshold.
    public static func emit(_ entry: LogEntry) { emit([entry]) }

    /// Lines in one write.
    public static func emit(_ entries: [LogEntry]) {
        let date = Date()
        var out = ""
        for entry in entries where entry.level <= threshold {
            out += String(decoding: prefix(entry.level, at: date), as: UTF8.self)
            out += entry.logfmt
            out += "\n"
        }
        guard !out.isEmpty else { return }
        FileHandle.standardError.write(Data(out.utf8))
    }

    /// Bytes that are whole lines already, each made behind `prefix(_:)` (the worker's log of
    /// one drain), in one write.
    public static func write(bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        try? FileHandle.standardError.write(contentsOf: bytes)
    }

    /// What comes before a line's logfmt: `<6>` for the journal, else the time and a space.
    public static func prefix(_ level: LogLevel = .info, at date: Date = Date(), to destination: Destination = destination) -> [UInt8] {
        switch destination {
        case .journal: Array("<\(level.rawValue)>".utf8)
        case .stream: Array(timestamp(date).utf8) + [UInt8(ascii: " ")]
        }
    }

    /// `2026-12-01T19:45:30.034Z`: UTC with milliseconds and its zone letter, so that a time
    /// copied from the log into `--at` means the same instant.
    public static func timestamp(_ date: Date) -> String {
        ISO8601.string(date, precision: .milliseconds)
    }

    /// A logfmt value (see `Logfmt`).
    public static func quoted(_ value: String) -> String { Logfmt.quoted(value) }

    /// Whether `JOURNAL_STREAM` ("device:inode") names the file standard error is: systemd sets
    /// it for a service whose output goes to the journal; a shell started from that service
    /// and redirected elsewhere inherits the variable but not the file.
    static func journalIsStandardError(_ variable: String?) -> Bool {
        guard let variable else { return false }
        let parts = variable.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(2, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }
}
