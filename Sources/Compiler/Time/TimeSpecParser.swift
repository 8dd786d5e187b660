extension TimeSpec {
    /// Parses `WINDOW (; WINDOW)*`, each window `DAYS HH:MM-HH:MM`, where DAYS is a comma
    /// list of `daily`, `weekdays`, `weekends`, a day (`mon`, `Monday`) or a day range
    /// (`mon-fri`, `fri-mon` wrapping). Whitespace is allowed around `;`, `,` and `-`.
    public static func parse(_ text: String) throws(ValueError) -> TimeSpec {
        var parser = TimeSpecParser(text)
        return try parser.parseSpec()
    }
}

/// Recursive descent over one time spec; every error carries the offset where the
/// offending text starts.
struct TimeSpecParser {
    private var cursor: TimeTextCursor

    static let expectedDays = "expected mon…sun, daily, weekdays or weekends"
    static let example = "e.g. 'mon-fri 08:00-18:00'"

    init(_ text: String) {
        cursor = TimeTextCursor(text)
    }

    mutating func parseSpec() throws(ValueError) -> TimeSpec {
        cursor.skipWhitespace()
        if cursor.atEnd {
            throw ValueError("empty time spec (expected \(Self.example))", at: cursor.position)
        }
        var windows = [try parseWindow()]
        while true {
            cursor.skipWhitespace()
            if cursor.atEnd { break }
            guard cursor.skip(";") else {
                let extra = cursor.peek { !$0.isWhitespace && $0 != ";" }
                throw ValueError("unexpected '\(extra)' after a window (separate windows with ';')", at: cursor.position)
            }
            cursor.skipWhitespace()
            if cursor.atEnd || cursor.isAt(";") {
                throw ValueError("missing window after ';' (expected \(Self.example))", at: cursor.position)
            }
            windows.append(try parseWindow())
        }
        return TimeSpec(windows: windows)
    }

    private mutating func parseWindow() throws(ValueError) -> TimeSpec.Window {
        guard let first = cursor.current, first.isLetter else {
            let found = quoteHere()
            throw ValueError("missing days before '\(found)' (\(Self.expectedDays))", at: cursor.position)
        }
        let days = try parseDays()

        cursor.skipWhitespace()
        if cursor.atEnd || cursor.isAt(";") {
            throw ValueError("missing time range after the days (expected HH:MM-HH:MM, \(Self.example))", at: cursor.position)
        }
        if let next = cursor.current, next.isLetter {
            let found = cursor.peek(while: Self.isWordCharacter)
            throw ValueError("expected a start time, found '\(found)' (separate days with ',')", at: cursor.position)
        }
        let startOffset = cursor.position
        let start = try parseTime(isEnd: false)

        cursor.skipWhitespace()
        guard cursor.skip("-") else {
            if cursor.atEnd || cursor.isAt(";") {
                throw ValueError("missing end time (expected HH:MM-HH:MM)", at: cursor.position)
            }
            let found = quoteHere()
            throw ValueError("expected '-' between start and end time, found '\(found)'", at: cursor.position)
        }
        cursor.skipWhitespace()
        if cursor.atEnd || cursor.isAt(";") || cursor.isAt(",") || cursor.isAt("-") {
            throw ValueError("missing end time after '-' (expected HH:MM-HH:MM)", at: cursor.position)
        }
        let end = try parseTime(isEnd: true)

        if start == end {
            throw ValueError("empty window: start equals end; use 00:00-24:00 for a whole day", at: startOffset)
        }
        return TimeSpec.Window(days: days, start: start, end: end)
    }

