import Foundation

/// Reads a policy directory (`enforcer.conf` and `rules.d/NN-name.policy`), checks every
/// block, and resolves names. All problems are collected; nothing stops at the first.
public struct PolicyLoader: Sendable {
    public struct Loaded: Sendable {
        /// nil when any error was found.
        public var policySet: PolicySet?
        public var diagnostics: [Diagnostic]
        public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
    }

    /// - Parameter overlay: file names in `rules.d/` read from another path instead (a draft
    ///   being edited), or left out (nil: a file about to be removed). Diagnostics name the
    ///   `rules.d/` path, as they will once the draft is in place.
    /// - Parameter cache: what the last load made of each file (see `ParseCache`), used and
    ///   brought up to date.
    /// - Parameter services: the names `allow: ssh` may use; nil reads `/etc/services` when a
    ///   policy first uses one.
    public static func load(directory: String, overlay: [String: String?] = [:], cache: ParseCache? = nil,
                            services: ServiceNames? = nil) -> Loaded {
        var loader = PolicyLoader(directory: directory, overlay: overlay, cache: cache)
        loader.services = services
        return loader.run()
    }

    private let directory: String
    private let overlay: [String: String?]
    private let cache: ParseCache?
    private var diagnostics: [Diagnostic] = []
    private var config = Config()
    private var services: ServiceNames?

    private init(directory: String, overlay: [String: String?], cache: ParseCache? = nil) {
        self.directory = directory
        self.overlay = overlay
        self.cache = cache
    }

    private struct PendingBlock {
        var block: RawBlock
        var file: String
        var order: Int
        /// What a system block defined, kept from the last load (see `ParseCache`).
        var system: SystemDefinition?
        /// What a policy block made, kept from the last load.
        var policy: ParseCache.KeptPolicy? = nil
    }

    private mutating func run() -> Loaded {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            let here = SourceLocation(file: directory, line: 1, column: 1)
            return Loaded(policySet: nil, diagnostics: [.error(here, "no policy directory at '\(directory)'")])
        }
        let confPath = (directory as NSString).appendingPathComponent("enforcer.conf")
        var configText: String?
        if fm.fileExists(atPath: confPath) {
            if let text = readText(confPath, advice: Self.confAdvice) {
                configText = text
                let (parsed, confDiagnostics) = Config.parse(file: confPath, text: text)
                config = parsed
                diagnostics += confDiagnostics
            }
        }
        let rulesPath = (directory as NSString).appendingPathComponent("rules.d")
        var files: [String] = []
        if fm.fileExists(atPath: rulesPath, isDirectory: &isDirectory), isDirectory.boolValue {
            var names = Set((try? fm.contentsOfDirectory(atPath: rulesPath)) ?? [])
            for (name, draft) in overlay {
                if draft == nil { names.remove(name) } else { names.insert(name) }
            }
            for name in names.sorted() where name.hasSuffix(".policy") {
                let path = (rulesPath as NSString).appendingPathComponent(name)
                if !Self.isWellFormedFileName(name) {
                    diagnostics.append(.error(SourceLocation(file: path, line: 1, column: 1),
                                              "policy file name '\(name)' must be NN-name.policy (two digits, a hyphen, a name)"))
                    continue
                }
                files.append(path)
            }
        } else {
            diagnostics.append(.error(SourceLocation(file: directory, line: 1, column: 1), "no rules.d/ directory in '\(directory)'"))
        }

        // Every file is held in memory while the directory is checked: their total is
        // refused before any of them is read.
        let sources = files.map { file in overlay[(file as NSString).lastPathComponent].flatMap { $0 } ?? file }
        let total = (fm.fileExists(atPath: confPath) ? [confPath] : []).reduce(0) { $0 + ((try? SourceFile.size(of: $1)) ?? 0) }
            + sources.reduce(0) { $0 + ((try? SourceFile.size(of: $1)) ?? 0) }
        if total > SourceLimits.policyDirectoryBytes {
            let here = SourceLocation(file: directory, line: 1, column: 1)
            diagnostics.append(.error(here, "the policy files in \(directory) are \(SourceLimits.text(bytes: total)) together, more than the limit of "
                + "\(SourceLimits.text(bytes: SourceLimits.policyDirectoryBytes)) for a policy directory: write runs of addresses as CIDR blocks, "
                + "and long lists of domains as match-domain-list files"))
            return Loaded(policySet: nil, diagnostics: diagnostics)
        }

        // Each block goes to its kind in file order (a duplicate name reported where it
        // stands): as it is read, or with a cache once every file is read.
        var kinds = Kinds()
        var order = 0
        var unread = false
        var cached: [String: ParseCache.File] = [:]
        var takenByStamp = Set<String>()
        var kept = 0
        // With a cache, each file's blocks are gathered first: the short way (`fromLastLoad`)
        // may make sorting them into kinds unnecessary.
        var gathered: [(file: String, blocks: [ParseCache.Block])] = []
        let last = cache?.lastResult
        var replaced: [(old: ParseCache.Block, new: ParseCache.Block)]? = last != nil && last?.configText == configText && last?.policySet.files == files ? [] : nil
        for (file, source) in zip(files, sources) {
            let known = cache?.file(file, zone: config.defaultTimeZone.identifier)
            guard let (bytes, ends, stamp, takenAsKnown) = readBytes(source, advice: "split it into several files in rules.d/", old: known.map { ($0.bytes, $0.stamp) })
            else { unread = true; continue }
            if takenAsKnown { takenByStamp.insert(file) }
            if cache != nil {
                let parsed = ParseCache.blocks(file: file, bytes: bytes, cached: known, ends: ends)
                diagnostics += parsed.diagnostics
                kept += parsed.kept
                gathered.append((file, parsed.blocks))
                if let more = parsed.replaced, parsed.reusable { replaced? += more } else { replaced = nil }
                if parsed.reusable { cached[file] = ParseCache.File(bytes: bytes, blocks: parsed.blocks, stamp: stamp) }
                continue
            }
            let parser = BlockParser(file: file, bytes: bytes)
            diagnostics += parser.diagnostics
            for block in parser.blocks {
                classify(PendingBlock(block: block, file: file, order: order), into: &kinds)
                order += 1
            }
        }
        if let cache, let last, let replaced, !unread, diagnostics.isEmpty,
           let loaded = fromLastLoad(last, replacing: replaced, cached: &cached, gathered: &gathered, cache: cache, kept: kept, unread: takenByStamp,
                                     configText: configText) {
            return loaded
        }
        for (file, blocks) in gathered {
            for block in blocks {
                classify(PendingBlock(block: block.raw, file: file, order: order, system: block.system, policy: block.policy), into: &kinds)
                order += 1
            }
        }
        gathered = []
        // Without a file, names it defines would be reported unknown wherever they are used:
        // the file's own error says it all.
        if unread {
            diagnostics.sort { ($0.location, $0.severity) < ($1.location, $1.severity) }
            return Loaded(policySet: nil, diagnostics: diagnostics)
        }

