import Foundation

/// Points in time written in policy files (`expires`, `at`): the RFC 3339 shape of ISO 8601.
///
/// Accepted: `2026-11-23T14:00:00Z`, `2026-11-23T09:00:00-05:00`, offsets like `+05:30`,
/// optional fractional seconds (`14:00:00.25Z`), seconds optional (`2026-11-23T14:00`),
/// no offset (wall time in the default zone) and a date alone (midnight in the default
/// zone). A wall time the zone skips maps to the first instant after the gap; one it
/// repeats maps to its first occurrence, the same rule time specs use.
public enum Instant {
    public static func parse(_ text: String, defaultZone: TimeZone) throws(ValueError) -> Date {
        var parser = InstantParser(text)
        return try parser.parse(defaultZone: defaultZone)
    }
}

struct InstantParser {
    private var cursor: TimeTextCursor

    static let examples = "e.g. 2026-11-23, 2026-11-23T14:00 or 2026-11-23T14:00:00Z"

    init(_ text: String) {
        cursor = TimeTextCursor(text)
    }

    mutating func parse(defaultZone: TimeZone) throws(ValueError) -> Date {
        cursor.skipWhitespace()
        if cursor.atEnd {
            throw ValueError("empty instant (expected \(Self.examples))", at: cursor.position)
        }
        if let first = cursor.current, TimeTextCursor.digitValue(first) == nil {
            throw ValueError("bad instant '\(cursor.rest)' (expected \(Self.examples))", at: cursor.position)
        }

        let year = try field("year", digits: 4, in: 1...9999, expecting: "expected YYYY-MM-DD, e.g. 2026-11-23")
        try separator("-", after: "year", before: "month")
        let month = try field("month", digits: 2, in: 1...12, expecting: "expected 01 to 12")
        try separator("-", after: "month", before: "day")
        let dayOffset = cursor.position
        let day = try field("day", digits: 2, in: 1...31, expecting: "expected 01 to 31")
        let monthLength = CivilDate.daysInMonth(month, of: year)
        guard day <= monthLength else {
            throw ValueError("bad day '\(cursor.text(from: dayOffset, to: cursor.position))' (\(year, width: 4)-\(month, width: 2) has \(monthLength) days)", at: dayOffset)
        }
        let date = CivilDate.dayNumber(year: year, month: month, day: day)

        if cursor.rest.isEmpty {
            return Self.wallTime(ZonedWallClock.localSeconds(day: date, minutes: 0), fraction: 0, in: defaultZone)
        }
        guard cursor.skip("T") else {
            throw ValueError("unexpected '\(cursor.rest)' after the date (expected 'T' and a time, e.g. 2026-11-23T14:00)", at: cursor.position)
        }

        let hour = try field("hour", digits: 2, in: 0...23, expecting: "expected 00 to 23")
        try separator(":", after: "hour", before: "minute")
        let minute = try field("minute", digits: 2, in: 0...59, expecting: "expected 00 to 59")
        var second = 0
        var fraction = 0.0
        if cursor.skip(":") {
            second = try field("second", digits: 2, in: 0...59, expecting: "expected 00 to 59")
            if cursor.skip(".") {
                let digits = cursor.take { TimeTextCursor.digitValue($0) != nil }
                guard !digits.isEmpty else {
                    throw ValueError("missing digits after '.' in the seconds", at: cursor.position)
                }
                fraction = Double("0." + digits) ?? 0
            }
        }
        let local = ZonedWallClock.localSeconds(day: date, minutes: hour * 60 + minute) + second

        let offset = try utcOffset()
        if !cursor.rest.isEmpty {
            let expectation = offset == nil ? " (expected Z, ±HH:MM or nothing after the time)" : ""
            throw ValueError("unexpected '\(cursor.rest)' at the end of the instant\(expectation)", at: cursor.position)
        }
        guard let offset else {
            return Self.wallTime(local, fraction: fraction, in: defaultZone)
        }
        return Date(timeIntervalSince1970: TimeInterval(local - offset) + fraction)
    }

