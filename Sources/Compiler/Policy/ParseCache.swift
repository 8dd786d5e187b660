import Foundation
import Synchronization

/// What the last load made of each policy file, so that the next load of a changed file
/// reads again only the blocks the change touched.
///
/// A fleet's systems file can hold ten thousand systems and a million addresses; the daemon
/// reloads it for every change, and parsing it whole takes hundreds of milliseconds while
/// an edit of one system touches one block. The next load compares the file's new bytes
/// with the old: blocks wholly before the first changed byte, or wholly after the last,
/// are kept (those after moved by the lines the change added or removed), with the system
/// each defined; only the blocks between are parsed again. The result is what a load from
/// scratch gives, so this is used only where that is certain: the last load of the file
/// was without any diagnostic, and neither the file nor the part read again has a
/// `/* … */` comment (one may span the change). Otherwise the file is parsed whole.
///
/// Only the daemon keeps one (a command loads once and would only hold the bytes longer).
public final class ParseCache: Sendable {
    struct Block: Sendable {
        var bytes: Range<Int>
        var lines: ClosedRange<Int>
        /// The block as parsed; a system's without its entries (`system` holds what they said).
        var raw: RawBlock {
            get { rawPart.value }
            set { rawPart = Shared(newValue) }
        }
        var system: SystemDefinition?
        /// What a policy block made, kept from the last load.
        var policy: KeptPolicy? {
            get { policyPart?.value }
            set { policyPart = newValue.map(Shared.init) }
        }
        // A reload puts eleven thousand blocks into a new list: held by reference, the parsed
        // block and the kept policy cost one count each to copy, not one per string inside.
        private var rawPart: Shared<RawBlock>
        private var policyPart: Shared<KeptPolicy>?

        init(bytes: Range<Int>, lines: ClosedRange<Int>, raw: RawBlock, system: SystemDefinition?, policy: KeptPolicy?) {
            self.bytes = bytes
            self.lines = lines
            rawPart = Shared(raw)
            self.system = system
            policyPart = policy.map(Shared.init)
        }

        func shifted(bytes offset: Int, lines: Int) -> Block {
            guard offset != 0 || lines != 0 else { return self }
            var out = self
            out.bytes = (bytes.lowerBound + offset)..<(bytes.upperBound + offset)
            out.lines = (self.lines.lowerBound + lines)...(self.lines.upperBound + lines)
            out.raw = raw.shifted(lines: lines)
            if lines != 0, let system {
                out.system = SystemDefinition(name: system.name, location: out.raw.nameLocation, addresses: system.addresses, tags: system.tags,
                                              expires: system.expires)
            }
            // Its diagnostics and location would name the old lines: it is read again.
            if lines != 0 { out.policy = nil }
            return out
        }
    }

    /// A policy as the last load read it from its block, without errors. Parsing every
    /// policy again was a large part of a reload's load, while what one makes depends only
    /// on its block, enforcer.conf's time zone (this cache is dropped when that
    /// changes) and which tags and systems exist: while every tag it names is still
    /// carried by some system, and its gateway still defined, it is the same policy.
    struct KeptPolicy: Sendable {
        var policy: AccessPolicy
        /// The warnings it had (errors are never kept).
        var warnings: [Diagnostic]

        /// Whether `hasTag` and `hasSystem` still say yes to every name it resolved.
        func stillHolds(hasTag: (String) -> Bool, hasSystem: (String) -> Bool) -> Bool {
            guard policy.senders.allSatisfy(hasTag) else { return false }
            switch policy.reach {
            case .direct(let receivers): return receivers.allSatisfy(hasTag)
            case .gateway(let gateway, _): return hasSystem(gateway)
            }
        }
    }

    struct File: Sendable {
        var bytes: [UInt8]
        var blocks: [Block]
        /// The file's stamp when `bytes` were read: while it still describes the file, the
        /// next load takes `bytes` without reading the file (14 MB of systems untouched by
        /// an edit of the policies' file).
        var stamp: FileStamp?
    }

    /// Files by path, as the last load without errors read them.
    private let files = Mutex<[String: File]>([:])

