import Compiler
import Foundation
import Kernel

/// What an administrator does to a fleet's store: push a checked policy directory, compare
/// one with it, list and restore earlier pushes, and see what every agent enforces.
/// Each returns the lines to print.
public struct FleetAdmin {
    public let store: FleetStore

    public init(store: FleetStore) { self.store = store }

    /// Checks `directory` as `enforcer check` does (diagnostics and expectations), then
    /// writes it as the fleet's bundle, on the condition that nobody pushed since it was
    /// checked against the store's bundle. `ifRevision`: only if the bundle is still the one
    /// of that revision (as `fleet diff` or `fleet history` showed it), whatever it is now.
    public func push(directory: String, message: String?, ifRevision: Int64? = nil, at instant: Date = Date()) throws -> [String] {
        let pipeline = Pipeline(directory: directory)
        let (policy, warnings) = try pipeline.load()
        let failures = pipeline.failedExpectations(policy, at: instant)
        if !failures.isEmpty { throw EnforcementError.expectations(failures) }
        let snapshot: SourceSnapshot
        do { snapshot = try SourceSnapshot(directory: directory) } catch { throw FleetError.usage("\(error)") }
        if let reserved = snapshot.files.first(where: { $0.path.hasSuffix("/" + StoreMirror.enrolledFileName) }) {
            throw FleetError.usage("\(directory)/\(reserved.path): this file name is the agents' own (they write the enrolled systems into it): rename it")
        }
        let store = store
        let current = try waitFor { try await store.bundle() }
        // Systems written as blocks and enrolled systems share one namespace.
        let enrolled = try waitFor { try await FleetEnrolment(store: store).memberNames() }
        let clashes = policy.systems.filter { enrolled.contains($0.name) }
        if !clashes.isEmpty {
            throw FleetError.invalid(clashes.map { "\($0.location): error: system '\($0.name)' is the name of an enrolled system of fleet \(store.layout.fleet): rename one of them" })
        }
        var lines = warnings.map(\.description)
        if current.bundle?.digest == snapshot.digest {
            return lines + ["unchanged: revision \(current.modRevision) of fleet \(store.layout.fleet) holds this policy (digest \(snapshot.digest.prefix(12)))"]
        }
        let expected = ifRevision ?? current.modRevision
        let (made, chunks) = FleetBundle.make(snapshot, pushedBy: Actor.current(purpose: "fleet push"), message: message,
                                              checkedAt: expected, at: instant)
        let bundle = try waitFor { await store.withPatches(made, chunks: chunks, since: current.bundle) }
        let revision = try waitFor { try await store.push(bundle, chunks: chunks, expecting: expected, previous: current.bundle) }
        let changed = bundle.changedPaths(since: current.bundle)
        lines.append("pushed revision \(revision) to fleet \(store.layout.fleet): \(counted(changed.count, "file")) changed"
                     + (changed.isEmpty ? "" : " (\(changed.prefix(8).joined(separator: ", "))\(changed.count > 8 ? ", …" : ""))")
                     + "; \(policy.systems.count) systems, \(policy.policies.count) policies; digest \(snapshot.digest.prefix(12))")
        return lines
    }

    /// Changes the tags of `name`, a system of the pushed policy. The store's policy is the
    /// one source of truth, so this is a push: the store's files with that system's `tags:`
    /// rewritten and nothing else (`SystemTagsEdit`), checked as `push` checks a directory and
    /// written on the condition that nobody pushed since they were read (`ifRevision`: since
    /// that revision). `fleet history` shows it as `fleet tag NAME +a -b` by its user.
    public func tag(pushedSystem name: String, add: [String], remove: [String], ifRevision: Int64? = nil, at instant: Date = Date()) throws -> [String] {
        let changes: [String] = add.map { "+\($0)" } + remove.map { "-\($0)" }
        return try editPushed(system: name, message: "fleet tag \(name) \(changes.joined(separator: " "))", ifRevision: ifRevision, at: instant) { bytes, path throws(SystemTagsEdit.Failure) in
            try SystemTagsEdit.retag(system: name, in: bytes, file: path, add: add, remove: remove).map { result in
                let after: String = result.after.isEmpty ? "none" : result.after.joined(separator: ", ")
                let before: String = result.before.isEmpty ? "none" : result.before.joined(separator: ", ")
                return (result.bytes, "\(name): tags \(after) (were \(before); \(path))")
            }
        }
    }