    /// `Z` or `±HH:MM` as seconds east of UTC; nil when neither is next.
    private mutating func utcOffset() throws(ValueError) -> Int? {
        if cursor.skip("Z") { return 0 }
        guard let sign = cursor.current, sign == "+" || sign == "-" else { return nil }
        let offset = cursor.position
        cursor.advance()
        let text = cursor.take { TimeTextCursor.digitValue($0) != nil || $0 == ":" }
        let characters = Array(text)
        guard characters.count == 5, characters[2] == ":",
              let h1 = TimeTextCursor.digitValue(characters[0]), let h2 = TimeTextCursor.digitValue(characters[1]),
              let m1 = TimeTextCursor.digitValue(characters[3]), let m2 = TimeTextCursor.digitValue(characters[4]),
              h1 * 10 + h2 <= 23, m1 * 10 + m2 <= 59
        else {
            throw ValueError("bad UTC offset '\(sign)\(text)' (expected Z or ±HH:MM, e.g. -05:00)", at: offset)
        }
        let seconds = (h1 * 10 + h2) * 3600 + (m1 * 10 + m2) * 60
        return sign == "-" ? -seconds : seconds
    }

    /// A fixed-width decimal field.
    private mutating func field(_ name: String, digits width: Int, in range: ClosedRange<Int>, expecting expectation: String) throws(ValueError) -> Int {
        let offset = cursor.position
        if cursor.atEnd {
            throw ValueError("missing \(name) (\(expectation))", at: offset)
        }
        let digits = cursor.take { TimeTextCursor.digitValue($0) != nil }
        guard digits.count == width else {
            // Quote the whole word when it isn't digits at all (`2026-ab-01`).
            let quoted = digits.isEmpty ? quoteHere() : digits
            throw ValueError("bad \(name) '\(quoted)' (\(expectation))", at: offset)
        }
        let value = digits.reduce(0) { $0 * 10 + (TimeTextCursor.digitValue($1) ?? 0) }
        guard range.contains(value) else {
            let bounds = "expected \(range.lowerBound, width: width) to \(range.upperBound, width: width)"
            throw ValueError("bad \(name) '\(digits)' (\(bounds))", at: offset)
        }
        return value
    }

    private mutating func separator(_ character: Character, after previous: String, before next: String) throws(ValueError) {
        if cursor.skip(character) { return }
        if cursor.atEnd {
            throw ValueError("missing \(next) after the \(previous) (expected '\(character)' then the \(next))", at: cursor.position)
        }
        throw ValueError("expected '\(character)' after the \(previous), found '\(quoteHere())'", at: cursor.position)
    }

    private func quoteHere() -> String {
        let word = cursor.peek { $0.isLetter || $0.isNumber }
        return word.isEmpty ? cursor.current.map { String($0) } ?? "" : word
    }

    private static func wallTime(_ local: Int, fraction: Double, in zone: TimeZone) -> Date {
        let resolved = ZonedWallClock(zone).instant(atLocalSeconds: local)
        // A skipped wall time lands exactly on the end of the gap; a fraction of a second
        // into a time that never existed means nothing there.
        return Date(timeIntervalSince1970: TimeInterval(resolved.second) + (resolved.exists ? fraction : 0))
    }
}

/// Proleptic Gregorian calendar dates as day numbers (days since 1970-01-01), for parsing
/// dates written in policy files. Plain arithmetic: dates have no zone.
enum CivilDate {
    static func isLeapYear(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(_ month: Int, of year: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 for a valid date with year 1 or later.
    static func dayNumber(year: Int, month: Int, day: Int) -> Int {
        let priorYears = year - 1
        // Days from 0001-01-01 to the start of `year`: 365 a year plus the leap days.
        let daysBeforeYear = 365 * priorYears + priorYears / 4 - priorYears / 100 + priorYears / 400
        var daysBeforeMonth = 0
        for earlier in stride(from: 1, to: month, by: 1) {
            daysBeforeMonth += daysInMonth(earlier, of: year)
        }
        let daysFromYearOneToEpoch = 719_162
        return daysBeforeYear + daysBeforeMonth + (day - 1) - daysFromYearOneToEpoch
    }
}
