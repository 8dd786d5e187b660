// Unsafe code for PCRE2 lives here and nowhere else: thin owners of its C handles.
// PCRE2's 8-bit API is a set of macros over the `_8` functions, so those are called by name.

import CPCRE2

/// A pattern PCRE2 refused, with PCRE2's own message and where in the pattern it gave up.
public struct PatternError: Error, Hashable, Sendable, CustomStringConvertible {
    /// PCRE2's text for the error (from `pcre2_get_error_message`).
    public var message: String
    /// Offset in characters from the start of the pattern.
    public var offset: Int

    public init(_ message: String, at offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(message) at offset \(offset)" }

    /// The same error as a `ValueError`, for the policy parser to place at file:line:col.
    public var valueError: ValueError { ValueError(message, at: offset) }
}

/// A match PCRE2 gave up on before it could say yes or no: a limit was reached (match
/// limit, depth, heap) or memory ran out. The pattern might have matched, so this is not
/// "no match".
public struct MatchError: Error, Hashable, Sendable, CustomStringConvertible {
    /// PCRE2's negative error code, e.g. PCRE2_ERROR_MATCHLIMIT.
    public var code: Int32
    /// PCRE2's text for it (from `pcre2_get_error_message`).
    public var message: String

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(message) (PCRE2 error \(code))" }
}

/// What one match gave: three answers, since an error is neither a match nor a miss.
public enum MatchOutcome: Hashable, Sendable {
    case match
    case noMatch
    case error(MatchError)
}

/// A compiled PCRE2 pattern (UTF mode, JIT-compiled when the platform allows).
///
/// Immutable after init, so one instance can be shared by all worker threads; each
/// thread matches with its own `PatternMatcher`.
public final class Pattern: @unchecked Sendable {
    public let source: String
    public let caseless: Bool
    /// Whether `pcre2_jit_compile` succeeded; if not, matching uses the interpreter.
    public let isJITCompiled: Bool
    // pcre2_code_8 *, owned: freed in deinit, never mutated after init.
    fileprivate let code: OpaquePointer

    public init(_ source: String, caseless: Bool = false) throws(PatternError) {
        // MATCH_INVALID_UTF: subjects come off the wire and may hold invalid UTF-8; without
        // it pcre2_match fails on them, which would let a crafted URL dodge every pattern.
        var options = UInt32(PCRE2_UTF) | UInt32(PCRE2_MATCH_INVALID_UTF)
        if caseless { options |= UInt32(PCRE2_CASELESS) }

        var errorCode: Int32 = 0
        var errorOffset = 0
        // A NUL-terminated copy guarantees a non-null pointer even for the empty pattern.
        let bytes = Array(source.utf8) + [0]
        let compiled = bytes.withUnsafeBufferPointer { buffer in
            pcre2_compile_8(buffer.baseAddress, buffer.count - 1, options, &errorCode, &errorOffset, nil)
        }
        guard let compiled else {
            // PCRE2 reports the offset in code units (bytes); callers count characters.
            let prefix = source.utf8.prefix(errorOffset)
            throw PatternError(Self.errorMessage(errorCode), at: String(decoding: prefix, as: UTF8.self).count)
        }
        self.source = source
        self.caseless = caseless
        self.code = compiled
        self.isJITCompiled = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE)) == 0
    }

    deinit { pcre2_code_free_8(code) }

    /// Convenience for cold paths: allocates match data for this one call.
    public func matches(_ subject: String) -> Bool {
        PatternMatcher().matches(self, subject)
    }

    /// The same, telling a pattern PCRE2 gave up on from one that does not match.
    public func match(_ subject: String) -> MatchOutcome {
        PatternMatcher().match(self, subject)
    }

    fileprivate static func errorMessage(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = buffer.withUnsafeMutableBufferPointer { buffer in
            pcre2_get_error_message_8(code, buffer.baseAddress, buffer.count)
        }
        guard length > 0 else { return "PCRE2 error \(code)" }
        return String(decoding: buffer[..<Int(length)], as: UTF8.self)
    }
}

/// Reusable match state for one thread: owns a `pcre2_match_data` so the hot path does
/// not allocate, and the match context that carries the match, depth and heap limits. Deliberately not
/// `Sendable`: the compiler then refuses to share one between concurrent tasks or threads,
/// while each worker can create and keep its own. (A class rather than a `~Copyable`
/// struct, so it can be stored in ordinary containers and used inside `#expect`.)
public final class PatternMatcher {
    /// The most backtracking steps one match may take before PCRE2 gives up with
    /// PCRE2_ERROR_MATCHLIMIT (`pcre2_set_match_limit`). PCRE2's own default is
    /// 10,000,000; a tenth of it still leaves patterns that do not backtrack
    /// catastrophically far below the limit, while a URL crafted against one that does
    /// holds the worker a tenth as long. A pattern may lower it further inline with
    /// `(*LIMIT_MATCH=n)`, never raise it.
    public static let defaultMatchLimit: UInt32 = 1_000_000
    /// The backtracking depth (`pcre2_set_depth_limit`) and the heap, in KiB
    /// (`pcre2_set_heap_limit`), one interpreted match may use: PCRE2's defaults are
    /// 10,000,000 and 20,000,000 KiB (20 GB), so a subject crafted against a nesting pattern
    /// could make the worker allocate gigabytes before the match limit stops it. A URL is at
    /// most a few KiB; 10,000 frames and 16 MiB leave ordinary patterns far from either.
    public static let depthLimit: UInt32 = 10_000
    public static let heapLimitKiB: UInt32 = 16 * 1024