    /// The last load's result, when it had no errors, no web rules and no expectations (both
    /// read systems' addresses, which the short way below does not follow): a load that
    /// finds the same files and enforcer.conf, with at most some systems' blocks rewritten
    /// in place under the same names and tags, starts from it and replaces those systems,
    /// instead of sorting eleven thousand blocks into kinds and names again.
    struct LastLoad: Sendable {
        var policySet: PolicySet
        /// Its diagnostics but the portal's warnings (those read gateways' addresses).
        var diagnostics: [Diagnostic]
        var configText: String?
        /// The names of the last load that went the whole way. The short way keeps every
        /// system's name and tags, so a policy read again on it resolves against these;
        /// their systems' addresses may be older than the set's, so nothing else may use them.
        var scope: NameScope?
    }
    private let last = Mutex<LastLoad?>(nil)
    var lastResult: LastLoad? { last.withLock { $0 } }
    func keep(_ result: LastLoad?, shortWay: Bool = false) {
        last.withLock { $0 = result }
        if shortWay { shortWays.withLock { $0 += 1 } }
    }
    /// Loads that started from the last one (for tests).
    var shortWayLoads: Int { shortWays.withLock { $0 } }
    private let shortWays = Mutex(0)
    /// Blocks kept and blocks parsed by the last load, for tests and the trace.
    private let counts = Mutex<(kept: Int, parsed: Int)>((0, 0))

    public init() {}

    public var lastLoad: (kept: Int, parsed: Int) { counts.withLock { $0 } }
    /// Files the last load took by their stamp, without reading them.
    public var lastUnread: Set<String> { unread.withLock { $0 } }
    private let unread = Mutex<Set<String>>([])

    /// The file as the last load left it, when it was made under enforcer.conf's time zone
    /// `zone`: a system's `expires:` without an offset is read in that zone, so a kept system
    /// of another zone would keep another instant.
    func file(_ path: String, zone: String) -> File? {
        guard self.zone.withLock({ $0 == nil || $0 == zone }) else { return nil }
        return files.withLock { $0[path] }
    }
    private let zone = Mutex<String?>(nil)

    /// A buffer for the next read of the file at `path` to fill
    /// (`SourceFile.readAll(reusing:)`): that file's bytes, when a load replaced them (of the
    /// files a load replaced, the largest is kept). Held by nothing else once that load's
    /// files are gone, it is filled in place, its pages already mapped.
    func takeSpare(for path: String) -> [UInt8]? {
        spare.withLock { spare in
            guard spare?.path == path else { return nil }
            return spare.take()?.bytes
        }
    }
    private let spare = Mutex<(path: String, bytes: [UInt8])?>(nil)
    /// The room of the kept buffer, if any (for tests).
    var spareCapacity: Int? { spare.withLock { $0?.bytes.capacity } }

    func store(_ new: [String: File], kept: Int, parsed: Int, unread taken: Set<String> = [], zone: String) {
        unread.withLock { $0 = taken }
        let before = files.withLock { files in
            defer { files = new }
            return files
        }
        // The largest file's bytes that this load replaced: the next read of it goes into their memory.
        let replaced = before.filter { path, file in new[path].map { $0.bytes.span.isIdentical(to: file.bytes.span) } != true }
        if let largest = replaced.max(by: { $0.value.bytes.capacity < $1.value.bytes.capacity }) {
            spare.withLock { $0 = (largest.key, largest.value.bytes) }
        }
        counts.withLock { $0 = (kept, parsed) }
        self.zone.withLock { $0 = zone }
    }

    /// The blocks of `bytes` (the file `path` now), from `cached` where it can, with the
    /// diagnostics of parsing; how many blocks were kept; and whether the next load may
    /// read this file in parts (not when it has diagnostics or a block comment).
    /// `ends`: `commonEnds(cached.bytes, bytes)`, when the caller has it already.
    ///
    /// `replaced`: when every block parsed again is a system or policy block that stands
    /// where one of the same kind and name stood, on the same lines, and no other block moved
    /// a line: the old blocks (with what they defined) beside their new ones, in order; empty
    /// when nothing changed; nil otherwise.
    static func blocks(file path: String, bytes: [UInt8], cached: File?, ends: (prefix: Int, suffix: Int)? = nil)
        -> (blocks: [Block], diagnostics: [Diagnostic], kept: Int, reusable: Bool, replaced: [(old: Block, new: Block)]?) {
        if let cached {
            let (prefix, suffix) = ends ?? commonEnds(cached.bytes, bytes)
            if prefix == bytes.count && prefix == cached.bytes.count { return (cached.blocks, [], cached.blocks.count, true, []) }
            if let (blocks, kept, replaced) = reparse(file: path, bytes: bytes, cached: cached, prefix: prefix, suffix: suffix) {
                return (blocks, [], kept, true, replaced)
            }
        }
        let parser = BlockParser(file: path, bytes: bytes)
        let blocks = zip(parser.blocks, parser.spans).map { Block(bytes: $1.bytes, lines: $1.lines, raw: $0, system: nil, policy: nil) }
        return (blocks, parser.diagnostics, 0, parser.diagnostics.isEmpty && !parser.hasBlockComment, nil)
    }