        kinds.firstSystem = [:]
        kinds.firstPlace = [:]
        let (systems, fresh) = systems(kinds.systems)
        // The raw blocks go as soon as what they define is built: at a million lines they
        // are the larger part of the loader's memory.
        kinds.systems = []
        // Decided before the policies are read: their errors do not make the blocks unusable.
        let storable = cache != nil && !diagnostics.contains(where: { $0.severity == .error })
        let scope = NameScope(systems: systems)
        var freshPolicies: [(file: String, policy: ParseCache.KeptPolicy)] = []
        let policies = kinds.policies.compactMap { item -> AccessPolicy? in
            if let kept = item.policy, kept.stillHolds(hasTag: scope.hasTag, hasSystem: { scope.system($0) != nil }) {
                diagnostics += kept.warnings
                var policy = kept.policy
                policy.order = item.order
                return policy
            }
            let before = diagnostics.count
            guard let policy = policy(item.block, order: item.order, scope: scope) else { return nil }
            if storable, !diagnostics[before...].contains(where: { $0.severity == .error }) {
                freshPolicies.append((item.file, ParseCache.KeptPolicy(policy: policy, warnings: Array(diagnostics[before...]))))
            }
            return policy
        }
        if let cache, storable {
            remember(fresh, in: &cached)
            remember(freshPolicies, in: &cached)
            store(cached, in: cache, kept: kept, unread: takenByStamp)
        }
        let webRules = kinds.webRules.compactMap { webRule($0.block, file: $0.file, order: $0.order, scope: scope) }
        let expectations = kinds.expectations.compactMap { expectation($0.block, scope: scope) }

        for policy in policies where policy.allow == nil {
            diagnostics.append(.warning(policy.location, "\(policy.kindWord) '\(policy.name)' has no 'allow': it grants nothing (default deny); add 'allow: any' or a list such as 'allow: tcp/22'"))
        }
        for rule in webRules where rule.matchesOnlyByURI {
            diagnostics.append(.warning(rule.location, "web rule '\(rule.name)' matches only by URI regex: for TLS only the host is visible, so it is matched against https://SNI/ and cannot see paths"))
        }