    /// Sets (nil: removes) the expiry of `name`, a system of the pushed policy: a push of the
    /// store's files with that block's `expires:` line written (`SystemExpiryEdit`), as `tag`
    /// pushes. Every agent drops the system at that instant by its own clock.
    public func expire(pushedSystem name: String, at expiry: Date?, ifRevision: Int64? = nil, at instant: Date = Date()) throws -> [String] {
        let value = expiry.map { ISO8601.string($0) }
        return try editPushed(system: name, message: "fleet expire \(name) " + (value ?? "--never"), ifRevision: ifRevision, at: instant) { bytes, path throws(SystemTagsEdit.Failure) in
            try SystemExpiryEdit.setExpiry(system: name, in: bytes, file: path, to: value).map { result in
                (result.bytes, "\(name): " + (result.after.map { "expires \($0)" } ?? "does not expire")
                    + " (\(result.before.map { "was \($0)" } ?? "had no expiry"); \(path))")
            }
        }
    }

    /// Whether `name` is a system of the pushed policy.
    public func isPushedSystem(_ name: String) throws -> Bool {
        let store = store
        guard let bundle = try waitFor({ try await store.bundle() }).bundle else { return false }
        let files = try waitFor { try await store.files(of: bundle).files }
        return EnrolledSystems.definedNames(in: files.map(\.content)).contains(name)
    }

