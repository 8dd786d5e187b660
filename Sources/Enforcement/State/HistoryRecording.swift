import Compiler
import Foundation
import Glibc
import Kernel

/// Who is changing the enforced state, for the history and each generation's record:
/// the login behind sudo when there is one, the user otherwise, the process and what it does.
public enum Actor {
    public static func current(purpose: String) -> String {
        let user: String
        if let name = getpwuid(geteuid()).map({ String(cString: $0.pointee.pw_name) }) { user = name } else { user = "uid \(geteuid())" }
        let login = ProcessInfo.processInfo.environment["SUDO_USER"].flatMap { $0.isEmpty || $0 == user ? nil : $0 }
        return (login.map { "\($0) via sudo as \(user)" } ?? user) + ", pid \(getpid()) (\(purpose))"
    }
}

extension StateDirectory {
    /// Appends `event` to the history, with this process as its actor unless it names one.
    /// A history that cannot be written must not undo or fail a change the kernel already
    /// has: the failure is told on standard error, and the change stands.
    public func record(_ event: HistoryEvent, purpose: String) {
        var event = event
        if event.actor == nil { event.actor = Actor.current(purpose: purpose) }
        do { try generations.append(event) } catch {
            FileHandle.standardError.write(Data("enforcer: warning: the history did not take '\(event.summary)': \(error)\n".utf8))
        }
    }

    /// A refusal: nothing changed. `lines` are the error's (`EnforcementError.messageLines`):
    /// the first is the summary after "PURPOSE refused: ", the rest the detail.
    public func recordRefusal(_ lines: [String], purpose: String, reason: String?, at instant: Date = Date()) {
        record(HistoryEvent(at: instant, kind: .refusal, generation: generations.currentNumber(), reason: reason,
                            summary: "\(purpose) refused: \(lines.first ?? "")",
                            detail: lines.count > 1 ? lines.dropFirst().joined(separator: "\n") : nil), purpose: purpose)
    }

    /// The history, oldest first (see `GenerationStore.events`).
    public func history(limit: Int?, kinds: Set<HistoryEvent.Kind>, generation: Int?) throws(EnforcementError) -> [HistoryEvent] {
        do { return try generations.events(limit: limit, kinds: kinds, generation: generation) } catch {
            throw .refused(["enforcer: \(error)"])
        }
    }
}

extension Pipeline {
    /// A refused `apply` (the policy does not check, its expectations fail, a name is
    /// unknown) as a history event, in the state directory enforcer.conf names. Refusals
    /// past the plan (the kernel's, the SSH guard's) are recorded by the dataplane.
    public func recordRefusal(_ error: EnforcementError, purpose: String, reason: String?) {
        let state = state()
        guard (try? StateGuard(path: state.path).secure()) != nil else { return }
        var lines = error.messageLines
        if !lines.isEmpty { lines[0] += " in \(source.location)" }
        state.recordRefusal(lines, purpose: purpose, reason: reason)
    }
}
