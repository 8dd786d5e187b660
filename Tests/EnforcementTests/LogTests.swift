import Foundation
import Testing
@testable import Enforcement

@Suite("Log lines")
struct LogTests {
    @Test("on a stream a line starts with a UTC time ending in Z; in the journal with its syslog priority and no time")
    func prefixes() {
        let date = Date(timeIntervalSince1970: 1_764_618_330.25)
        #expect(String(decoding: Log.prefix(at: date, to: .stream), as: UTF8.self) == "2025-12-01T19:45:30.250Z ")
        #expect(String(decoding: Log.prefix(.info, at: date, to: .journal), as: UTF8.self) == "<6>")
        #expect(String(decoding: Log.prefix(.error, at: date, to: .journal), as: UTF8.self) == "<3>")
        #expect(String(decoding: Log.prefix(.warning, at: date, to: .journal), as: UTF8.self) == "<4>")
        #expect(String(decoding: Log.prefix(.debug, at: date, to: .journal), as: UTF8.self) == "<7>")
        #expect(Log.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
    }

    @Test("logfmt: plain words bare, anything else quoted with its quotes, backslashes and line breaks escaped", arguments: [
        ("3", "3"),
        ("SIGHUP", "SIGHUP"),
        ("", "\"\""),
        ("files changed", "\"files changed\""),
        ("a=b", "\"a=b\""),
        ("on_drift = \"report\"", "\"on_drift = \\\"report\\\"\""),
        ("C:\\path", "\"C:\\\\path\""),
        ("two\nlines", "\"two\\nlines\""),
        ("bell\u{7}", "\"bell?\""),
        ("Café", "Café"),
    ])
    func quoting(value: String, quoted: String) {
        #expect(Log.quoted(value) == quoted)
    }

    @Test("an entry is level, msg, then its fields in order")
    func entry() {
        let entry = LogEntry.warning("reload (SIGHUP) refused: 1 error; generation 3 stays live", ["event": "reload", "outcome": "refused", "generation": "3"])
        #expect(entry.logfmt == "level=warning msg=\"reload (SIGHUP) refused: 1 error; generation 3 stays live\" event=reload outcome=refused generation=3")
    }

    @Test("levels order by importance, and parse from their names")
    func levels() {
        #expect(LogLevel.error < LogLevel.warning && LogLevel.warning < LogLevel.info && LogLevel.info < LogLevel.debug)
        #expect(LogLevel(name: "warning") == .warning && LogLevel(name: "verbose") == nil)
    }

    @Test("JOURNAL_STREAM counts only when it names standard error's own file")
    func journalStream() {
        #expect(!Log.journalIsStandardError(nil))
        #expect(!Log.journalIsStandardError("garbage"))
        #expect(!Log.journalIsStandardError("1:2"))
        var status = stat()
        fstat(2, &status)
        #expect(Log.journalIsStandardError("\(status.st_dev):\(status.st_ino)"))
    }
}
