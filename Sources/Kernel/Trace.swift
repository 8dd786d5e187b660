import Compiler
import Foundation
import Glibc
import Synchronization

/// `ENFORCER_TRACE=1`: one line per phase on standard error, with the time since the
/// previous phase and the process's resident and peak memory, so a slow or large apply
/// shows where it goes (the benchmark reads these lines).
public enum Trace {
    public static let enabled = ProcessInfo.processInfo.environment["ENFORCER_TRACE"] != nil
    /// When the latest phase's line was written (phases may be traced from more than one thread).
    private static let last = Mutex(monotonicSeconds())

    public static func phase(_ name: @autoclosure () -> String) {
        guard enabled else { return }
        let since = monotonicSeconds() - last.withLock { $0 }
        // The next phase is timed from the end of this line, so the times add up to the
        // work traced, without the trace's own reading and writing.
        defer { last.withLock { $0 = monotonicSeconds() } }
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        func megabytes(_ key: String) -> String {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key) }),
                  let kb = line.split(separator: " ").compactMap({ Int($0) }).first else { return "?" }
            return String(kb / 1024)
        }
        FileHandle.standardError.write(Data(String(format: "trace: %-28@ +%7.1f ms  rss %5@ MB  peak %5@ MB\n",
                                                   name() as NSString, since * 1000, megabytes("VmRSS:") as NSString,
                                                   megabytes("VmHWM:") as NSString).utf8))
    }
}
