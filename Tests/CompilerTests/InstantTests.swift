import Foundation
import Testing
@testable import Compiler

@Suite struct InstantTests {
    private static func zone(_ identifier: String) throws -> TimeZone {
        try #require(TimeZone(identifier: identifier))
    }

    // text, default zone, expected Unix seconds
    @Test(arguments: [
        ("2026-11-23T14:00:00Z", "UTC", 1_795_442_400.0),
        ("2026-11-23T14:00:00Z", "America/New_York", 1_795_442_400.0),  // an offset beats the default zone
        ("2026-11-23T09:00:00-05:00", "UTC", 1_795_442_400.0),
        ("2026-11-23T19:30:00+05:30", "UTC", 1_795_442_400.0),
        ("2026-11-23T14:00:00-00:00", "Europe/Berlin", 1_795_442_400.0),
        ("2026-11-23T14:00:00.5Z", "UTC", 1_795_442_400.5),
        ("2026-11-23T14:00:00.125+00:00", "UTC", 1_795_442_400.125),
        ("2026-11-23T14:00Z", "UTC", 1_795_442_400.0),
        ("2026-11-23T09:00-05:00", "UTC", 1_795_442_400.0),
        ("2026-11-23T14:00", "UTC", 1_795_442_400.0),
        ("2026-11-23T14:00", "America/New_York", 1_795_460_400.0),
        ("2026-11-23T14:00:00", "Europe/Berlin", 1_795_438_800.0),
        ("2026-11-23T14:00:00.25", "UTC", 1_795_442_400.25),
        ("2026-11-23", "UTC", 1_795_392_000.0),
        ("2026-11-23", "America/New_York", 1_795_410_000.0),
        ("  2026-11-23T14:00:00Z  ", "UTC", 1_795_442_400.0),
        ("2026-03-08T02:30", "America/New_York", 1_772_953_200.0),  // skipped: first instant after the gap
        ("2026-03-08T02:30:15.5", "America/New_York", 1_772_953_200.0),  // a fraction of a missing second is dropped
        ("2026-11-01T01:30", "America/New_York", 1_793_511_000.0),  // repeated: first occurrence (EDT)
        ("2026-09-06", "America/Santiago", 1_788_667_200.0),  // midnight skipped: 01:00 -03
        ("2024-02-29T00:00:00Z", "UTC", 1_709_164_800.0),
        ("2000-02-29", "UTC", 951_782_400.0),
        ("1970-01-01T00:00:00Z", "UTC", 0.0),
        ("9999-12-31T23:59:59Z", "UTC", 253_402_300_799.0),
        ("0001-01-01T00:00:00Z", "UTC", -62_135_596_800.0),
    ])
    func parses(text: String, zone: String, seconds: Double) throws {
        let instant = try Instant.parse(text, defaultZone: Self.zone(zone))
        #expect(instant.timeIntervalSince1970 == seconds)
    }