    // pcre2_match_data_8 *, owned. One ovector pair suffices: callers only ask yes/no.
    private let matchData: OpaquePointer
    // pcre2_match_context_8 *, owned: the limits, for the JIT and the interpreter.
    private let context: OpaquePointer
    public let matchLimit: UInt32
    /// A subject assembled for one match (a TLS request's URL), reused.
    var scratch: [UInt8] = []

    public init(matchLimit: UInt32 = PatternMatcher.defaultMatchLimit) {
        guard let matchData = pcre2_match_data_create_8(1, nil), let context = pcre2_match_context_create_8(nil) else {
            fatalError("PCRE2: out of memory allocating match data")
        }
        // Fails only for a null context.
        _ = pcre2_set_match_limit_8(context, matchLimit)
        _ = pcre2_set_depth_limit_8(context, Self.depthLimit)
        _ = pcre2_set_heap_limit_8(context, Self.heapLimitKiB)
        self.matchData = matchData
        self.context = context
        self.matchLimit = matchLimit
    }

    deinit {
        pcre2_match_context_free_8(context)
        pcre2_match_data_free_8(matchData)
    }

    /// Whether `pattern` matches `subject`: true only for a match, so an error (see
    /// `match`) reads as false. Callers whose answer must not flip on an error (the web
    /// rules) use `match` instead.
    public func matches(_ pattern: Pattern, _ subject: some StringProtocol) -> Bool {
        if case .match = match(pattern, subject) { true } else { false }
    }

    /// Matches raw bytes, e.g. a Host header or URL straight from a packet; invalid
    /// UTF-8 in them simply cannot match a pattern character (no error).
    public func matches(_ pattern: Pattern, _ subject: some Collection<UInt8>) -> Bool {
        if case .match = match(pattern, subject) { true } else { false }
    }

    public func matches(_ pattern: Pattern, _ subject: Span<UInt8>) -> Bool {
        if case .match = match(pattern, subject) { true } else { false }
    }

    public func match(_ pattern: Pattern, _ subject: some StringProtocol) -> MatchOutcome {
        if let result = subject.utf8.withContiguousStorageIfAvailable({ run(pattern, $0) }) {
            return result
        }
        return match(pattern, Array(subject.utf8))
    }

    public func match(_ pattern: Pattern, _ subject: some Collection<UInt8>) -> MatchOutcome {
        if let result = subject.withContiguousStorageIfAvailable({ run(pattern, $0) }) {
            return result
        }
        return Array(subject).withUnsafeBufferPointer { run(pattern, $0) }
    }

    public func match(_ pattern: Pattern, _ subject: Span<UInt8>) -> MatchOutcome {
        subject.withUnsafeBufferPointer { run(pattern, $0) }
    }

    // Stands in for an empty subject whose buffer has no base address (PCRE2 rejects null).
    private static let emptySubject: [UInt8] = [0]

    private func run(_ pattern: Pattern, _ subject: UnsafeBufferPointer<UInt8>) -> MatchOutcome {
        guard let base = subject.baseAddress else {
            return Self.emptySubject.withUnsafeBufferPointer { run(pattern, $0.baseAddress!, 0) }
        }
        return run(pattern, base, subject.count)
    }

    private func run(_ pattern: Pattern, _ base: UnsafePointer<UInt8>, _ count: Int) -> MatchOutcome {
        var rc: Int32
        if pattern.isJITCompiled {
            rc = pcre2_jit_match_8(pattern.code, base, count, 0, 0, matchData, context)
            // The JIT's stack is small and fixed; the interpreter keeps its state on the
            // heap, so retry there rather than give up on a deep pattern.
            if rc == PCRE2_ERROR_JIT_STACKLIMIT {
                rc = pcre2_match_8(pattern.code, base, count, 0, UInt32(PCRE2_NO_JIT), matchData, context)
            }
        } else {
            rc = pcre2_match_8(pattern.code, base, count, 0, 0, matchData, context)
        }
        // rc == 0 means "matched, but the ovector was too small": still a match.
        if rc >= 0 { return .match }
        if rc == PCRE2_ERROR_NOMATCH { return .noMatch }
        // A limit or out of memory: PCRE2 stopped without an answer. Saying "no match"
        // here would let a deny rule fall through to a later permit.
        return .error(MatchError(code: rc, message: Pattern.errorMessage(rc)))
    }
}
