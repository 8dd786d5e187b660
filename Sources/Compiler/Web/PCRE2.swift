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
/// not allocate. Deliberately not `Sendable`: the compiler then refuses to share one
/// between concurrent tasks or threads, while each worker can create and keep its own.
/// (A class rather than a `~Copyable` struct, so it can be stored in ordinary
/// containers and used inside `#expect`.)
public final class PatternMatcher {
    // pcre2_match_data_8 *, owned. One ovector pair suffices: callers only ask yes/no.
    private let matchData: OpaquePointer
    /// A subject assembled for one match (a TLS request's URL), reused.
    var scratch: [UInt8] = []

    public init() {
        guard let matchData = pcre2_match_data_create_8(1, nil) else {
            fatalError("PCRE2: out of memory allocating match data")
        }
        self.matchData = matchData
    }

    deinit { pcre2_match_data_free_8(matchData) }

    public func matches(_ pattern: Pattern, _ subject: some StringProtocol) -> Bool {
        if let result = subject.utf8.withContiguousStorageIfAvailable({ run(pattern, $0) }) {
            return result
        }
        return matches(pattern, Array(subject.utf8))
    }

    /// Matches raw bytes, e.g. a Host header or URL straight from a packet; invalid
    /// UTF-8 in them simply cannot match a pattern character (no error).
    public func matches(_ pattern: Pattern, _ subject: some Collection<UInt8>) -> Bool {
        if let result = subject.withContiguousStorageIfAvailable({ run(pattern, $0) }) {
            return result
        }
        return Array(subject).withUnsafeBufferPointer { run(pattern, $0) }
    }

    public func matches(_ pattern: Pattern, _ subject: Span<UInt8>) -> Bool {
        subject.withUnsafeBufferPointer { run(pattern, $0) }
    }

    // Stands in for an empty subject whose buffer has no base address (PCRE2 rejects null).
    private static let emptySubject: [UInt8] = [0]

    private func run(_ pattern: Pattern, _ subject: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = subject.baseAddress else {
            return Self.emptySubject.withUnsafeBufferPointer { run(pattern, $0.baseAddress!, 0) }
        }
        return run(pattern, base, subject.count)
    }

    private func run(_ pattern: Pattern, _ base: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        var rc: Int32
        if pattern.isJITCompiled {
            rc = pcre2_jit_match_8(pattern.code, base, count, 0, 0, matchData, nil)
            // The JIT's stack is small and fixed; the interpreter keeps its state on the
            // heap, so retry there rather than report "no match" for a deep pattern.
            if rc == PCRE2_ERROR_JIT_STACKLIMIT {
                rc = pcre2_match_8(pattern.code, base, count, 0, UInt32(PCRE2_NO_JIT), matchData, nil)
            }
        } else {
            rc = pcre2_match_8(pattern.code, base, count, 0, 0, matchData, nil)
        }
        // rc == 0 means "matched, but the ovector was too small": still a match. Errors
        // (match limit, out of memory) count as no match, never a crash.
        return rc >= 0
    }
}
