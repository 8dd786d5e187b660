import Compiler
import Foundation

/// The files of one policy directory's rules.d/ (`enforcer policy show|new|edit|remove`).
/// Every change is checked with the whole directory before it lands; a draft that fails is
/// kept aside, never loaded.
public struct PolicyFiles {
    public let pipeline: Pipeline
    public let directory: PolicyDirectory
    var rules: String { directory.path + "/rules.d" }
    public func path(_ name: String) -> String { rules + "/" + name }

    public init(directory: String, stateDirectory: String? = nil) {
        self.directory = PolicyDirectory(path: directory)
        pipeline = Pipeline(source: self.directory, stateDirectory: stateDirectory)
    }

    /// A file name (with or without .policy) or the name of a block in one of the files.
    /// A name with a `/` is never taken as a file name: `policy show|edit|remove` reach only
    /// the files of rules.d/, never `../elsewhere.policy` (a block's quoted name may hold a
    /// `/`, and is found as a block).
    public func locate(_ name: String) throws(EnforcementError) -> String {
        let direct = path(name.hasSuffix(".policy") ? name : name + ".policy")
        if !name.contains("/"), name != "..", FileManager.default.fileExists(atPath: direct) { return direct }
        if let policy = directory.load().policySet {
            let places = policy.systems.map { ($0.name, $0.location) } + policy.policies.map { ($0.name, $0.location) }
                + policy.webRules.map { ($0.name, $0.location) } + policy.expectations.map { ($0.name, $0.location) }
            if let place = places.first(where: { $0.0 == name }) { return place.1.file }
        } else {
            // A broken directory can still be searched as text, so a broken file can be fixed.
            for file in ((try? FileManager.default.contentsOfDirectory(atPath: rules)) ?? []).sorted() where file.hasSuffix(".policy") {
                // A file over the size limit cannot be the one to fix by name: not read.
                guard Self.size(of: path(file)) <= SourceLimits.policyFileBytes else { continue }
                let text = (try? String(contentsOfFile: path(file), encoding: .utf8)) ?? ""
                if text.contains("] \(name):") || text.contains("] \"\(name)\":") || text.contains("\n\(name):") { return path(file) }
            }
        }
        throw .notFound("no file or block named '\(name)' in \(rules)")
    }

    /// The text of a policy file to show or edit, refused (as `check` refuses it) over the
    /// size limit of a policy file.
    public func text(of file: String) throws(EnforcementError) -> String {
        let size = Self.size(of: file)
        guard size <= SourceLimits.policyFileBytes else {
            throw .refused(["enforcer: \(file) is \(SourceLimits.text(bytes: size)), over the limit of \(SourceLimits.text(bytes: SourceLimits.policyFileBytes)) for a policy file"])
        }
        do { return try String(contentsOfFile: file, encoding: .utf8) } catch {
            throw .refused(["enforcer: cannot read \(file): \(SystemErrno.describe(error))"])
        }
    }

    /// A file's size in bytes (0 when it cannot be asked; reading it then says why).
    private static func size(of path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// The template `policy new` starts from.
    public static func template(for name: String) -> String {
        let title = String(name.dropFirst(3).dropLast(".policy".count))
        return """
            # \(name): who may reach what, and when. Check: enforcer check; plan: enforcer apply --dry-run.
            [policy] "\(title)": {
                senders: TAG
                receivers: TAG
                allow: any
                # active-hours: mon-fri 08:00-18:00
                # expires: 2026-12-31T18:00:00Z
                description: \(title)
            }

            """
    }

    /// What became of an edited draft.
    public enum DraftOutcome {
        case unchanged
        /// Saved; the lines to print (the daemon told to reload, or not running).
        case saved([String])
        /// It does not check: kept at `keptAt`, with the diagnostics that say why.
        case rejected(diagnostics: [Diagnostic], keptAt: String)
    }

    /// `edit` on a draft of rules.d/NAME (the caller's editor; false when it failed); the
    /// whole directory is checked with the draft in its place. Passing: the draft replaces
    /// the file (atomically) and a running daemon reloads. Failing: the draft is kept as
    /// NAME.rejected.
    public func draftAndCommit(_ name: String, startingWith text: String, edit: (String) throws -> Void) throws -> DraftOutcome {
        let draftDirectory = NSTemporaryDirectory() + "enforcer-draft-\(getpid())"
        try FileManager.default.createDirectory(atPath: draftDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: draftDirectory) }
        let draft = draftDirectory + "/" + name
        try text.write(toFile: draft, atomically: true, encoding: .utf8)
        try edit(draft)
        let size = Self.size(of: draft)
        guard size <= SourceLimits.policyFileBytes else {
            throw EnforcementError.refused(["enforcer: the edited \(name) is \(SourceLimits.text(bytes: size)), over the limit of \(SourceLimits.text(bytes: SourceLimits.policyFileBytes)) for a policy file; nothing was saved"])
        }
        let edited = try String(contentsOfFile: draft, encoding: .utf8)
        if edited == text && FileManager.default.fileExists(atPath: path(name)) { return .unchanged }
        let (checked, problems) = check(overlay: [name: draft])
        guard let policy = checked else {
            let rejected = path(name) + ".rejected"
            try edited.write(toFile: rejected, atomically: true, encoding: .utf8)
            return .rejected(diagnostics: problems, keptAt: rejected)
        }
        try edited.write(toFile: path(name), atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: path(name) + ".rejected")
        return .saved(["checked and saved \(path(name))", pipeline.signalDaemon(pipeline.state(for: policy))])
    }

    /// Removes `file` when the directory still checks without it; the lines to print.
    public func remove(_ file: String) throws -> [String] {
        let base = (file as NSString).lastPathComponent
        let (checked, problems) = check(overlay: [base: String?.none])
        guard let policy = checked else {
            throw EnforcementError.doesNotCheck(diagnostics: problems, summary: "without \(base) the policy does not check; nothing was removed")
        }
        try FileManager.default.removeItem(atPath: file)
        return ["removed \(file)", pipeline.signalDaemon(pipeline.state(for: policy))]
    }

    /// The directory as it would be with `overlay`: the policy when it loads and every
    /// expectation holds, else the errors and failed expectations.
    func check(overlay: [String: String?]) -> (PolicySet?, [Diagnostic]) {
        let result = directory.load(overlay: overlay)
        guard let policy = result.policySet else { return (nil, result.diagnostics.filter { $0.severity == .error }) }
        let failures = pipeline.failedExpectations(policy, at: Date())
        return (failures.isEmpty ? policy : nil, failures)
    }
}
