import Foundation
import Glibc

/// The one way enforcer writes instants as text, and reads back what it wrote: ISO 8601 in
/// the RFC 3339 shape (`2026-11-23T14:00:00Z`). Logs, plans, status, JSON and the state
/// directory all use it, so every instant enforcer prints can be pasted into `--at`.
/// Written by hand from the broken-down time: Foundation's formatters cost microseconds
/// each and are not safe to share between threads.
public enum ISO8601 {
    public enum Precision: Sendable {
        case seconds
        /// A deadline written with milliseconds is never cut short by rounding to the second.
        case milliseconds
    }

    /// `2026-11-23T14:00:00Z` (UTC), or with the zone's offset (`2026-11-23T09:00:00-05:00`).
    public static func string(_ date: Date, precision: Precision = .seconds, in zone: TimeZone? = nil) -> String {
        let seconds = date.timeIntervalSince1970
        let whole = seconds.rounded(.down)
        let offset = zone.map { $0.secondsFromGMT(for: date) } ?? 0
        var clock = time_t(whole) + time_t(offset)
        var parts = tm()
        gmtime_r(&clock, &parts)
        var text = "\(Int(parts.tm_year) + 1900, width: 4)-\(Int(parts.tm_mon) + 1, width: 2)-\(Int(parts.tm_mday), width: 2)"
        text += "T\(Int(parts.tm_hour), width: 2):\(Int(parts.tm_min), width: 2):\(Int(parts.tm_sec), width: 2)"
        if precision == .milliseconds {
            text += ".\(min(999, Int((seconds - whole) * 1000)), width: 3)"
        }
        if offset == 0 {
            text += "Z"
        } else {
            let sign = offset < 0 ? "-" : "+"
            text += "\(sign)\(abs(offset) / 3600, width: 2):\(abs(offset) % 3600 / 60, width: 2)"
        }
        return text
    }

    /// The instant of a text `string` wrote (and every other form `--at` takes; a text
    /// without an offset is read as UTC).
    public static func date(_ text: String) -> Date? {
        try? Instant.parse(text, defaultZone: TimeZone(identifier: "UTC")!)
    }
}

extension JSONEncoder.DateEncodingStrategy {
    /// Instants as `ISO8601.string` writes them (the text Foundation's `.iso8601` wrote at
    /// `.seconds`, so records written either way read back).
    public static func iso8601Text(_ precision: ISO8601.Precision = .seconds) -> Self {
        .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(ISO8601.string(date, precision: precision))
        }
    }
}

extension JSONDecoder.DateDecodingStrategy {
    /// Instants as `ISO8601.date` reads them, with or without fractions.
    public static var iso8601Text: Self {
        .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = ISO8601.date(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 instant: \(text)")
            }
            return date
        }
    }
}

/// Seconds on a clock that never jumps (CLOCK_MONOTONIC): timeouts, settle delays, phases.
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

extension DefaultStringInterpolation {
    /// `"\(7, width: 2)"` → `07`: decimal digits, zero-padded on the left to `width`.
    public mutating func appendInterpolation(_ value: some BinaryInteger, width: Int) {
        appendLiteral(ZeroPadded.string(value, width: width))
    }
}

/// Zero-padded decimal numbers (dates, generation folders); one place for it.
public enum ZeroPadded {
    public static func string(_ value: some BinaryInteger, width: Int, radix: Int = 10) -> String {
        let digits = String(value.magnitude, radix: radix)
        let padded = String(repeating: "0", count: max(0, width - digits.count)) + digits
        return value < 0 ? "-" + padded : padded
    }
}
