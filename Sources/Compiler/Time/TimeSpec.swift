import Foundation

/// A day of the week, numbered as ISO 8601 does (Monday is 1), which is also the order
/// time specs list days in.
public enum Weekday: Int, CaseIterable, Hashable, Sendable, Comparable {
    case mon = 1, tue, wed, thu, fri, sat, sun

    public static func < (a: Weekday, b: Weekday) -> Bool { a.rawValue < b.rawValue }

    /// The three-letter name canonical time specs use.
    public var name: String {
        switch self {
        case .mon: "mon"
        case .tue: "tue"
        case .wed: "wed"
        case .thu: "thu"
        case .fri: "fri"
        case .sat: "sat"
        case .sun: "sun"
        }
    }

    /// The following day; Sunday is followed by Monday.
    public var next: Weekday { Weekday(rawValue: rawValue % 7 + 1) ?? .mon }

    /// `from` through `to` going forward through the week, so `fri`…`mon` wraps the weekend.
    public static func range(from first: Weekday, to last: Weekday) -> Set<Weekday> {
        var days: Set<Weekday> = [first]
        var day = first
        while day != last {
            day = day.next
            days.insert(day)
        }
        return days
    }

    public static let weekdays: Set<Weekday> = [.mon, .tue, .wed, .thu, .fri]
    public static let weekends: Set<Weekday> = [.sat, .sun]
    public static let everyDay = Set(Weekday.allCases)
}

/// When something is in force during the week: `active-hours` and `time-window` values,
/// e.g. `mon-fri 08:00-18:00; sat 10:00-14:00`.
public struct TimeSpec: Hashable, Sendable, CustomStringConvertible {
    /// Days plus a wall-clock span. The span starts on each of `days`; when `end` is not
    /// after `start` it runs past midnight and ends on the following day.
    public struct Window: Hashable, Sendable {
        public var days: Set<Weekday>
        /// Minutes from midnight, 0..<1440.
        public var start: Int
        /// Minutes from midnight, 0...1440 (1440 is the next midnight); `end <= start` wraps.
        public var end: Int

        public init(days: Set<Weekday>, start: Int, end: Int) {
            self.days = days
            self.start = start
            self.end = end
        }

        /// Whether the window ends on the day after it starts.
        public var wraps: Bool { end <= start }
    }

    public var windows: [Window]

    public init(windows: [Window]) {
        self.windows = windows
    }

    // MARK: Evaluation

    /// How far ahead `nextFlip` looks, in local days. The pattern repeats weekly, so a week
    /// and a day would do, except that a DST day can swallow a short window whole (a
    /// `sun 02:00-03:00` window doesn't exist on a US spring-forward Sunday); two weeks
    /// plus a day still finds the following week's occurrence.
    static let lookaheadDays = 15

    public func contains(_ instant: Date, in zone: TimeZone) -> Bool {
        let clock = ZonedWallClock(zone)
        let today = clock.day(containing: instant)
        // A window starting two days back has ended by local midnight; a window starting
        // tomorrow normally begins after `instant`, but a fall-back across midnight could
        // make tomorrow's midnight come first, so look at it too.
        let second = instant.timeIntervalSince1970
        return spans(startingOn: (today - 1)...(today + 1), clock: clock).contains { span in
            TimeInterval(span.start) <= second && second < TimeInterval(span.end)
        }
    }

    /// The first instant strictly after `instant` at which `contains` changes value; nil
    /// if it never changes (e.g. `daily 00:00-24:00`).
    public func nextFlip(after instant: Date, in zone: TimeZone) -> Date? {
        let clock = ZonedWallClock(zone)
        let today = clock.day(containing: instant)
        let lastDay = today + Self.lookaheadDays
        let spans = spans(startingOn: (today - 1)...lastDay, clock: clock)
        // Spans starting after `lastDay` begin no earlier than the local midnight ending it,
        // so coverage is only known before that.
        let horizon = clock.instant(atLocalSeconds: ZonedWallClock.localSeconds(day: lastDay + 1, minutes: 0)).second
        let now = instant.timeIntervalSince1970

        // Sweep the boundaries in time order keeping a count of open spans; a flip is a
        // boundary where "any span open" differs from its value at `instant`. Boundaries
        // where one window hands over to another change the count but not that answer.
        var openCount = 0
        var changes: [Int: Int] = [:]
        for span in spans {
            if TimeInterval(span.start) <= now {
                if now < TimeInterval(span.end) { openCount += 1 }
                if TimeInterval(span.end) > now { changes[span.end, default: 0] -= 1 }
            } else {
                changes[span.start, default: 0] += 1
                changes[span.end, default: 0] -= 1
            }
        }
        let insideNow = openCount > 0
        for boundary in changes.keys.sorted() where boundary < horizon {
            openCount += changes[boundary, default: 0]
            if (openCount > 0) != insideNow {
                return Date(timeIntervalSince1970: TimeInterval(boundary))
            }
        }
        return nil
    }

    /// The concrete, non-empty spans (Unix seconds, end exclusive) of every window
    /// occurrence that starts on one of `days` (local day numbers).
    func spans(startingOn days: ClosedRange<Int>, clock: ZonedWallClock) -> [(start: Int, end: Int)] {
        var spans: [(start: Int, end: Int)] = []
        for day in days {
            let weekday = ZonedWallClock.weekday(ofDay: day)
            for window in windows where window.days.contains(weekday) {
                let endMinutes = window.wraps ? window.end + 24 * 60 : window.end
                let start = clock.instant(atLocalSeconds: ZonedWallClock.localSeconds(day: day, minutes: window.start)).second
                let end = clock.instant(atLocalSeconds: ZonedWallClock.localSeconds(day: day, minutes: endMinutes)).second
                // A window inside a spring-forward gap has no instants that day.
                if start < end { spans.append((start, end)) }
            }
        }
        return spans
    }

    // MARK: Canonical text

    /// The canonical form: windows in their given order separated by `; `, days as
    /// `daily` or ascending ranges and single days (`mon-fri`, `sat-mon`, `tue,thu`),
    /// times as `HH:MM` with `24:00` for a window ending at midnight. Any value `parse`
    /// returns parses back from its description to an equal value.
    public var description: String {
        windows.map { window in
            "\(Self.describe(window.days)) \(Self.clock(window.start))-\(Self.clock(window.end))"
        }.joined(separator: "; ")
    }

    static func describe(_ days: Set<Weekday>) -> String {
        if days == Weekday.everyDay { return "daily" }
        // Start reading the week just after a missing day so a run across Sunday→Monday
        // (fri-mon) is read as one run rather than cut in two.
        guard let missing = Weekday.allCases.first(where: { !days.contains($0) }) else { return "daily" }
        var runs: [(first: Weekday, last: Weekday)] = []
        var day = missing.next
        for _ in 0..<7 {
            if days.contains(day) {
                if let last = runs.last, last.last.next == day {
                    runs[runs.count - 1].last = day
                } else {
                    runs.append((day, day))
                }
            }
            day = day.next
        }
        return runs
            .sorted { $0.first < $1.first }
            .map { $0.first == $0.last ? $0.first.name : "\($0.first.name)-\($0.last.name)" }
            .joined(separator: ",")
    }

    static func clock(_ minutes: Int) -> String {
        let hours = minutes / 60, rest = minutes % 60
        return (hours < 10 ? "0" : "") + String(hours) + ":" + (rest < 10 ? "0" : "") + String(rest)
    }
}