        let set = PolicySet(directory: directory, config: config, systems: systems, policies: policies,
                            webRules: webRules, expectations: expectations, files: files)
        let withoutPortal = diagnostics
        diagnostics += set.portalWarnings()
        diagnostics.sort { ($0.location, $0.severity) < ($1.location, $1.severity) ? true : false }
        let hasErrors = diagnostics.contains { $0.severity == .error }
        if let cache {
            cache.keep(hasErrors || !webRules.isEmpty || !expectations.isEmpty ? nil
                       : ParseCache.LastLoad(policySet: set, diagnostics: withoutPortal, configText: configText, scope: scope))
        }
        return Loaded(policySet: hasErrors ? nil : set, diagnostics: diagnostics)
    }

    /// The last load's policy with the systems of `replaced` rebuilt from their new blocks,
    /// or nil where that would not be what a whole load gives: a rebuilt system with a
    /// diagnostic, other tags than before, or an old block without its system.
    /// `gathered` (the files' blocks, for the whole way) is emptied once the short way is
    /// taken: the cache's copy of the blocks is then the only one, changed in place.
    private mutating func fromLastLoad(_ last: ParseCache.LastLoad, replacing replaced: [(old: ParseCache.Block, new: ParseCache.Block)],
                                       cached: inout [String: ParseCache.File], gathered: inout [(file: String, blocks: [ParseCache.Block])],
                                       cache: ParseCache, kept: Int, unread: Set<String>, configText: String?) -> Loaded? {
        var set = last.policySet
        var fresh: [SystemDefinition] = []
        var freshPolicies: [(file: String, policy: ParseCache.KeptPolicy)] = []
        // Only for a policy read again (see `LastLoad.scope`).
        var scope = last.scope
        if !replaced.isEmpty {
            var position: [ObjectIdentifier: Int] = [:]
            for (index, system) in set.systems.enumerated() { position[ObjectIdentifier(system)] = index }
            for (old, new) in replaced {
                if new.raw.kind != "system" {
                    // A policy rewritten in place, without a warning before or after (the
                    // last load's diagnostics stand as they were).
                    guard let before = old.policy, before.warnings.isEmpty,
                          let index = set.policies.firstIndex(where: { $0.location == before.policy.location && $0.name == before.policy.name }),
                          set.policies[index].allow != nil else {
                        diagnostics = []
                        return nil
                    }
                    if scope == nil { scope = NameScope(systems: set.systems) }
                    guard let policy = policy(new.raw, order: set.policies[index].order, scope: scope!), diagnostics.isEmpty, policy.allow != nil else {
                        diagnostics = []
                        return nil
                    }
                    set.policies[index] = policy
                    freshPolicies.append((policy.location.file, ParseCache.KeptPolicy(policy: policy, warnings: [])))
                    continue
                }
                guard let before = old.system, let index = position[ObjectIdentifier(before)],
                      let system = system(new.raw), diagnostics.isEmpty, system.tags == before.tags else {
                    diagnostics = []
                    return nil
                }
                set.systems[index] = system
                fresh.append(system)
            }
        }
        gathered = []
        remember(fresh, in: &cached)
        remember(freshPolicies, in: &cached)
        store(cached, in: cache, kept: kept, unread: unread)
        cache.keep(ParseCache.LastLoad(policySet: set, diagnostics: last.diagnostics, configText: configText, scope: scope), shortWay: true)
        var all = last.diagnostics + set.portalWarnings()
        all.sort { ($0.location, $0.severity) < ($1.location, $1.severity) ? true : false }
        return Loaded(policySet: set, diagnostics: all)
    }

    /// The blocks of each kind, each name once per kind across all files (a duplicate is
    /// reported where it stands, with a note at the first).
    private struct Kinds {
        var systems: [PendingBlock] = []
        var policies: [PendingBlock] = []
        var webRules: [PendingBlock] = []
        var expectations: [PendingBlock] = []
        /// Where each name was first defined: systems, then any other kind (by kind and
        /// name; nil: a web rule). Ten thousand systems make the first the one to keep quick.
        var firstSystem: [String: SourceLocation] = [:]
        var firstPlace: [String?: [String: SourceLocation]] = [:]

        mutating func first(_ kind: String?, _ name: String) -> SourceLocation? {
            kind == "system" ? firstSystem[name] : firstPlace[kind]?[name]
        }

        mutating func record(_ kind: String?, _ name: String, at location: SourceLocation) {
            if kind == "system" { firstSystem[name] = location } else { firstPlace[kind, default: [:]][name] = location }
        }
    }

    /// Puts a block with its kind; a name defined before for the same kind is an error.
    private mutating func classify(_ item: PendingBlock, into kinds: inout Kinds) {
        let kind = item.block.kind
        if let first = kinds.first(kind, item.block.name) {
            let what = kind.map { "\($0) '\(item.block.name)'" } ?? "web rule '\(item.block.name)'"
            diagnostics.append(.error(item.block.nameLocation, "duplicate \(what)",
                                      notes: [Diagnostic(.note, first, "'\(item.block.name)' is first defined here")]))
            return
        }
        kinds.record(kind, item.block.name, at: item.block.nameLocation)
        switch kind {
        case "system": kinds.systems.append(item)
        case "policy", "gateway-policy": kinds.policies.append(item)
        case "expect": kinds.expectations.append(item)
        case nil: kinds.webRules.append(item)
        case let other?:
            diagnostics.append(.error(item.block.kindLocation,
                "unknown kind '\(other)'\(Self.suggestion(other, among: ["system", "policy", "gateway-policy", "expect"])) (expected system, policy, gateway-policy or expect; a block without a kind is a web rule)"))
        }
    }

    /// `NN-name.policy`: two digits, a hyphen, a name.
    public static func isWellFormedFileName(_ name: String) -> Bool {
        let stem = name.dropLast(".policy".count)
        guard stem.count >= 4 else { return false }
        let chars = Array(stem)
        return chars[0].isASCII && chars[0].isNumber && chars[1].isASCII && chars[1].isNumber && chars[2] == "-"
            && chars[3...].allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }
    }

    // MARK: - Files

    /// The bytes of a policy file or enforcer.conf, or nil after a diagnostic: unreadable
    /// (the errno in words), over the size limit (refused from its size, unread), a line
    /// over the line limit, or not UTF-8. `advice` says what to do about a file too large.
    ///
    /// `old`: the file's bytes as the last load read and accepted them (see `ParseCache`):
    /// only the lines between the first and last changed byte are checked again, and where
    /// those bytes are is returned beside the new ones.
    /// `stamp`: the file's when it was opened (see `FileStamp`); when the stamp of the old
    /// bytes still describes the file, they are the bytes, and the file is not read
    /// (`takenAsKnown`).
    private mutating func readBytes(_ path: String, advice: String, old: ([UInt8], FileStamp?)?)
        -> (bytes: [UInt8], ends: (prefix: Int, suffix: Int)?, stamp: FileStamp, takenAsKnown: Bool)? {
        let here = SourceLocation(file: path, line: 1, column: 1)
        let bytes: [UInt8]
        let stamp: FileStamp
        do throws(SourceFileFailure) {
            let file = try SourceFile(path: path)
            stamp = file.stamp
            if let (bytes, known) = old, let known, known.stillDescribes(stamp) { return (bytes, (bytes.count, bytes.count), known, true) }
            bytes = try file.readAll(limit: SourceLimits.policyFileBytes, reusing: cache?.takeSpare(for: path))
        } catch .tooLarge(let size) {
            diagnostics.append(.error(here, "\(path) is \(SourceLimits.text(bytes: size)), more than the limit of "
                + "\(SourceLimits.text(bytes: SourceLimits.policyFileBytes)) for a policy file: \(advice)"))
            return nil
        } catch {
            diagnostics.append(.error(here, "cannot read \(path): \(error.reason)"))
            return nil
        }
        var ends: (prefix: Int, suffix: Int)?
        if let (old, _) = old {
            let (prefix, suffix) = ParseCache.commonEnds(old, bytes)
            ends = (prefix, suffix)
            // The changed lines, whole: a newline is never part of a longer UTF-8 sequence.
            var start = min(prefix, bytes.count), end = max(start, bytes.count - suffix)
            while start > 0 && bytes[start - 1] != .newline { start -= 1 }
            while end < bytes.count && bytes[end] != .newline { end += 1 }
            if Self.linesAreValid(bytes.span.extracting(start..<end)) { return (bytes, ends, stamp, false) }
            // Something is wrong in there: the whole file is checked, for the diagnostic's line.
        }
        if let long = bytes.span.firstLine(longerThan: SourceLimits.lineBytes) {
            diagnostics.append(.error(SourceLocation(file: path, line: long.number, column: 1),
                "line \(long.number) is \(SourceLimits.text(bytes: long.length)) long, more than the limit of "
                + "\(SourceLimits.text(bytes: SourceLimits.lineBytes)) for a line: split it (a long 'address:', 'tags:' or 'match-' list "
                + "over several lines of the same key)"))
            return nil
        }
        // Validated where the bytes lie, without the copy that building a String makes.
        if !Self.isASCII(bytes), (try? UTF8Span(validating: bytes.span)) == nil {
            diagnostics.append(.error(here, "'\(path)' is not UTF-8 text"))
            return nil
        }
        return (bytes, ends, stamp, false)
    }

    private static let confAdvice = "enforcer.conf holds settings only; is this the right file?"

    /// Whether `bytes` are all ASCII (so UTF-8): one pass, without building the String
    /// that checking UTF-8 costs (a policy file can hold a million addresses).
    static func isASCII(_ bytes: [UInt8]) -> Bool { isASCII(bytes.span) }

    /// Whether whole lines hold no line over the limit and are UTF-8.
    static func linesAreValid(_ lines: Span<UInt8>) -> Bool {
        lines.firstLine(longerThan: SourceLimits.lineBytes) == nil && (isASCII(lines) || (try? UTF8Span(validating: lines)) != nil)
    }

    static func isASCII(_ bytes: Span<UInt8>) -> Bool {
        var seen: UInt8 = 0
        for index in bytes.indices { seen |= bytes[index] }
        return seen < 0x80
    }

    private mutating func readText(_ path: String, advice: String) -> String? {
        readBytes(path, advice: advice, old: nil).map { String(decoding: $0.bytes, as: UTF8.self) }
    }

    /// `enforcer.conf` of `directory` alone, for what must work while the policy files have
    /// errors: its settings, or the errors in it (defaults when there is no such file).
    public static func configuration(directory: String) -> (Config, [Diagnostic]) {
        let path = (directory as NSString).appendingPathComponent("enforcer.conf")
        guard FileManager.default.fileExists(atPath: path) else { return (Config(), []) }
        var loader = PolicyLoader(directory: directory, overlay: [:])
        guard let text = loader.readText(path, advice: confAdvice) else { return (Config(), loader.diagnostics) }
        return Config.parse(file: path, text: text)
    }

    // MARK: - Blocks

    /// The keys of one block, checked for unknown and repeated keys.
    private struct Keys {
        var entries: [String: [RawEntry]] = [:]
        /// Keys that a misspelt key was taken for (`adress` → `address`): already reported,
        /// so their absence is not reported again.
        var misspelt: Set<String> = []
        func one(_ key: String) -> RawEntry? { entries[key]?.first }
        func all(_ key: String) -> [RawEntry] { entries[key] ?? [] }
    }

    private mutating func keys(of block: RawBlock, allowed: [String], repeatable: Set<String> = [], what: String) -> Keys {
        var keys = Keys()
        for entry in block.entries {
            let key = entry.key.lowercased()
            guard allowed.contains(key) else {
                if let meant = Self.nearest(key, among: allowed) { keys.misspelt.insert(meant) }
                diagnostics.append(.error(entry.keyLocation,
                    "unknown key '\(entry.key)' in \(what) '\(block.name)'\(Self.suggestion(key, among: allowed)) (expected \(allowed.joined(separator: ", ")))"))
                continue
            }
            if let first = keys.entries[key]?.first, !repeatable.contains(key) {
                diagnostics.append(.error(entry.keyLocation, "duplicate key '\(entry.key)' in \(what) '\(block.name)'",
                                          notes: [Diagnostic(.note, first.keyLocation, "first given here")]))
                continue
            }
            keys.entries[key, default: []].append(entry)
        }
        return keys
    }

    private mutating func require(_ key: String, in keys: Keys, block: RawBlock, what: String) -> RawEntry? {
        if let entry = keys.one(key) { return entry }
        if keys.misspelt.contains(key) { return nil }
        diagnostics.append(.error(block.nameLocation, "\(what) '\(block.name)' needs '\(key):'"))
        return nil
    }

    /// Puts each system this load built into the cache beside its block, without the block's
    /// entries (the system holds what they said; at a million addresses they are most of the
    /// memory). Those kept from the last load are there already.
    private func remember(_ fresh: [SystemDefinition], in cached: inout [String: ParseCache.File]) {
        guard !fresh.isEmpty else { return }
        let byName = Dictionary(fresh.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for path in Array(cached.keys) {
            // Taken out while it changes, so that its blocks are changed in place rather
            // than copied (eleven thousand of them, for one system rebuilt).
            var file = cached.removeValue(forKey: path)!
            for index in file.blocks.indices where file.blocks[index].system == nil && file.blocks[index].raw.kind == "system" {
                guard let system = byName[file.blocks[index].raw.name], system.location == file.blocks[index].raw.nameLocation else { continue }
                file.blocks[index].system = system
                file.blocks[index].raw.entries = []
            }
            cached[path] = file
        }
    }

    /// The files as this load left them, for the next.
    private func store(_ cached: [String: ParseCache.File], in cache: ParseCache, kept: Int, unread: Set<String>) {
        cache.store(cached, kept: kept, parsed: cached.values.reduce(0) { $0 + $1.blocks.count } - kept, unread: unread,
                    zone: config.defaultTimeZone.identifier)
    }

    /// Keeps with their blocks the policies this load read (see `ParseCache.KeptPolicy`).
    private func remember(_ fresh: [(file: String, policy: ParseCache.KeptPolicy)], in cached: inout [String: ParseCache.File]) {
        guard !fresh.isEmpty else { return }
        for (path, kept) in Dictionary(grouping: fresh, by: \.file) {
            guard var file = cached.removeValue(forKey: path) else { continue }
            let byPlace = Dictionary(kept.map { ($0.policy.policy.location, $0.policy) }, uniquingKeysWith: { a, _ in a })
            for index in file.blocks.indices where file.blocks[index].policy == nil {
                guard let policy = byPlace[file.blocks[index].raw.nameLocation], policy.policy.name == file.blocks[index].raw.name else { continue }
                file.blocks[index].policy = policy
            }
            cached[path] = file
        }
    }

    /// The systems of `blocks`, in order, and those of them this load built (the others
    /// were kept from the last). Ten thousand systems with a million addresses are checked
    /// in parts, one per core: each part by a copy of this loader that starts with no
    /// diagnostics and hands its own back (they are sorted by place at the end).
    private mutating func systems(_ blocks: [PendingBlock]) -> (all: [SystemDefinition], fresh: [SystemDefinition]) {
        let unbuilt = blocks.filter { $0.system == nil }
        var built: [SystemDefinition] = []
        if !unbuilt.isEmpty {
            var worker = self
            worker.diagnostics = []
            let loader = worker
            let parts = Concurrently<[SystemDefinition]>.parts(limit: unbuilt.count / 1024 + 1)
            let results = Concurrently<([SystemDefinition], [Diagnostic])>.each(parts) { part in
                var loader = loader
                var systems: [SystemDefinition] = []
                for item in unbuilt[(unbuilt.count * part / parts)..<(unbuilt.count * (part + 1) / parts)] {
                    if let system = loader.system(item.block) { systems.append(system) }
                }
                return (systems, loader.diagnostics)
            }
            built.reserveCapacity(unbuilt.count)
            for (part, partDiagnostics) in results {
                built += part
                diagnostics += partDiagnostics
            }
        }
        guard built.count != blocks.count else { return (built, built) }
        // In the order of the blocks: kept ones where they stand, built ones in their turn.
        var all: [SystemDefinition] = []
        all.reserveCapacity(blocks.count)
        var byName: [String: SystemDefinition] = [:]
        for system in built { byName[system.name] = system }
        for item in blocks {
            if let kept = item.system { all.append(kept) } else if let system = byName[item.block.name] { all.append(system) }
        }
        return (all, built)
    }

    private mutating func system(_ block: RawBlock) -> SystemDefinition? {
        let keys = keys(of: block, allowed: ["address", "tags", "expires"], repeatable: ["address", "tags"], what: "system")
        let addresses = addressBlocks(keys.all("address"))
        if keys.all("address").isEmpty && !keys.misspelt.contains("address") {
            diagnostics.append(.error(block.nameLocation, "system '\(block.name)' needs 'address:'"))
        }
        var tags: [String] = []
        for entry in keys.all("tags") {
            for item in items(entry) {
                guard Self.isValidTag(item.text) else {
                    diagnostics.append(.error(item.location, "bad tag '\(item.text)': use letters, digits, '.', '_', '-'")); continue
                }
                if !tags.contains(item.text) { tags.append(item.text) }
            }
        }
        var expires: Date?
        if let entry = keys.one("expires") {
            do { expires = try Instant.parse(entry.value, defaultZone: config.defaultTimeZone) } catch { report(error, entry) }
        }
        return SystemDefinition(name: block.name, location: block.nameLocation, addresses: addresses, tags: tags, expires: expires)
    }

    private static let scheduleKeys = ["allow", "active-hours", "timezone", "trust", "expires", "enabled", "description"]

    private mutating func policy(_ block: RawBlock, order: Int, scope: NameScope) -> AccessPolicy? {
        let isGateway = block.kind == "gateway-policy"
        let what = isGateway ? "gateway-policy" : "policy"
        let allowed = (isGateway ? ["senders", "gateway", "subnets"] : ["senders", "receivers"]) + Self.scheduleKeys
        let before = diagnostics.count
        let keys = keys(of: block, allowed: allowed, what: what)

        let senders = tags(keys.one("senders"), scope: scope)
        if keys.one("senders") == nil { _ = require("senders", in: keys, block: block, what: what) }
        let reach: AccessPolicy.Reach
        if isGateway {
            var gateway = ""
            if let entry = require("gateway", in: keys, block: block, what: what) {
                gateway = entry.value
                if scope.system(gateway) == nil {
                    diagnostics.append(.error(entry.valueLocation, "unknown system '\(gateway)'\(Self.suggestion(gateway, among: scope.systemNames))"))
                }
            }
            var subnets: [AddressBlock] = []
            if let entry = require("subnets", in: keys, block: block, what: what) {
                for item in items(entry) {
                    do { subnets.append(try AddressBlock.parse(item.text)) } catch { report(error, item) }
                }
            }
            reach = .gateway(gateway: gateway, subnets: subnets)
        } else {
            if keys.one("receivers") == nil { _ = require("receivers", in: keys, block: block, what: what) }
            reach = .direct(receivers: tags(keys.one("receivers"), scope: scope))
        }

        var allow: [Service]?
        var allowNames: [Service: String] = [:]
        if let entry = keys.one("allow") {
            var services: [Service] = []
            for item in items(entry) {
                let (found, name) = service(item)
                services += found
                if let name { for service in found { allowNames[service] = name } }
            }
            allow = services
        }
        let schedule = schedule(keys, timeWindowKey: "active-hours")
        var trust: [String] = []
        if let entry = keys.one("trust") {
            for item in items(entry) {
                guard Self.isValidTag(item.text) else { diagnostics.append(.error(item.location, "bad trust requirement '\(item.text)'")); continue }
                trust.append(item.text)
            }
        }
        guard diagnostics.count == before || !diagnostics[before...].contains(where: { $0.severity == .error }) else { return nil }
        return AccessPolicy(name: block.name, location: block.nameLocation, order: order, senders: senders, reach: reach,
                            allow: allow, allowNames: allowNames, schedule: schedule, trust: trust, description: keys.one("description")?.value)
    }

    private mutating func schedule(_ keys: Keys, timeWindowKey: String) -> Schedule {
        var schedule = Schedule.always
        schedule.timeZone = config.defaultTimeZone
        if let entry = keys.one("timezone") {
            if let zone = Self.timeZone(entry.value) { schedule.timeZone = zone } else {
                diagnostics.append(.error(entry.valueLocation, "unknown timezone '\(entry.value)'\(Self.suggestion(entry.value, among: TimeZone.knownTimeZoneIdentifiers)) (expected an IANA name such as Europe/Berlin, or utc/local)"))
            }
        }
        if let entry = keys.one(timeWindowKey) {
            do { schedule.activeHours = try TimeSpec.parse(entry.value) } catch { report(error, entry) }
        }
        if let entry = keys.one("expires") {
            do { schedule.expires = try Instant.parse(entry.value, defaultZone: schedule.timeZone) } catch { report(error, entry) }
        }
        if let entry = keys.one("enabled") {
            switch entry.value.lowercased() {
            case "yes", "true", "on": schedule.enabled = true
            case "no", "false", "off": schedule.enabled = false
            default: diagnostics.append(.error(entry.valueLocation, "enabled must be yes or no, found '\(entry.value)'"))
            }
        }
        return schedule
    }

    static func timeZone(_ name: String) -> TimeZone? {
        switch name.lowercased() {
        case "utc": TimeZone(identifier: "UTC")
        case "local": TimeZone.current
        default: TimeZone(identifier: name)
        }
    }

    private static let webMatchKeys = ["match-domain", "match-domain-list", "match-sni", "match-uri-regex",
                                       "match-host-regex", "match-source", "match-user-agent"]

    private mutating func webRule(_ block: RawBlock, file: String, order: Int, scope: NameScope) -> WebRule? {
        let before = diagnostics.count
        let keys = keys(of: block, allowed: Self.webMatchKeys + ["action", "description", "time-window"],
                        repeatable: Set(Self.webMatchKeys), what: "web rule")
        if !Self.webMatchKeys.contains(where: { keys.one($0) != nil || keys.misspelt.contains($0) }) {
            diagnostics.append(.error(block.nameLocation, "web rule '\(block.name)' has no match key (expected one of \(Self.webMatchKeys.joined(separator: ", ")))"))
        }
        var action = WebAction.permit
        if let entry = require("action", in: keys, block: block, what: "web rule") {
            if let parsed = WebAction(rawValue: entry.value.lowercased()) { action = parsed } else {
                diagnostics.append(.error(entry.valueLocation, "bad action '\(entry.value)' (expected permit, deny, warn or aup)"))
            }
        }
        var domainNames: [String] = []
        for entry in keys.all("match-domain") {
            for item in items(entry) {
                do { domainNames.append(try Self.checkedDomain(item.text)) } catch { report(error, item) }
            }
        }
        var domains: [DomainSet] = domainNames.isEmpty ? [] : [DomainSet(domainNames)]
        var listPaths: [String] = []
        for entry in keys.all("match-domain-list") {
            for item in items(entry) {
                let path = Self.resolve(item.text, relativeTo: file)
                listPaths.append(path)
                do {
                    let list = try DomainSet.load(contentsOf: path)
                    domains.append(list)
                } catch {
                    if error.line == 0 {
                        // Unreadable or too large: the message names the list.
                        diagnostics.append(.error(item.location, error.message))
                    } else {
                        var diagnostic = error.diagnostic
                        diagnostic.notes.append(Diagnostic(.note, item.location, "list named here"))
                        diagnostics.append(diagnostic)
                    }
                }
            }
        }
        var sniNames: [String] = []
        for entry in keys.all("match-sni") {
            for item in items(entry) {
                do { sniNames.append(try Self.checkedDomain(item.text)) } catch { report(error, item) }
            }
        }
        let uri = patterns(keys.all("match-uri-regex"), caseless: false)
        let host = patterns(keys.all("match-host-regex"), caseless: true)
        let agent = patterns(keys.all("match-user-agent"), caseless: false)
        var sources: [WebSource] = []
        for entry in keys.all("match-source") {
            for item in items(entry) {
                if let block = try? AddressBlock.parse(item.text) {
                    sources.append(.block(block))
                } else if scope.hasTag(item.text) {
                    sources.append(.tag(item.text, scope.systems(tagged: item.text).flatMap(\.addresses)))
                } else if let system = scope.system(item.text) {
                    sources.append(.tag(item.text, system.addresses))
                } else {
                    do { _ = try AddressBlock.parse(item.text) } catch {
                        if item.text.contains(where: { $0 == "." || $0 == ":" || $0 == "/" }) && item.text.first?.isNumber == true || item.text.contains(":") {
                            report(error, item)
                        } else {
                            diagnostics.append(.error(item.location, "unknown tag or system '\(item.text)' in match-source\(Self.suggestion(item.text, among: scope.tags + scope.systemNames))"))
                        }
                    }
                }
            }
        }
        var timeWindow: TimeSpec?
        if let entry = keys.one("time-window") {
            do { timeWindow = try TimeSpec.parse(entry.value) } catch { report(error, entry) }
        }
        guard !diagnostics[before...].contains(where: { $0.severity == .error }) else { return nil }
        return WebRule(name: block.name, location: block.nameLocation, order: order, domains: domains,
                       domainListPaths: listPaths, sni: sniNames.isEmpty ? nil : DomainSet(sniNames),
                       uriPatterns: uri, hostPatterns: host, userAgentPatterns: agent, sources: sources,
                       action: action, description: keys.one("description")?.value,
                       timeWindow: timeWindow, timeZone: config.defaultTimeZone)
    }

    /// Each entry is one PCRE2 pattern (not comma-split: patterns contain commas), compiled once.
    private mutating func patterns(_ entries: [RawEntry], caseless: Bool) -> [Pattern] {
        var out: [Pattern] = []
        for entry in entries {
            do { out.append(try Pattern(entry.value, caseless: caseless)) } catch {
                diagnostics.append(.error(Self.shift(entry.valueLocation, by: error.offset),
                                          "bad regular expression '\(entry.value)': \(error.message) at offset \(error.offset)"))
            }
        }
        return out
    }

    private mutating func expectation(_ block: RawBlock, scope: NameScope) -> Expectation? {
        let before = diagnostics.count
        let keys = keys(of: block, allowed: ["from", "to", "allow", "deny", "at", "url", "verdict"], what: "expect")
        var at: Date?
        if let entry = keys.one("at") {
            do { at = try Instant.parse(entry.value, defaultZone: config.defaultTimeZone) } catch { report(error, entry) }
        }
        let check: Expectation.Check
        if let urlEntry = keys.one("url") {
            for key in ["to", "allow", "deny"] {
                if let entry = keys.one(key) { diagnostics.append(.error(entry.keyLocation, "'\(key)' does not go with 'url' (a web expectation takes url, verdict, from, at)")) }
            }
            var verdict = WebAction.permit
            if let entry = require("verdict", in: keys, block: block, what: "expect") {
                if let parsed = WebAction(rawValue: entry.value.lowercased()) { verdict = parsed } else {
                    diagnostics.append(.error(entry.valueLocation, "bad verdict '\(entry.value)' (expected permit, deny, warn or aup)"))
                }
            }
            var from: IPAddress?
            if let entry = keys.one("from") {
                switch endpoint(entry, scope: scope) {
                case .address(let a)?: from = a
                case .system(let name)?: from = scope.system(name)?.addresses.first?.address
                case nil: break
                }
            }
            if !(urlEntry.value.hasPrefix("http://") || urlEntry.value.hasPrefix("https://")) {
                diagnostics.append(.error(urlEntry.valueLocation, "url must start with http:// or https://, found '\(urlEntry.value)'"))
            }
            check = .web(url: urlEntry.value, verdict: verdict, from: from)
        } else {
            if let entry = keys.one("verdict") { diagnostics.append(.error(entry.keyLocation, "'verdict' goes with 'url'; a flow expectation takes from, to, allow, deny")) }
            let from = require("from", in: keys, block: block, what: "expect").flatMap { endpoint($0, scope: scope) }
            let to = require("to", in: keys, block: block, what: "expect").flatMap { endpoint($0, scope: scope) }
            var lists: [String: [Service]] = [:]
            for key in ["allow", "deny"] {
                guard let entry = keys.one(key) else { continue }
                for item in items(entry) { lists[key, default: []] += service(item).services }
            }
            if keys.one("allow") == nil && keys.one("deny") == nil && keys.misspelt.isDisjoint(with: ["allow", "deny"]) {
                diagnostics.append(.error(block.nameLocation, "expect '\(block.name)' needs 'allow:' or 'deny:' (or 'url:' and 'verdict:')"))
            }
            guard let from, let to else { return nil }
            check = .flow(from: from, to: to, allow: lists["allow"] ?? [], deny: lists["deny"] ?? [])
        }
        guard !diagnostics[before...].contains(where: { $0.severity == .error }) else { return nil }
        return Expectation(name: block.name, location: block.nameLocation, check: check, at: at)
    }

    private mutating func endpoint(_ entry: RawEntry, scope: NameScope) -> Expectation.Endpoint? {
        if scope.system(entry.value) != nil { return .system(entry.value) }
        do { return .address(try IPAddress.parse(entry.value)) } catch {
            // Text that is plainly meant as an address gets the address parser's own error.
            if entry.value.first?.isNumber == true && entry.value.contains(".") || entry.value.contains(":") {
                report(error, entry)
                return nil
            }
        }
        diagnostics.append(.error(entry.valueLocation, "unknown system '\(entry.value)'\(Self.suggestion(entry.value, among: scope.systemNames)) (expected a system name or an address)"))
        return nil
    }

    private mutating func tags(_ entry: RawEntry?, scope: NameScope) -> [String] {
        guard let entry else { return [] }
        var out: [String] = []
        for item in items(entry) {
            if scope.hasTag(item.text) {
                if !out.contains(item.text) { out.append(item.text) }
            } else {
                diagnostics.append(.error(item.location, "unknown tag '\(item.text)': no system carries it\(Self.suggestion(item.text, among: scope.tags))"))
            }
        }
        return out
    }

    // MARK: - Values

    struct ListItem { var text: String; var location: SourceLocation }

    /// The comma-separated items of an entry with their own columns; mistakes in their
    /// quoting are reported, and those items left out.
    private mutating func items(_ entry: RawEntry) -> [ListItem] {
        let (items, errors) = Self.listItems(entry)
        var columns = ItemColumns(entry)
        for error in errors { diagnostics.append(.error(columns.location(of: error.offset..<error.offset), error.message)) }
        return items
    }

    /// Comma-separated items with their own columns. Policy files can hold a million
    /// addresses, so this splits UTF-8 bytes and counts characters only when the value
    /// is not plain ASCII. A value that was one quoted string is one item (a name may hold
    /// commas); quoted items among others are split by `QuotedText.items`.
    static func listItems(_ entry: RawEntry) -> (items: [ListItem], errors: [QuotedText.ListError]) {
        if entry.isQuoted { return ([ListItem(text: entry.value, location: entry.valueLocation)], []) }
        var columns = ItemColumns(entry)
        guard entry.value.utf8.contains(.quote) else {
            return (itemRanges(entry.value).map { range in
                ListItem(text: String(item(entry.value, range)), location: columns.location(of: range))
            }, [])
        }
        let (items, errors) = QuotedText.items(entry.value)
        return (items.map { ListItem(text: $0.text, location: columns.location(of: $0.offset..<$0.offset)) }, errors)
    }

    /// The item at `range` (UTF-8 offsets) of `value`, without a copy.
    static func item(_ value: String, _ range: Range<Int>) -> Substring {
        let start = value.utf8.startIndex
        return value[value.utf8.index(start, offsetBy: range.lowerBound)..<value.utf8.index(start, offsetBy: range.upperBound)]
    }

    /// Where the items of one entry's value start. A column counts characters, which are
    /// bytes when the value is ASCII; otherwise they are counted on from the item before,
    /// so a long line of items costs one pass, not one pass per item.
    struct ItemColumns {
        private let entry: RawEntry
        /// Found out at the first item asked for (a million good addresses ask for none).
        private lazy var ascii = PolicyLoader.isASCII(entry.value)
        private var counted: String.Index
        private var characters = 0

        init(_ entry: RawEntry) {
            self.entry = entry
            counted = entry.value.startIndex
        }

        /// Where the item at `range` (UTF-8 offsets into the value) starts.
        mutating func location(of range: Range<Int>) -> SourceLocation {
            if ascii { return PolicyLoader.shift(entry.valueLocation, by: range.lowerBound) }
            let value = entry.value
            let first = value.utf8.index(value.utf8.startIndex, offsetBy: range.lowerBound)
            if first < counted { counted = value.startIndex; characters = 0 }
            characters += value.distance(from: counted, to: first)
            counted = first
            return PolicyLoader.shift(entry.valueLocation, by: characters)
        }
    }

    static func isASCII(_ value: String) -> Bool { isASCII(value.utf8.span) }

    /// The UTF-8 offsets of a comma-separated value's items, blanks trimmed, empty ones
    /// skipped; read through a span (String's own indices cost more than the bytes).
    static func itemRanges(_ value: String) -> [Range<Int>] {
        let bytes = value.utf8.span
        var ranges: [Range<Int>] = []
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != .comma { end += 1 }
            var first = start, last = end
            while first < last && bytes[first].isBlank { first += 1 }
            while last > first && bytes[last - 1].isBlank { last -= 1 }
            if first < last { ranges.append(first..<last) }
            start = end + 1
        }
        return ranges
    }

    /// The addresses and CIDR blocks of a system's `address:` entries: each item parsed
    /// where it lies in the value (a million of them make no strings), errors reported at
    /// the item's column.
    private mutating func addressBlocks(_ entries: [RawEntry]) -> [AddressBlock] {
        var blocks: [AddressBlock] = []
        for entry in entries {
            let value = entry.value
            let ranges = Self.itemRanges(value)
            blocks.reserveCapacity(blocks.count + ranges.count)
            var columns = ItemColumns(entry)
            AddressBlock.parse(items: ranges, of: value) { index, result in
                switch result {
                case .success(let block): blocks.append(block)
                case .failure(let error):
                    let location = columns.location(of: ranges[index])
                    diagnostics.append(.error(Self.shift(location, by: error.offset), error.message))
                }
            }
        }
        return blocks
    }

    static func shift(_ location: SourceLocation, by characters: Int) -> SourceLocation {
        var shifted = location
        shifted.column += characters
        return shifted
    }

    /// One item of an `allow` or `deny` list: a protocol (`tcp/22`), or a service name of
    /// /etc/services (`ssh`), with the name it was written as. Nothing, and an error, if it is
    /// neither.
    private mutating func service(_ item: ListItem) -> (services: [Service], name: String?) {
        do { return ([try Service.parse(item.text)], nil) } catch {
            // A word with a slash, or a protocol word, was meant as a protocol: its own error says more.
            guard !item.text.contains("/") else { report(error, item); return ([], nil) }
            if services == nil { services = ServiceNames.read() }
            let table = services!
            if let found = table.services(named: item.text) { return (found, item.text.lowercased()) }
            diagnostics.append(.error(item.location, "unknown service '\(item.text)'\(Self.suggestion(item.text, among: table.names)) "
                + "(expected any, icmp, tcp, udp, tcp/PORT, udp/FIRST-LAST or a service name of \(table.path))"))
            return ([], nil)
        }
    }

    private mutating func report(_ error: ValueError, _ item: ListItem) {
        diagnostics.append(.error(Self.shift(item.location, by: error.offset), error.message))
    }

    private mutating func report(_ error: ValueError, _ entry: RawEntry) {
        diagnostics.append(.error(Self.shift(entry.valueLocation, by: error.offset), error.message))
    }

    static func resolve(_ path: String, relativeTo file: String) -> String {
        if path.hasPrefix("/") { return path }
        let base = (file as NSString).deletingLastPathComponent
        return ((base as NSString).appendingPathComponent(path) as NSString).standardizingPath
    }

    /// An inline `match-domain`/`match-sni` entry, validated like a domain-list line.
    static func checkedDomain(_ text: String) throws(ValueError) -> String {
        do { _ = try DomainSet.parse(text, path: "") } catch { throw ValueError(error.message, at: max(0, error.column - 1)) }
        return text
    }

    static func isValidTag(_ text: String) -> Bool {
        // Ten thousand systems' tags are ASCII: bytes, not Unicode properties.
        if let ascii = text.utf8.asciiSatisfy({ $0.isASCIILetterOrDigit || $0 == .dot || $0 == .underscore || $0 == .hyphen || $0 == .colon }) {
            return !text.isEmpty && ascii
        }
        return !text.isEmpty && text.allSatisfy { ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-" || $0 == ":") }
    }

    /// ", did you mean 'x'?" for a near miss.
    static func suggestion(_ word: String, among candidates: [String]) -> String {
        nearest(word, among: candidates).map { ", did you mean '\($0)'?" } ?? ""
    }

    /// The candidate a near miss probably meant, if one is close enough.
    static func nearest(_ word: String, among candidates: [String]) -> String? {
        NearMiss.nearest(word, among: candidates)
    }
}

/// Systems and tags by name, for resolving references.
struct NameScope: Sendable {
    private var byName: [String: SystemDefinition] = [:]
    private var byTag: [String: [SystemDefinition]] = [:]
    let systemNames: [String]
    /// Every tag some system carries (for suggestions in errors).
    var tags: [String] { Array(byTag.keys) }
    /// Whether some system carries `tag`: a lookup, not a set built per question.
    func hasTag(_ tag: String) -> Bool { byTag[tag] != nil }

    init(systems: [SystemDefinition]) {
        systemNames = systems.map(\.name)
        byName.reserveCapacity(systems.count)
        for system in systems {
            byName[system.name] = system
            for tag in system.tags { byTag[tag, default: []].append(system) }
        }
    }

    func system(_ name: String) -> SystemDefinition? { byName[name] }
    func systems(tagged tag: String) -> [SystemDefinition] { byTag[tag] ?? [] }
}