    // text, message, offset
    @Test(arguments: [
        ("", "empty instant (expected e.g. 2026-11-23, 2026-11-23T14:00 or 2026-11-23T14:00:00Z)", 0),
        ("   ", "empty instant (expected e.g. 2026-11-23, 2026-11-23T14:00 or 2026-11-23T14:00:00Z)", 3),
        ("now", "bad instant 'now' (expected e.g. 2026-11-23, 2026-11-23T14:00 or 2026-11-23T14:00:00Z)", 0),
        ("26-11-23", "bad year '26' (expected YYYY-MM-DD, e.g. 2026-11-23)", 0),
        ("20261123", "bad year '20261123' (expected YYYY-MM-DD, e.g. 2026-11-23)", 0),
        ("0000-01-01", "bad year '0000' (expected 0001 to 9999)", 0),
        ("2026/11/23", "expected '-' after the year, found '/'", 4),
        ("2026", "missing month after the year (expected '-' then the month)", 4),
        ("2026-13-01", "bad month '13' (expected 01 to 12)", 5),
        ("2026-00-10", "bad month '00' (expected 01 to 12)", 5),
        ("2026-1-23", "bad month '1' (expected 01 to 12)", 5),
        ("2026-ab-01", "bad month 'ab' (expected 01 to 12)", 5),
        ("2026-11", "missing day after the month (expected '-' then the day)", 7),
        ("2026-11-", "missing day (expected 01 to 31)", 8),
        ("2026-11-32", "bad day '32' (expected 01 to 31)", 8),
        ("2026-11-00", "bad day '00' (expected 01 to 31)", 8),
        ("2026-04-31", "bad day '31' (2026-04 has 30 days)", 8),
        ("2026-02-29", "bad day '29' (2026-02 has 28 days)", 8),
        ("1900-02-29", "bad day '29' (1900-02 has 28 days)", 8),
        ("2026-11-23 14:00", "unexpected ' 14:00' after the date (expected 'T' and a time, e.g. 2026-11-23T14:00)", 10),
        ("2026-11-23t14:00", "unexpected 't14:00' after the date (expected 'T' and a time, e.g. 2026-11-23T14:00)", 10),
        ("2026-11-23T", "missing hour (expected 00 to 23)", 11),
        ("2026-11-23T14", "missing minute after the hour (expected ':' then the minute)", 13),
        ("2026-11-23T1400", "bad hour '1400' (expected 00 to 23)", 11),
        ("2026-11-23T24:00", "bad hour '24' (expected 00 to 23)", 11),
        ("2026-11-23T14:60", "bad minute '60' (expected 00 to 59)", 14),
        ("2026-11-23T14:00:60Z", "bad second '60' (expected 00 to 59)", 17),
        ("2026-11-23T14:00:", "missing second (expected 00 to 59)", 17),
        ("2026-11-23T14:00:00.", "missing digits after '.' in the seconds", 20),
        ("2026-11-23T14:00:00.Z", "missing digits after '.' in the seconds", 20),
        ("2026-11-23T14:00.5Z", "unexpected '.5Z' at the end of the instant (expected Z, ±HH:MM or nothing after the time)", 16),
        ("2026-11-23T14:00:00+0530", "bad UTC offset '+0530' (expected Z or ±HH:MM, e.g. -05:00)", 19),
        ("2026-11-23T14:00:00+05", "bad UTC offset '+05' (expected Z or ±HH:MM, e.g. -05:00)", 19),
        ("2026-11-23T14:00:00+24:00", "bad UTC offset '+24:00' (expected Z or ±HH:MM, e.g. -05:00)", 19),
        ("2026-11-23T14:00:00-05:60", "bad UTC offset '-05:60' (expected Z or ±HH:MM, e.g. -05:00)", 19),
        ("2026-11-23T14:00:00Zjunk", "unexpected 'junk' at the end of the instant", 20),
        ("2026-11-23T14:00:00z", "unexpected 'z' at the end of the instant (expected Z, ±HH:MM or nothing after the time)", 19),
        ("2026-11-23T14:00:00 EST", "unexpected ' EST' at the end of the instant (expected Z, ±HH:MM or nothing after the time)", 19),
        ("2026-11-23T14:00:00Z+01:00", "unexpected '+01:00' at the end of the instant", 20),
    ])
    func rejects(text: String, message: String, offset: Int) throws {
        let error = #expect(throws: ValueError.self) { try Instant.parse(text, defaultZone: Self.zone("UTC")) }
        #expect(error?.message == message)
        #expect(error?.offset == offset)
    }

    /// Day numbering is checked against Foundation's Gregorian calendar (which agrees with
    /// the proleptic one from 1582 on).
    @Test(arguments: [
        "1970-01-01", "1969-12-31", "1600-02-29", "1700-03-01", "1900-03-01", "2000-02-29",
        "2000-03-01", "2026-01-01", "2026-11-23", "2100-02-28", "2400-12-31", "9999-12-31",
    ])
    func dayNumbersMatchFoundation(date: String) throws {
        let fields = date.split(separator: "-").compactMap { Int($0) }
        try #require(fields.count == 3)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try Self.zone("UTC")
        let foundation = try #require(calendar.date(from: DateComponents(year: fields[0], month: fields[1], day: fields[2])))
        let days = CivilDate.dayNumber(year: fields[0], month: fields[1], day: fields[2])
        #expect(TimeInterval(days * 86_400) == foundation.timeIntervalSince1970)
    }
}
