import Compiler
import Foundation

/// Where the policy comes from: the seam between the pipeline and what it reads. A policy
/// directory is one source; a fleet's store is another. Each hands over the same thing,
/// a `PolicySet` or the diagnostics that stopped it, so a policy means the same whichever
/// source it was read from.
public protocol PolicySource: Sendable {
    /// Where it is, for messages and the plan's header (a directory's path; the one an
    /// apply records its source from).
    var location: String { get }

    /// Every file, checked: the policy set, or the diagnostics that stop it (warnings too).
    func load() -> PolicyLoader.Loaded

    /// `enforcer.conf` alone, for what must work while the policy files have errors
    /// (`flush`, `confirm`, `rollback`, `status`): its settings, or the errors in it.
    func configuration() -> (Config, [Diagnostic])

    /// Paths whose change means the policy may have changed (a directory's files); empty
    /// when the source tells of its changes itself.
    func watchedDirectories(of policy: PolicySet?) -> [String]
}

/// A policy directory: `enforcer.conf` and `rules.d/`.
public struct PolicyDirectory: PolicySource {
    public let path: String
    /// What the last load made of each file, for the daemon's reloads (see `ParseCache`).
    public let cache: ParseCache?

    public init(path: String, cache: ParseCache? = nil) {
        self.path = path
        self.cache = cache
    }

    public var location: String { path }

    /// The path as the daemon reports it (absolute, without `..`), so another command can
    /// tell whether a running daemon serves this directory.
    public var standardizedPath: String { URL(fileURLWithPath: path).standardizedFileURL.path }

    public func load() -> PolicyLoader.Loaded { PolicyLoader.load(directory: path, cache: cache) }

    /// The directory as it would be with `overlay` (file name → draft path, nil to leave a
    /// file out): how an edit is checked before it lands.
    public func load(overlay: [String: String?]) -> PolicyLoader.Loaded { PolicyLoader.load(directory: path, overlay: overlay) }

    public func configuration() -> (Config, [Diagnostic]) { PolicyLoader.configuration(directory: path) }

    /// The directory, rules.d and its sub-folders, and the folders of list files.
    public func watchedDirectories(of policy: PolicySet?) -> [String] {
        let rules = path + "/rules.d"
        var directories = [path, rules]
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: rules) {
            var isDirectory: ObjCBool = false
            directories += entries.map { rules + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && isDirectory.boolValue }
        }
        directories += (policy?.webRules ?? []).flatMap(\.domainListPaths).map { ($0 as NSString).deletingLastPathComponent }
        return Array(Set(directories.map { ($0 as NSString).standardizingPath })).sorted()
    }
}
