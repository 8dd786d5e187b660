import Compiler
import Foundation

/// `enforcer check`, as one value: what the loader found, and each expectation's result.
public struct CheckReport {
    public let directory: String
    public let instant: Date
    /// nil when the files have errors.
    public let policy: PolicySet?
    /// The loader's errors and warnings, then each failed expectation's error.
    public let diagnostics: [Diagnostic]
    /// Empty when the files have errors (expectations run only on a policy that loads).
    public let expectations: [(expectation: Expectation, failures: [Diagnostic])]

    public var ok: Bool { !diagnostics.contains { $0.severity == .error } }

    /// `check --json`: documented in the README under "check --json".
    public func json() -> String {
        let lists = policy.map { $0.webRules.reduce(0) { $0 + $1.domains.reduce(0) { $0 + $1.count } } }
        let counts = policy.map { policy -> [String: Any?] in
            ["files": policy.files.count, "systems": policy.systems.count, "policies": policy.policies.count,
             "web_rules": policy.webRules.count, "domains": lists, "expectations": policy.expectations.count]
        }
        return JSONText.document([
            "directory": directory, "at": instant, "ok": ok,
            "errors": diagnostics.flatMap(Self.flattened).filter { $0.severity == .error }.count,
            "warnings": diagnostics.flatMap(Self.flattened).filter { $0.severity == .warning }.count,
            "counts": counts,
            "diagnostics": diagnostics.flatMap(Self.flattened).map(Self.json),
            "expectations": expectations.map { result -> [String: Any?] in
                let place = result.expectation.location
                return ["name": result.expectation.name, "file": place.file, "line": place.line, "column": place.column,
                        "passed": result.failures.isEmpty, "failures": result.failures.map(\.message)]
            },
        ])
    }

    /// A diagnostic and then its notes, each on its own, as the text output prints them.
    static func flattened(_ diagnostic: Diagnostic) -> [Diagnostic] {
        var plain = diagnostic
        plain.notes = []
        return [plain] + diagnostic.notes.flatMap(flattened)
    }

    static func json(_ diagnostic: Diagnostic) -> [String: Any?] {
        ["file": diagnostic.location.file, "line": diagnostic.location.line, "column": diagnostic.location.column,
         "severity": diagnostic.severity.rawValue, "message": diagnostic.message]
    }
}

extension Pipeline {
    /// `warnings` with one more for each system already expired at `instant`: it still
    /// loads, but no receiver admits it any more. In the order of their places.
    public static func withExpiryWarnings(_ warnings: [Diagnostic], _ policy: PolicySet, at instant: Date) -> [Diagnostic] {
        let expired = policy.systems.compactMap { system -> Diagnostic? in
            guard let expires = system.expires, expires <= instant else { return nil }
            return .warning(system.location, "system '\(system.name)' expired at \(ISO8601.string(expires)): it is no sender anywhere (remove its block, or move its expiry)")
        }
        return expired.isEmpty ? warnings : (warnings + expired).sorted { ($0.location, $0.severity) < ($1.location, $1.severity) }
    }

    /// Loads the policy and runs its expectations at `instant`, collecting rather than throwing.
    public func check(at instant: Date) -> CheckReport {
        do {
            let (policy, warnings) = try load()
            let results = ExpectationRunner(graph: AccessGraph(policy), now: instant).results()
            return CheckReport(directory: source.location, instant: instant, policy: policy,
                               diagnostics: Self.withExpiryWarnings(warnings, policy, at: instant) + results.flatMap(\.failures),
                               expectations: results)
        } catch {
            return CheckReport(directory: source.location, instant: instant, policy: nil, diagnostics: error.diagnostics, expectations: [])
        }
    }
}