    /// A comma list of day items; each item a day, a day range or a group name.
    private mutating func parseDays() throws(ValueError) -> Set<Weekday> {
        var days = Set<Weekday>()
        while true {
            let itemOffset = cursor.position
            let first = try parseDayName()
            cursor.skipWhitespace()
            if cursor.skip("-") {
                cursor.skipWhitespace()
                guard let next = cursor.current, next.isLetter else {
                    throw ValueError("missing day after '-' in day range (\(Self.expectedDays))", at: cursor.position)
                }
                let last = try parseDayName()
                let rangeText = cursor.text(from: itemOffset, to: cursor.position)
                guard case .day(let from) = first, case .day(let to) = last else {
                    throw ValueError("bad day range '\(rangeText)' (a range joins two days, e.g. mon-fri)", at: itemOffset)
                }
                guard from != to else {
                    throw ValueError("day range '\(rangeText)' starts and ends on the same day (write '\(from.name)', or 'daily' for every day)", at: itemOffset)
                }
                days.formUnion(Weekday.range(from: from, to: to))
                cursor.skipWhitespace()
            } else {
                days.formUnion(first.days)
            }
            guard cursor.skip(",") else { return days }
            cursor.skipWhitespace()
            guard let next = cursor.current, next.isLetter else {
                throw ValueError("missing day after ',' (\(Self.expectedDays))", at: cursor.position)
            }
        }
    }

    private enum DayName {
        case day(Weekday)
        case group(Set<Weekday>)

        var days: Set<Weekday> {
            switch self {
            case .day(let day): [day]
            case .group(let days): days
            }
        }
    }

    private static let dayNames: [String: DayName] = {
        var names: [String: DayName] = [
            "daily": .group(Weekday.everyDay),
            "weekdays": .group(Weekday.weekdays),
            "weekends": .group(Weekday.weekends),
        ]
        let fullNames: [Weekday: String] = [
            .mon: "monday", .tue: "tuesday", .wed: "wednesday", .thu: "thursday",
            .fri: "friday", .sat: "saturday", .sun: "sunday",
        ]
        for day in Weekday.allCases {
            names[day.name] = .day(day)
            if let full = fullNames[day] { names[full] = .day(day) }
        }
        return names
    }()

    private mutating func parseDayName() throws(ValueError) -> DayName {
        let offset = cursor.position
        // Letters and digits together, so `tue1` is quoted whole as an unknown day.
        let word = cursor.take(while: Self.isWordCharacter)
        guard let name = Self.dayNames[word.lowercased()] else {
            throw ValueError("unknown day '\(word)' (\(Self.expectedDays))", at: offset)
        }
        return name
    }

    /// `HH:MM` as minutes from midnight; `24:00` (1440) only as an end.
    private mutating func parseTime(isEnd: Bool) throws(ValueError) -> Int {
        let offset = cursor.position
        let text = cursor.take(while: Self.isTimeCharacter)
        let range = isEnd ? "00:00 to 24:00" : "00:00 to 23:59"
        let bad = ValueError("bad time '\(text)' (expected HH:MM, \(range))", at: offset)
        let characters = Array(text)
        guard characters.count == 5, characters[2] == ":",
              let h1 = TimeTextCursor.digitValue(characters[0]), let h2 = TimeTextCursor.digitValue(characters[1]),
              let m1 = TimeTextCursor.digitValue(characters[3]), let m2 = TimeTextCursor.digitValue(characters[4])
        else { throw bad }
        let hours = h1 * 10 + h2, minutes = m1 * 10 + m2
        if hours == 24 && minutes == 0 {
            guard isEnd else {
                throw ValueError("bad time '\(text)' (24:00 is only allowed as an end time)", at: offset)
            }
            return 24 * 60
        }
        guard hours <= 23, minutes <= 59 else { throw bad }
        return hours * 60 + minutes
    }

    /// The token at the cursor, or the lone separator character there, for quoting.
    private func quoteHere() -> String {
        let token = cursor.peek(while: Self.isTimeCharacter)
        return token.isEmpty ? cursor.current.map { String($0) } ?? "" : token
    }

    /// What a time token may contain when quoting it: everything up to a separator.
    private static func isTimeCharacter(_ character: Character) -> Bool {
        !character.isWhitespace && character != "-" && character != ";" && character != ","
    }

    private static func isWordCharacter(_ character: Character) -> Bool {
        character.isLetter || character.isNumber
    }
}