    /// The blocks of `bytes` with only those the change touched parsed again; nil when
    /// that would not be what parsing the whole gives.
    private static func reparse(file path: String, bytes: [UInt8], cached: File, prefix: Int, suffix: Int)
        -> (blocks: [Block], kept: Int, replaced: [(old: Block, new: Block)]?)? {
        let old = cached.bytes
        guard !cached.blocks.isEmpty else { return nil }
        let delta = bytes.count - old.count
        // Kept before: blocks that end (newline included) before the first changed byte.
        let before = cached.blocks.prefix { $0.bytes.upperBound <= prefix && old[$0.bytes.upperBound - 1] == .newline }
        // Kept after: blocks that start after the last changed byte, on a line that starts
        // there in the new text too (the byte before them is unchanged).
        let firstAfter = cached.blocks.firstIndex { $0.bytes.lowerBound > old.count - suffix && $0.bytes.lowerBound > before.last.map(\.bytes.upperBound) ?? 0 }
            ?? cached.blocks.endIndex
        let after = cached.blocks[firstAfter...]
        let start = before.last?.bytes.upperBound ?? 0
        let end = (after.first?.bytes.lowerBound).map { $0 + delta } ?? bytes.count
        guard start <= end else { return nil }
        let middle = Array(bytes[start..<end])
        if middle.contains(.star), containsBlockCommentMarker(middle) { return nil }
        let firstLine = (before.last?.lines.upperBound ?? 0) + 1
        let parser = BlockParser(file: path, bytes: middle, firstLine: firstLine)
        guard parser.diagnostics.isEmpty else { return nil }
        let newlines = middle.reduce(0) { $0 + ($1 == .newline ? 1 : 0) }
        // The first block after is on the line after the middle part, wherever it was before.
        let lineShift = after.first.map { firstLine + newlines - $0.lines.lowerBound } ?? 0
        var blocks = Array(before)
        let middleBlocks = zip(parser.blocks, parser.spans).map {
            Block(bytes: ($1.bytes.lowerBound + start)..<($1.bytes.upperBound + start), lines: $1.lines, raw: $0, system: nil, policy: nil)
        }
        blocks += middleBlocks
        blocks += after.map { $0.shifted(bytes: delta, lines: lineShift) }
        let oldMiddle = cached.blocks[before.count..<firstAfter]
        var replaced: [(old: Block, new: Block)]?
        if lineShift == 0, oldMiddle.count == middleBlocks.count,
           zip(oldMiddle, middleBlocks).allSatisfy({ $0.raw.kind == $1.raw.kind && ["system", "policy", "gateway-policy"].contains($0.raw.kind)
                                                     && $0.raw.name == $1.raw.name && $0.lines == $1.lines }) {
            replaced = Array(zip(oldMiddle, middleBlocks))
        }
        return (blocks, before.count + after.count, replaced)
    }

    /// The lengths of the longest common prefix and suffix of `a` and `b`, not overlapping
    /// in either.
    static func commonEnds(_ a: [UInt8], _ b: [UInt8]) -> (Int, Int) {
        let x = a.span, y = b.span
        let shorter = min(x.count, y.count)
        // A chunk at a time while they agree (a loop without an early exit, which the
        // compiler runs many bytes at once: the file is tens of megabytes), then byte by byte.
        let chunk = 4096
        var prefix = 0
        while prefix + chunk <= shorter {
            var differ: UInt8 = 0
            for k in prefix..<(prefix + chunk) { differ |= x[k] ^ y[k] }
            if differ != 0 { break }
            prefix += chunk
        }
        while prefix < shorter && x[prefix] == y[prefix] { prefix += 1 }
        let room = shorter - prefix
        var suffix = 0
        while suffix + chunk <= room {
            // Each chunk read forwards, as two spans of one length: indexing back from the
            // ends kept the compiler from running the loop many bytes at once (bench/README,
            // "The reload before the kernel").
            let xs = x.extracting((x.count - suffix - chunk)..<(x.count - suffix))
            let ys = y.extracting((y.count - suffix - chunk)..<(y.count - suffix))
            var differ: UInt8 = 0
            for k in 0..<min(xs.count, ys.count) { differ |= xs[k] ^ ys[k] }
            if differ != 0 { break }
            suffix += chunk
        }
        while suffix < room && x[x.count - 1 - suffix] == y[y.count - 1 - suffix] { suffix += 1 }
        return (prefix, suffix)
    }

    private static func containsBlockCommentMarker(_ bytes: [UInt8]) -> Bool {
        bytes.indices.dropLast().contains { bytes[$0] == .slash && bytes[$0 + 1] == .star }
    }
}

/// An immutable value held by reference, so that copying what holds it costs one count.
final class Shared<Value: Sendable>: Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
