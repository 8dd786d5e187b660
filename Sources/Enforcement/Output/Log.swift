import Compiler
import Foundation
import Glibc

/// The daemon's log: lines to standard error, each behind a UTC timestamp.
public enum Log {
    /// One line.
    public static func line(_ text: String) { lines([text]) }

    /// Lines in one write, each with a UTC timestamp (millisecond precision). The worker
    /// logs a batch per drain, so the per-flow cost stays small.
    public static func lines(_ texts: [String]) {
        guard !texts.isEmpty else { return }
        let stamp = timestamp(Date())
        var out = ""
        for text in texts {
            out += stamp
            out += " "
            out += text
            out += "\n"
        }
        FileHandle.standardError.write(Data(out.utf8))
    }

    /// Bytes that are whole lines already, stamped by their maker (the worker's log of one
    /// drain, each line behind `prefix()`), in one write.
    public static func write(bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        try? FileHandle.standardError.write(contentsOf: bytes)
    }

    /// What `line` puts before a line: the timestamp and a space.
    public static func prefix(at date: Date = Date()) -> [UInt8] {
        Array(timestamp(date).utf8) + [UInt8(ascii: " ")]
    }

    /// `2026-12-01T19:45:30.034`: the instant with milliseconds, without its zone letter
    /// (the log has always read so; its zone is UTC).
    public static func timestamp(_ date: Date) -> String {
        String(ISO8601.string(date, precision: .milliseconds).dropLast())
    }
}