    /// A push of the store's files with the one holding system `name` changed by `edit` (its
    /// bytes and path → the new bytes and a line to print; nil: not in this file), checked and
    /// guarded as any push.
    private func editPushed(system name: String, message: String, ifRevision: Int64?, at instant: Date,
                            _ edit: ([UInt8], String) throws(SystemTagsEdit.Failure) -> ([UInt8], String)?) throws -> [String] {
        let store = store, fleet = store.layout.fleet
        let current = try waitFor { try await store.bundle() }
        guard let bundle = current.bundle else { throw FleetError.usage("fleet \(fleet) has no policy yet: there is no system \(name) to change") }
        let files = try waitFor { try await store.files(of: bundle).files }
        var edits: [(path: String, bytes: [UInt8], line: String)] = []
        for file in files where EnrolledSystems.definedNames(in: [file.content]).contains(name) {
            do {
                if let (bytes, line) = try edit([UInt8](file.content), file.path) { edits.append((file.path, bytes, line)) }
            } catch { throw FleetError.usage("\(error)") }
        }
        guard let changed = edits.first else {
            let enrolled = try waitFor { try await FleetEnrolment(store: store).memberNames() }
            let known = EnrolledSystems.definedNames(in: files.map(\.content)).union(enrolled)
            let near: String = NearMiss.nearest(name, among: known.sorted()).map { ": did you mean \($0)?" } ?? ""
            throw FleetError.usage("no system \(name) in fleet \(fleet) (neither in its pushed policy nor enrolled)\(near)")
        }
        guard edits.count == 1 else {
            throw FleetError.usage("system \(name) is written in \(edits.map(\.path).joined(separator: " and ")): the policy does not check; fix it and push")
        }
        // The files go into a directory of their own, read by the same checks as any push.
        let directory = NSTemporaryDirectory() + "enforcer-fleet-edit-\(getpid())-\(FleetEnrolment.randomHex(bytes: 4))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for file in files {
            let path = directory + "/" + file.path
            let content = file.path == changed.path ? Data(changed.bytes) : file.content
            do {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try content.write(to: URL(fileURLWithPath: path))
            } catch { throw FleetError.store("cannot write the policy to \(directory) to check it: \(SystemErrno.describe(error))") }
        }
        let pushed = try push(directory: directory, message: message, ifRevision: ifRevision ?? current.modRevision, at: instant)
        return [changed.line] + pushed
    }

    /// The files in which `directory` and the store's bundle differ, and how.
    public func diff(directory: String) throws -> [String] {
        let snapshot: SourceSnapshot
        do { snapshot = try SourceSnapshot(directory: directory) } catch { throw FleetError.usage("\(error)") }
        let store = store
        let current = try waitFor { try await store.bundle() }
        guard let bundle = current.bundle else {
            return ["fleet \(store.layout.fleet) has no policy yet: a push adds \(counted(snapshot.files.count, "file"))"]
        }
        if bundle.digest == snapshot.digest { return ["no difference: revision \(current.modRevision) holds \(directory) as it is"] }
        let remote = try waitFor { try await store.files(of: bundle).files }
        let theirs = Dictionary(uniqueKeysWithValues: remote.map { ($0.path, $0.content) })
        let ours = Dictionary(uniqueKeysWithValues: snapshot.files.map { ($0.path, $0.content) })
        var lines = ["\(directory) against revision \(current.modRevision) of fleet \(store.layout.fleet):"]
        for path in Set(theirs.keys).union(ours.keys).sorted() {
            switch (theirs[path], ours[path]) {
            case (nil, let mine?): lines.append("  added    \(path) (\(mine.count) bytes)")
            case (_?, nil): lines.append("  removed  \(path)")
            case (let old?, let new?) where old != new: lines.append("  changed  \(path): " + Self.changedLines(old, new))
            default: continue
            }
        }
        return lines
    }

    /// Which lines differ between two texts: the span between their common first and last lines.
    static func changedLines(_ old: Data, _ new: Data) -> String {
        let a = old.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let b = new.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var head = 0
        while head < a.count, head < b.count, a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < a.count - head, tail < b.count - head, a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        let removed = a.count - head - tail, added = b.count - head - tail
        return "line \(head + 1): \(counted(removed, "line")) out, \(counted(added, "line")) in"
    }

    /// Pushes, newest first.
    public func history(limit: Int) throws -> [String] {
        let store = store
        let entries = try waitFor { try await store.history(limit: limit) }
        guard !entries.isEmpty else { return ["fleet \(store.layout.fleet) has no policy yet"] }
        return entries.map { entry in
            "revision \(entry.revision)  \(ISO8601.string(entry.head.pushedAt))  \(entry.head.pushedBy)  "
                + (entry.bundle.map { counted($0.files.count, "file") } ?? "files collected by `fleet gc`") + ", digest \(entry.head.digest.prefix(12))"
                + (entry.head.message.map { "  \"\($0)\"" } ?? "")
        }
    }

    /// Pushes the bundle of `revision` again, as a new revision.
    public func rollback(to revision: Int64, message: String?) throws -> [String] {
        let store = store
        let gone = FleetError.usage("revision \(revision) cannot be restored: its files were removed by `fleet gc` "
                                    + "(it keeps those of the last --keep-revisions revisions); push its policy from a directory instead")
        let old: FleetStore.Read
        do { old = try waitFor { try await store.bundle(at: revision) } } catch FleetError.missing { throw gone }
        guard let bundle = old.bundle else { throw FleetError.usage("fleet \(store.layout.fleet) had no policy at revision \(revision)") }
        let current = try waitFor { try await store.bundle() }
        if current.bundle?.digest == bundle.digest {
            return ["unchanged: revision \(current.modRevision) already holds the policy of revision \(revision)"]
        }
        var restored = bundle
        restored.pushedBy = Actor.current(purpose: "fleet rollback")
        restored.pushedAt = Date()
        restored.message = message ?? "rollback to revision \(revision)"
        restored.checkedAt = current.modRevision
        // `fleet gc` may have deleted the chunks of a revision older than those it kept.
        let missing = try waitFor { try await store.missingChunks(of: bundle) }
        if !missing.isEmpty { throw gone }
        // A `fleet gc` after this check makes the push below fail rather than name a deleted chunk.
        let again = restored
        let pushed = try waitFor { try await store.push(again, chunks: [:], expecting: current.modRevision, previous: current.bundle) }
        return ["pushed revision \(pushed) to fleet \(store.layout.fleet): the policy of revision \(revision) (digest \(bundle.digest.prefix(12)))"]
    }

    /// Deletes the chunks no kept revision names (`FleetStore.collectGarbage`).
    public func collectGarbage(keep: Int, dryRun: Bool) throws -> [String] {
        let store = store
        let done = try waitFor { try await store.collectGarbage(keep: keep, dryRun: dryRun) }
        guard let oldest = done.kept.last else { return ["fleet \(store.layout.fleet) has no policy yet: nothing to collect"] }
        let verb = dryRun ? "would delete" : "deleted"
        let revisions = done.kept.map { String($0) }.joined(separator: ", ")
        var summary = "\(verb) \(counted(done.deleted, "chunk")) (\(done.deletedBytes) bytes); kept \(counted(done.named, "chunk")) named by the last \(counted(done.kept.count, "revision")) (\(revisions))"
        if done.recent > 0 { summary += " and \(counted(done.recent, "chunk")) written since the current push (a push in progress)" }
        let earlier: String = done.deleted == 0 ? "too, while etcd keeps them" : "may have lost chunks"
        return [summary, "`fleet rollback` can restore revision \(oldest) and later; earlier ones \(earlier)"]
    }

    /// Every agent: the revision it enforces, how far behind the store it is, its last error.
    public func status(at instant: Date = Date()) throws -> [String] {
        let store = store
        let (current, presence) = try waitFor { () async throws -> (FleetStore.Read, (revision: Int64, hosts: [FleetStore.Presence])) in
            (try await store.bundle(), try await store.presences())
        }
        var lines = ["fleet \(store.layout.fleet): " + (current.bundle.map { "revision \(current.modRevision) pushed \(ISO8601.string($0.pushedAt)) by \($0.pushedBy)" } ?? "no policy pushed")]
        if presence.hosts.isEmpty { lines.append("no agent has reported") }
        for host in presence.hosts {
            let state = host.revision == current.modRevision ? "in sync" : host.revision == 0 ? "nothing applied" : "behind (pushed revision \(current.modRevision))"
            var line = "  \(host.host) (system \(host.system)): revision \(host.revision), \(state)"
            if let generation = host.generation { line += ", generation \(generation)" }
            if let applied = host.appliedAt { line += ", applied \(applied)" }
            if let error = host.error { line += "; error: \(error)" }
            lines.append(line)
        }
        return lines
    }
}
