import ArgumentParser
import Compiler
import Foundation

/// `enforcer run`: the daemon (see `Daemon`).
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the policy, judge queued web flows, flip time windows and expiries, reload on change.",
        discussion: """
            Needs root. Applies the policy, runs the NFQUEUE worker when web rules need it, and keeps \
            the kernel in step with time: each active-hours window, expiry and enabled change is applied \
            at its boundary (a wall-clock timer, recomputed at once when the clock is set). SIGHUP or \
            any change under the policy directory reloads: a valid policy is applied as a delta, an \
            invalid one is refused and logged while the running generation stays live. SIGTERM or \
            SIGINT stops; the ruleset stays in force unless [run] on_stop = "flush". Logs to standard \
            error; `enforcer status` reads what it reports in the state directory.
            """)

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Option(help: ArgumentHelp("The inventory system this host is (default: found by this host's addresses).", valueName: "NAME"))
    var system: String?
    @Flag(help: "Apply even if the new ruleset would cut the SSH session this runs in.")
    var force = false

    func run() throws {
        let daemon: Daemon
        do {
            daemon = try Daemon(options: .init(directory: directory.dir, system: system, stateDirectory: state.stateDir, force: force))
        } catch let error as ApplyFailure {
            for line in error.lines { Output.error(line) }
            throw ExitCode(1)
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
        do { try daemon.run() } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
    }
}

enum Log {
    /// One line to standard error, with a UTC timestamp.
    static func line(_ text: String) { lines([text]) }

    /// Lines to standard error in one write, each with a UTC timestamp (millisecond
    /// precision). The worker logs a batch per drain, so the per-flow cost stays small.
    static func lines(_ texts: [String]) {
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
    static func write(bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        try? FileHandle.standardError.write(contentsOf: bytes)
    }

    /// What `line` puts before a line: the timestamp and a space.
    static func prefix(at date: Date = Date()) -> [UInt8] {
        Array(timestamp(date).utf8) + [UInt8(ascii: " ")]
    }

    /// `2026-12-01T19:45:30.034`, without Foundation's formatters (they cost microseconds).
    static func timestamp(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        var whole = time_t(seconds.rounded(.down))
        var parts = tm()
        gmtime_r(&whole, &parts)
        let millis = Int((seconds - seconds.rounded(.down)) * 1000)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))"
    }
}
