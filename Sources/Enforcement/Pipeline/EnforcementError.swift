import Compiler

/// Why the pipeline stopped. Each case keeps what the caller shows: the diagnostics to
/// print with their source lines, and a summary line. Nothing live changed in any case.
public enum EnforcementError: Error, CustomStringConvertible {
    /// The policy does not load: its diagnostics (warnings too, in order).
    case policy(diagnostics: [Diagnostic], location: String)
    /// Expectations that fail against the policy files.
    case expectations([Diagnostic])
    /// A name or option that names nothing in the policy (`--system`, a policy, a system):
    /// the caller's mistake, shown as a usage error.
    case notFound(String)
    /// A change to the policy files that would leave them not checking: why, and what
    /// was not done.
    case doesNotCheck(diagnostics: [Diagnostic], summary: String)
    /// The ruleset for this host cannot be built.
    case compile(CompileError)
    /// The kernel, the state directory, or a guard (the SSH session) refused the apply.
    case refused([String])

    /// The summary line (after any diagnostics).
    public var description: String {
        switch self {
        case .policy(let diagnostics, let location): "\(counted(diagnostics.filter { $0.severity == .error }.count, "error")) in \(location)"
        case .expectations(let failures): "\(counted(failures.count, "expectation")) failed"
        case .notFound(let message): message
        case .doesNotCheck(_, let summary): summary
        case .compile(let error): "\(error)"
        case .refused(let lines): lines.joined(separator: "\n")
        }
    }

    /// The diagnostics to show before the summary.
    public var diagnostics: [Diagnostic] {
        switch self {
        case .policy(let diagnostics, _): diagnostics
        case .expectations(let failures): failures
        case .doesNotCheck(let diagnostics, _): diagnostics
        default: []
        }
    }

    /// Whether the kernel, the state directory or a guard refused (not the policy itself).
    public var isRefusal: Bool {
        if case .refused = self { return true }
        return false
    }

    /// The summary, then each diagnostic as `file:line:col: error: …`, a line each: what
    /// the history keeps of a refusal.
    public var messageLines: [String] {
        description.split(separator: "\n").map { $0.hasPrefix("enforcer: ") ? String($0.dropFirst(10)) : String($0) }
            + diagnostics.filter { $0.severity == .error }.map(\.description)
    }
}
