import Foundation
import Testing
@testable import Compiler

@Suite struct TimeSpecTests {
    private static func zone(_ identifier: String) throws -> TimeZone {
        try #require(TimeZone(identifier: identifier))
    }

    /// Instants in tables are written in UTC and read by Foundation's own ISO 8601
    /// formatter, so these tests don't lean on `Instant.parse`.
    private static func utc(_ text: String) throws -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = text.contains(".") ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return try #require(formatter.date(from: text), "bad test instant \(text)")
    }

    private static func utcText(_ date: Date?) -> String {
        guard let date else { return "nil" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    // MARK: Parsing

    // text, canonical description
    @Test(arguments: [
        ("mon-fri 08:00-18:00", "mon-fri 08:00-18:00"),
        ("weekdays 08:00-18:00", "mon-fri 08:00-18:00"),
        ("weekends 10:00-14:00", "sat-sun 10:00-14:00"),
        ("daily 22:00-06:00", "daily 22:00-06:00"),
        ("daily 00:00-24:00", "daily 00:00-24:00"),
        ("fri 22:00-02:00", "fri 22:00-02:00"),
        ("fri-mon 09:00-17:00", "fri-mon 09:00-17:00"),
        ("tue-mon 09:00-17:00", "daily 09:00-17:00"),
        ("mon-sun 09:00-17:00", "daily 09:00-17:00"),
        ("weekdays,weekends 09:00-17:00", "daily 09:00-17:00"),
        ("weekends,fri 18:00-02:00", "fri-sun 18:00-02:00"),
        ("mon-wed,fri 08:00-18:00", "mon-wed,fri 08:00-18:00"),
        ("mon,wed,fri 10:00-11:00", "mon,wed,fri 10:00-11:00"),
        ("sun,sat 10:00-11:00", "sat-sun 10:00-11:00"),
        ("sun,mon 10:00-11:00", "sun-mon 10:00-11:00"),
        ("sat-mon,wed 10:00-11:00", "wed,sat-mon 10:00-11:00"),
        ("mon,mon-tue 10:00-11:00", "mon-tue 10:00-11:00"),
        ("Monday,WED-Fri 08:00-18:00", "mon,wed-fri 08:00-18:00"),
        ("thursday 00:00-00:01", "thu 00:00-00:01"),
        ("DAILY 23:59-00:00", "daily 23:59-00:00"),
        ("sun 23:00-24:00", "sun 23:00-24:00"),
        ("mon\t08:00-18:00", "mon 08:00-18:00"),
        ("  mon - fri   08:00 - 18:00 ;  sat 10:00-12:00  ", "mon-fri 08:00-18:00; sat 10:00-12:00"),
        ("mon , tue-thu , sat 08:00-09:00", "mon-thu,sat 08:00-09:00"),
        ("mon 08:00-18:00;tue 09:00-10:00", "mon 08:00-18:00; tue 09:00-10:00"),
        ("tue 09:00-10:00; mon 08:00-18:00", "tue 09:00-10:00; mon 08:00-18:00"),
    ])
    func parsesToCanonicalForm(text: String, canonical: String) throws {
        let spec = try TimeSpec.parse(text)
        #expect(spec.description == canonical)
        // The canonical form must read back as the same value.
        #expect(try TimeSpec.parse(canonical) == spec)
    }

    // text, days, start minute, end minute (single-window specs)
    @Test(arguments: [
        ("mon-fri 08:00-18:00", [Weekday.mon, .tue, .wed, .thu, .fri], 480, 1080),
        ("fri-mon 09:30-17:45", [.fri, .sat, .sun, .mon], 570, 1065),
        ("weekends 00:00-24:00", [.sat, .sun], 0, 1440),
        ("daily 22:00-06:00", Weekday.allCases, 1320, 360),
        ("Sunday 23:59-00:00", [.sun], 1439, 0),
        ("sat-sun,tue 12:00-13:00", [.tue, .sat, .sun], 720, 780),
    ])
    func parsesWindowFields(text: String, days: [Weekday], start: Int, end: Int) throws {
        let spec = try TimeSpec.parse(text)
        #expect(spec.windows == [TimeSpec.Window(days: Set(days), start: start, end: end)])
    }

    @Test func wrapsIsEndNotAfterStart() {
        #expect(TimeSpec.Window(days: [.mon], start: 1320, end: 360).wraps)
        #expect(!TimeSpec.Window(days: [.mon], start: 0, end: 1440).wraps)
        #expect(!TimeSpec.Window(days: [.mon], start: 480, end: 1080).wraps)
    }

    // text, message, offset of the offending text
    @Test(arguments: [
        ("", "empty time spec (expected e.g. 'mon-fri 08:00-18:00')", 0),
        ("   ", "empty time spec (expected e.g. 'mon-fri 08:00-18:00')", 3),
        ("tuesdy 08:00-09:00", "unknown day 'tuesdy' (expected mon…sun, daily, weekdays or weekends)", 0),
        ("mon-tuesdy 08:00-09:00", "unknown day 'tuesdy' (expected mon…sun, daily, weekdays or weekends)", 4),
        ("mon,tue1 08:00-09:00", "unknown day 'tue1' (expected mon…sun, daily, weekdays or weekends)", 4),
        ("mon 08:00-09:00; dié 10:00-11:00", "unknown day 'dié' (expected mon…sun, daily, weekdays or weekends)", 17),
        ("mon 08:00-09:00 ; tuesdy 10:00-11:00", "unknown day 'tuesdy' (expected mon…sun, daily, weekdays or weekends)", 18),
        ("08:00-18:00", "missing days before '08:00' (expected mon…sun, daily, weekdays or weekends)", 0),
        ("; mon 08:00-09:00", "missing days before ';' (expected mon…sun, daily, weekdays or weekends)", 0),
        ("mon", "missing time range after the days (expected HH:MM-HH:MM, e.g. 'mon-fri 08:00-18:00')", 3),
        ("mon-fri ; sat 08:00-09:00", "missing time range after the days (expected HH:MM-HH:MM, e.g. 'mon-fri 08:00-18:00')", 8),
        ("mon fri 08:00-09:00", "expected a start time, found 'fri' (separate days with ',')", 4),
        ("mon,,tue 08:00-09:00", "missing day after ',' (expected mon…sun, daily, weekdays or weekends)", 4),
        ("mon-fri, 08:00-09:00", "missing day after ',' (expected mon…sun, daily, weekdays or weekends)", 9),
        ("mon- 08:00-09:00", "missing day after '-' in day range (expected mon…sun, daily, weekdays or weekends)", 5),
        ("daily-fri 08:00-09:00", "bad day range 'daily-fri' (a range joins two days, e.g. mon-fri)", 0),
        ("sat,mon - weekends 08:00-09:00", "bad day range 'mon - weekends' (a range joins two days, e.g. mon-fri)", 4),
        ("mon-mon 08:00-09:00", "day range 'mon-mon' starts and ends on the same day (write 'mon', or 'daily' for every day)", 0),
        ("mon-monday 08:00-09:00", "day range 'mon-monday' starts and ends on the same day (write 'mon', or 'daily' for every day)", 0),
        ("mon 25:00-26:00", "bad time '25:00' (expected HH:MM, 00:00 to 23:59)", 4),
        ("mon 08:60-09:00", "bad time '08:60' (expected HH:MM, 00:00 to 23:59)", 4),
        ("mon 8:00-09:00", "bad time '8:00' (expected HH:MM, 00:00 to 23:59)", 4),
        ("mon 0800-0900", "bad time '0800' (expected HH:MM, 00:00 to 23:59)", 4),
        ("mon 08:00:00-09:00", "bad time '08:00:00' (expected HH:MM, 00:00 to 23:59)", 4),
        ("mon ٠٨:٠٠-09:00", "bad time '٠٨:٠٠' (expected HH:MM, 00:00 to 23:59)", 4),
        ("mon 24:00-06:00", "bad time '24:00' (24:00 is only allowed as an end time)", 4),
        ("mon 08:00-9:00", "bad time '9:00' (expected HH:MM, 00:00 to 24:00)", 10),
        ("mon 08:00-24:01", "bad time '24:01' (expected HH:MM, 00:00 to 24:00)", 10),
        ("mon 08:00-18:00x", "bad time '18:00x' (expected HH:MM, 00:00 to 24:00)", 10),
        ("tue 08:00-09:00; wed 9-10", "bad time '9' (expected HH:MM, 00:00 to 23:59)", 21),
        ("mon 08:00-08:00", "empty window: start equals end; use 00:00-24:00 for a whole day", 4),
        ("mon 00:00-00:00", "empty window: start equals end; use 00:00-24:00 for a whole day", 4),
        ("sat 10:00-11:00; mon  08:00 - 08:00", "empty window: start equals end; use 00:00-24:00 for a whole day", 22),
        ("mon 08:00", "missing end time (expected HH:MM-HH:MM)", 9),
        ("mon 08:00 ; tue 09:00-10:00", "missing end time (expected HH:MM-HH:MM)", 10),
        ("mon 08:00-", "missing end time after '-' (expected HH:MM-HH:MM)", 10),
        ("mon 08:00--09:00", "missing end time after '-' (expected HH:MM-HH:MM)", 10),
        ("mon 08:00 - ; tue 09:00-10:00", "missing end time after '-' (expected HH:MM-HH:MM)", 12),
        ("mon 08:00 18:00", "expected '-' between start and end time, found '18:00'", 10),
        ("mon 08:00,09:00", "expected '-' between start and end time, found ','", 9),
        ("mon 08:00-18:00;", "missing window after ';' (expected e.g. 'mon-fri 08:00-18:00')", 16),
        ("mon 08:00-18:00 ; ", "missing window after ';' (expected e.g. 'mon-fri 08:00-18:00')", 18),
        ("mon 08:00-18:00;;tue 09:00-10:00", "missing window after ';' (expected e.g. 'mon-fri 08:00-18:00')", 16),
        ("mon 08:00-18:00 tue 09:00-10:00", "unexpected 'tue' after a window (separate windows with ';')", 16),
        ("mon 08:00-18:00, tue 09:00-10:00", "unexpected ',' after a window (separate windows with ';')", 15),
    ])
    func rejects(text: String, message: String, offset: Int) {
        let error = #expect(throws: ValueError.self) { try TimeSpec.parse(text) }
        #expect(error?.message == message)
        #expect(error?.offset == offset)
    }

    // MARK: Containment

    // spec, zone, instant (UTC), inside?
    @Test(arguments: [
        // Wrapping past midnight (Wed 2026-06-03 in UTC).
        ("daily 22:00-06:00", "UTC", "2026-06-03T23:00:00Z", true),
        ("daily 22:00-06:00", "UTC", "2026-06-03T05:59:00Z", true),
        ("daily 22:00-06:00", "UTC", "2026-06-03T06:00:00Z", false),
        ("daily 22:00-06:00", "UTC", "2026-06-03T21:59:59Z", false),
        ("daily 22:00-06:00", "UTC", "2026-06-03T22:00:00Z", true),
        // A wrapping window belongs to the day it starts (Fri 2026-06-05).
        ("fri 22:00-02:00", "UTC", "2026-06-05T21:59:00Z", false),
        ("fri 22:00-02:00", "UTC", "2026-06-05T22:00:00Z", true),
        ("fri 22:00-02:00", "UTC", "2026-06-06T01:00:00Z", true),
        ("fri 22:00-02:00", "UTC", "2026-06-06T02:00:00Z", false),
        ("fri 22:00-02:00", "UTC", "2026-06-06T22:30:00Z", false),
        ("fri 22:00-02:00", "UTC", "2026-06-05T01:00:00Z", false),
        ("sun 23:00-01:00", "UTC", "2026-06-08T00:30:00Z", true),  // Sunday's window runs into Monday
        ("sun 23:00-01:00", "UTC", "2026-06-01T00:30:00Z", true),
        ("sun 23:00-01:00", "UTC", "2026-06-01T23:30:00Z", false),
        // Day ranges that wrap the week.
        ("fri-mon 09:00-17:00", "UTC", "2026-06-05T12:00:00Z", true),
        ("fri-mon 09:00-17:00", "UTC", "2026-06-06T12:00:00Z", true),
        ("fri-mon 09:00-17:00", "UTC", "2026-06-07T12:00:00Z", true),
        ("fri-mon 09:00-17:00", "UTC", "2026-06-08T12:00:00Z", true),
        ("fri-mon 09:00-17:00", "UTC", "2026-06-02T12:00:00Z", false),
        ("fri-mon 09:00-17:00", "UTC", "2026-06-04T12:00:00Z", false),
        // Comma lists with ranges.
        ("mon,wed-thu,sat 10:00-11:00", "UTC", "2026-06-01T10:30:00Z", true),
        ("mon,wed-thu,sat 10:00-11:00", "UTC", "2026-06-02T10:30:00Z", false),
        ("mon,wed-thu,sat 10:00-11:00", "UTC", "2026-06-03T10:30:00Z", true),
        ("mon,wed-thu,sat 10:00-11:00", "UTC", "2026-06-04T10:30:00Z", true),
        ("mon,wed-thu,sat 10:00-11:00", "UTC", "2026-06-05T10:30:00Z", false),
        ("mon,wed-thu,sat 10:00-11:00", "UTC", "2026-06-06T10:30:00Z", true),
        ("mon,wed-thu,sat 10:00-11:00", "UTC", "2026-06-07T10:30:00Z", false),
        ("weekends 10:00-11:00", "UTC", "2026-06-06T10:30:00Z", true),
        ("weekdays 10:00-11:00", "UTC", "2026-06-06T10:30:00Z", false),
        // Start included, end excluded.
        ("mon-fri 08:00-18:00", "UTC", "2026-06-01T07:59:59Z", false),
        ("mon-fri 08:00-18:00", "UTC", "2026-06-01T08:00:00Z", true),
        ("mon-fri 08:00-18:00", "UTC", "2026-06-01T17:59:59.999Z", true),
        ("mon-fri 08:00-18:00", "UTC", "2026-06-01T18:00:00Z", false),
        // Whole days.
        ("daily 00:00-24:00", "UTC", "2026-06-01T00:00:00Z", true),
        ("daily 00:00-24:00", "UTC", "2026-06-07T23:59:59Z", true),
        ("mon 00:00-24:00", "UTC", "2026-06-01T00:00:00Z", true),
        ("mon 00:00-24:00", "UTC", "2026-06-01T23:59:59Z", true),
        ("mon 00:00-24:00", "UTC", "2026-06-02T00:00:00Z", false),
        ("mon 00:00-24:00", "UTC", "2026-05-31T23:59:59Z", false),
        ("sun 23:00-24:00", "UTC", "2026-06-07T23:30:00Z", true),
        ("sun 23:00-24:00", "UTC", "2026-06-08T00:00:00Z", false),
        // Several windows.
        ("mon 08:00-09:00; tue 10:00-11:00", "UTC", "2026-06-01T08:30:00Z", true),
        ("mon 08:00-09:00; tue 10:00-11:00", "UTC", "2026-06-02T10:30:00Z", true),
        ("mon 08:00-09:00; tue 10:00-11:00", "UTC", "2026-06-02T08:30:00Z", false),
        // A fixed-offset zone shifts everything.
        ("mon-fri 08:00-18:00", "Asia/Kolkata", "2026-06-01T02:30:00Z", true),
        ("mon-fri 08:00-18:00", "Asia/Kolkata", "2026-06-01T02:29:00Z", false),
        // New York, spring forward on Sun 2026-03-08 (02:00 EST → 03:00 EDT).
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-06T12:59:00Z", false),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-06T13:00:00Z", true),  // Fri 08:00 EST
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-06T22:59:00Z", true),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-06T23:00:00Z", false),  // Fri 18:00 EST
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-08T15:00:00Z", false),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-09T11:59:00Z", false),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-09T12:00:00Z", true),  // Mon 08:00 EDT
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-09T21:59:00Z", true),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-09T22:00:00Z", false),  // Mon 18:00 EDT
        // New York, fall back on Sun 2026-11-01 (02:00 EDT → 01:00 EST).
        ("mon-fri 08:00-18:00", "America/New_York", "2026-10-30T11:59:00Z", false),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-10-30T12:00:00Z", true),  // Fri 08:00 EDT
        ("mon-fri 08:00-18:00", "America/New_York", "2026-11-02T12:59:00Z", false),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-11-02T13:00:00Z", true),  // Mon 08:00 EST
        ("mon-fri 08:00-18:00", "America/New_York", "2026-11-02T22:59:00Z", true),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-11-02T23:00:00Z", false),
        // A window starting in the spring-forward gap opens when the gap ends (03:00 EDT).
        ("sun 02:30-03:30", "America/New_York", "2026-03-08T06:59:00Z", false),
        ("sun 02:30-03:30", "America/New_York", "2026-03-08T07:00:00Z", true),
        ("sun 02:30-03:30", "America/New_York", "2026-03-08T07:29:00Z", true),
        ("sun 02:30-03:30", "America/New_York", "2026-03-08T07:30:00Z", false),
        ("sun 02:30-03:30", "America/New_York", "2026-03-15T06:29:00Z", false),  // a normal Sunday: a full hour
        ("sun 02:30-03:30", "America/New_York", "2026-03-15T06:30:00Z", true),
        ("sun 02:30-03:30", "America/New_York", "2026-03-15T07:29:00Z", true),
        // A window wholly inside the gap doesn't happen that day.
        ("sun 02:00-02:30", "America/New_York", "2026-03-08T06:59:59Z", false),
        ("sun 02:00-02:30", "America/New_York", "2026-03-08T07:00:00Z", false),
        // An overnight window across spring forward ends at 06:00 EDT.
        ("daily 22:00-06:00", "America/New_York", "2026-03-08T02:59:00Z", false),
        ("daily 22:00-06:00", "America/New_York", "2026-03-08T03:00:00Z", true),  // Sat 22:00 EST
        ("daily 22:00-06:00", "America/New_York", "2026-03-08T09:59:00Z", true),
        ("daily 22:00-06:00", "America/New_York", "2026-03-08T10:00:00Z", false),  // Sun 06:00 EDT
        // Repeated wall times use their first occurrence: 01:30 EDT to 02:30 EST is two hours.
        ("sun 01:30-02:30", "America/New_York", "2026-11-01T05:29:00Z", false),
        ("sun 01:30-02:30", "America/New_York", "2026-11-01T05:30:00Z", true),  // 01:30 EDT
        ("sun 01:30-02:30", "America/New_York", "2026-11-01T06:30:00Z", true),  // 01:30 EST
        ("sun 01:30-02:30", "America/New_York", "2026-11-01T07:29:00Z", true),
        ("sun 01:30-02:30", "America/New_York", "2026-11-01T07:30:00Z", false),  // 02:30 EST
        // Berlin, spring forward Sun 2026-03-29 (02:00 CET → 03:00 CEST).
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-03-27T06:59:00Z", false),
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-03-27T07:00:00Z", true),  // Fri 08:00 CET
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-03-30T05:59:00Z", false),
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-03-30T06:00:00Z", true),  // Mon 08:00 CEST
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-03-30T15:59:00Z", true),
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-03-30T16:00:00Z", false),
        ("sun 02:30-03:30", "Europe/Berlin", "2026-03-29T00:59:00Z", false),
        ("sun 02:30-03:30", "Europe/Berlin", "2026-03-29T01:00:00Z", true),
        ("sun 02:30-03:30", "Europe/Berlin", "2026-03-29T01:29:00Z", true),
        ("sun 02:30-03:30", "Europe/Berlin", "2026-03-29T01:30:00Z", false),
        // Berlin, fall back Sun 2026-10-25 (03:00 CEST → 02:00 CET).
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-10-23T05:59:00Z", false),
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-10-23T06:00:00Z", true),  // Fri 08:00 CEST
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-10-26T06:59:00Z", false),
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-10-26T07:00:00Z", true),  // Mon 08:00 CET
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-10-26T16:59:00Z", true),
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-10-26T17:00:00Z", false),
        ("sun 02:15-02:45", "Europe/Berlin", "2026-10-25T00:30:00Z", true),  // 02:30 CEST, first occurrence
        ("sun 02:15-02:45", "Europe/Berlin", "2026-10-25T01:30:00Z", false),  // 02:30 CET, the repeat
        // Lord Howe's half-hour gap (02:00 → 02:30 on Sun 2026-10-04).
        ("sun 02:00-03:00", "Australia/Lord_Howe", "2026-10-03T15:29:00Z", false),
        ("sun 02:00-03:00", "Australia/Lord_Howe", "2026-10-03T15:30:00Z", true),
        ("sun 02:00-03:00", "Australia/Lord_Howe", "2026-10-03T15:59:00Z", true),
        ("sun 02:00-03:00", "Australia/Lord_Howe", "2026-10-03T16:00:00Z", false),
        // Santiago skips midnight (Sun 2026-09-06 00:00 → 01:00): the day starts at 01:00.
        ("sun 00:00-02:00", "America/Santiago", "2026-09-06T03:59:00Z", false),
        ("sun 00:00-02:00", "America/Santiago", "2026-09-06T04:00:00Z", true),
        ("sat 20:00-24:00", "America/Santiago", "2026-09-06T03:59:00Z", true),
        ("sat 20:00-24:00", "America/Santiago", "2026-09-06T04:00:00Z", false),
    ])
    func contains(spec: String, zone: String, instant: String, inside: Bool) throws {
        let timeSpec = try TimeSpec.parse(spec)
        #expect(timeSpec.contains(try Self.utc(instant), in: try Self.zone(zone)) == inside)
    }

    // MARK: Next flip

    // spec, zone, after (UTC), expected flip (UTC) or nil
    @Test(arguments: [
        // Across the spring-forward weekend: closes Fri 18:00 EST, opens Mon 08:00 EDT.
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-06T15:00:00Z", "2026-03-06T23:00:00Z"),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-06T23:00:00Z", "2026-03-09T12:00:00Z"),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-09T11:00:00Z", "2026-03-09T12:00:00Z"),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-09T12:00:00Z", "2026-03-09T22:00:00Z"),  // strictly after
        // Across the fall-back weekend.
        ("mon-fri 08:00-18:00", "America/New_York", "2026-10-30T22:00:00Z", "2026-11-02T13:00:00Z"),
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-03-27T17:00:00Z", "2026-03-30T06:00:00Z"),
        ("mon-fri 08:00-18:00", "Europe/Berlin", "2026-10-23T16:00:00Z", "2026-10-26T07:00:00Z"),
        ("daily 08:00-09:00", "America/New_York", "2026-03-07T14:00:00Z", "2026-03-08T12:00:00Z"),
        ("daily 22:00-06:00", "America/New_York", "2026-03-08T03:00:00Z", "2026-03-08T10:00:00Z"),
        // Gaps and repeats.
        ("sun 02:30-03:30", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z"),
        ("sun 02:30-03:30", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"),
        ("sun 01:30-02:30", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z"),
        ("sun 01:30-02:30", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z"),
        ("sun 02:00-03:00", "Australia/Lord_Howe", "2026-10-03T15:00:00Z", "2026-10-03T15:30:00Z"),
        // The window swallowed by the gap on 03-08 next happens a week later (02:00 EDT).
        ("sun 02:00-03:00", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-15T06:00:00Z"),
        ("sun 02:00-03:00", "America/New_York", "2026-03-01T08:00:00Z", "2026-03-15T06:00:00Z"),  // two weeks on
        // A week ahead, and nearly a week held open.
        ("sun 10:00-11:00", "UTC", "2026-06-07T11:00:00Z", "2026-06-14T10:00:00Z"),
        ("sun 10:00-11:00", "UTC", "2026-06-07T10:59:59.5Z", "2026-06-07T11:00:00Z"),
        ("mon-sat 00:00-24:00; sun 00:00-23:00", "UTC", "2026-06-01T00:00:00Z", "2026-06-07T23:00:00Z"),
        ("mon-sat 00:00-24:00; sun 00:00-23:00", "UTC", "2026-06-07T23:00:00Z", "2026-06-08T00:00:00Z"),
        // Adjacent and overlapping windows hand over without a flip.
        ("mon 08:00-12:00; mon 12:00-18:00", "UTC", "2026-06-01T09:00:00Z", "2026-06-01T18:00:00Z"),
        ("mon 08:00-12:00; mon 10:00-18:00", "UTC", "2026-06-01T09:00:00Z", "2026-06-01T18:00:00Z"),
        ("mon 08:00-12:00; mon 10:00-18:00", "UTC", "2026-06-01T07:00:00Z", "2026-06-01T08:00:00Z"),
        ("mon-tue 22:00-02:00; tue 02:00-05:00", "UTC", "2026-06-01T23:00:00Z", "2026-06-02T05:00:00Z"),
        // Wrapping windows.
        ("fri 22:00-02:00", "UTC", "2026-06-05T21:00:00Z", "2026-06-05T22:00:00Z"),
        ("fri 22:00-02:00", "UTC", "2026-06-05T22:00:00Z", "2026-06-06T02:00:00Z"),
        ("sun 23:00-01:00", "UTC", "2026-06-07T23:30:00Z", "2026-06-08T01:00:00Z"),
        ("daily 22:00-06:00", "UTC", "2026-06-03T23:00:00Z", "2026-06-04T06:00:00Z"),
    ])
    func nextFlip(spec: String, zone: String, after: String, expected: String) throws {
        let timeSpec = try TimeSpec.parse(spec)
        let flip = timeSpec.nextFlip(after: try Self.utc(after), in: try Self.zone(zone))
        #expect(Self.utcText(flip) == Self.utcText(try Self.utc(expected)))
    }

    // spec, zone, after (UTC): containment never changes
    @Test(arguments: [
        ("daily 00:00-24:00", "UTC", "2026-06-01T12:00:00Z"),
        ("daily 00:00-24:00", "America/New_York", "2026-03-07T12:00:00Z"),
        ("daily 00:00-24:00", "America/New_York", "2026-10-31T12:00:00Z"),
        ("mon-sun 00:00-24:00", "Europe/Berlin", "2026-03-28T12:00:00Z"),
        ("daily 22:00-06:00; daily 06:00-22:00", "America/New_York", "2026-03-07T12:00:00Z"),
        ("weekdays 00:00-24:00; weekends 00:00-24:00", "Australia/Lord_Howe", "2026-10-01T00:00:00Z"),
        ("daily 00:00-24:00", "America/Santiago", "2026-09-04T12:00:00Z"),
    ])
    func neverFlips(spec: String, zone: String, after: String) throws {
        let timeSpec = try TimeSpec.parse(spec)
        let instant = try Self.utc(after)
        let zone = try Self.zone(zone)
        #expect(timeSpec.nextFlip(after: instant, in: zone) == nil)
        #expect(timeSpec.contains(instant, in: zone))
    }

    /// Chains `nextFlip` over a stretch and compares it with flips found by checking
    /// `contains` at every minute (all zones here change offset on whole minutes).
    // spec, zone, from (UTC), days to scan
    @Test(arguments: [
        ("mon-fri 08:00-18:00", "America/New_York", "2026-03-01T00:00:00Z", 16),
        ("mon-fri 08:00-18:00", "America/New_York", "2026-10-25T00:00:00Z", 16),
        ("daily 22:00-06:00; sat 10:00-14:00", "America/New_York", "2026-03-05T00:00:00Z", 5),
        ("daily 01:00-03:00; sun 02:30-02:45", "America/New_York", "2026-10-30T00:00:00Z", 4),
        ("fri-mon 22:00-02:00; tue 02:00-05:00", "Europe/Berlin", "2026-03-20T00:00:00Z", 14),
        ("sun 02:00-03:00; sun 03:00-04:00", "Europe/Berlin", "2026-10-20T00:00:00Z", 8),
        ("daily 02:00-02:30", "Australia/Lord_Howe", "2026-10-01T00:00:00Z", 6),
        ("weekends 23:00-01:00", "America/Santiago", "2026-09-01T00:00:00Z", 10),
    ])
    func nextFlipMatchesMinuteScan(spec: String, zone: String, from: String, days: Int) throws {
        let timeSpec = try TimeSpec.parse(spec)
        let zone = try Self.zone(zone)
        let start = try Self.utc(from)
        let end = start.addingTimeInterval(TimeInterval(days * 86_400))

        var scanned: [Date] = []
        var previous = timeSpec.contains(start, in: zone)
        var minute = start.addingTimeInterval(60)
        while minute < end {
            let inside = timeSpec.contains(minute, in: zone)
            if inside != previous { scanned.append(minute) }
            previous = inside
            minute.addTimeInterval(60)
        }

        var chained: [Date] = []
        var cursor = start
        while let flip = timeSpec.nextFlip(after: cursor, in: zone), flip < end {
            chained.append(flip)
            cursor = flip
        }
        #expect(chained.map { Self.utcText($0) } == scanned.map { Self.utcText($0) })
        #expect(!scanned.isEmpty)
    }

    // MARK: Wall clock

    /// Our wall-time resolution against Foundation's Gregorian calendar, for every day of
    /// 2026 at times that hit the gaps and repeats of these zones: a time that exists
    /// must be Foundation's instant and the first to read that time; a skipped one must
    /// be the instant the gap ends.
    // zone, whether 2026 skips any of the sampled wall times
    @Test(arguments: [
        ("UTC", false), ("America/New_York", true), ("Europe/Berlin", true), ("Australia/Lord_Howe", true),
        ("America/Santiago", true), ("Asia/Beirut", true), ("America/Havana", true), ("Pacific/Chatham", true),
        ("Asia/Kathmandu", false), ("Asia/Tehran", false),
    ])
    func wallClockAgreesWithFoundation(zoneName: String, skips: Bool) throws {
        let zone = try Self.zone(zoneName)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        var utcCalendar = Calendar(identifier: .gregorian)
        utcCalendar.timeZone = try Self.zone("UTC")
        let clock = ZonedWallClock(zone)
        let firstDay = CivilDate.dayNumber(year: 2026, month: 1, day: 1)
        let fields: Set<Calendar.Component> = [.year, .month, .day, .hour, .minute, .second]

        func reading(_ second: Int) -> Int? {
            let parts = calendar.dateComponents(fields, from: Date(timeIntervalSince1970: TimeInterval(second)))
            guard let year = parts.year, let month = parts.month, let day = parts.day,
                  let hour = parts.hour, let minute = parts.minute, let sec = parts.second else { return nil }
            return CivilDate.dayNumber(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + sec
        }

        var skipped = 0
        for day in firstDay..<(firstDay + 365) {
            for minutes in [0, 30, 60, 90, 120, 135, 150, 165, 180, 210, 720, 1380, 1410] {
                let local = ZonedWallClock.localSeconds(day: day, minutes: minutes)
                let (second, exists) = clock.instant(atLocalSeconds: local)
                let justBefore = try #require(reading(second - 1))
                #expect(justBefore < local, "\(zoneName) day \(day) minute \(minutes): an earlier instant reads \(justBefore)")
                if exists {
                    #expect(reading(second) == local)
                    let date = utcCalendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: TimeInterval(day * 86_400)))
                    let foundation = try #require(calendar.date(from: DateComponents(
                        year: date.year, month: date.month, day: date.day, hour: minutes / 60, minute: minutes % 60)))
                    #expect(TimeInterval(second) == foundation.timeIntervalSince1970, "\(zoneName) day \(day) minute \(minutes)")
                } else {
                    let atGapEnd = try #require(reading(second))
                    #expect(atGapEnd > local, "\(zoneName) day \(day) minute \(minutes)")
                    skipped += 1
                }
            }
        }
        #expect((skipped > 0) == skips)
    }

    /// Local day numbers and weekdays against Foundation's calendar, hourly through 2026.
    @Test(arguments: ["UTC", "America/New_York", "Europe/Berlin", "Pacific/Chatham", "America/Santiago", "Pacific/Kiritimati"])
    func daysAndWeekdaysAgreeWithFoundation(zoneName: String) throws {
        let zone = try Self.zone(zoneName)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let clock = ZonedWallClock(zone)
        let start = try Self.utc("2026-01-01T00:00:00Z")
        for hour in 0..<(365 * 24) {
            let instant = start.addingTimeInterval(TimeInterval(hour * 3600))
            let parts = calendar.dateComponents([.year, .month, .day, .weekday], from: instant)
            let year = try #require(parts.year), month = try #require(parts.month)
            let day = try #require(parts.day), weekday = try #require(parts.weekday)
            let number = clock.day(containing: instant)
            #expect(number == CivilDate.dayNumber(year: year, month: month, day: day))
            // Foundation counts Sunday as 1; ours counts Monday as 1.
            #expect(ZonedWallClock.weekday(ofDay: number).rawValue == (weekday + 5) % 7 + 1)
        }
    }

    @Test func extremeInstantsDoNotTrap() throws {
        let spec = try TimeSpec.parse("mon-fri 08:00-18:00")
        let utc = try Self.zone("UTC")
        for instant in [Date.distantPast, Date.distantFuture, Date(timeIntervalSince1970: .infinity), Date(timeIntervalSince1970: -.infinity)] {
            _ = spec.contains(instant, in: utc)
            _ = spec.nextFlip(after: instant, in: utc)
        }
    }

    // MARK: Weekdays

    // from, to, expected days
    @Test(arguments: [
        (Weekday.mon, Weekday.fri, [Weekday.mon, .tue, .wed, .thu, .fri]),
        (.fri, .mon, [.fri, .sat, .sun, .mon]),
        (.sun, .mon, [.sun, .mon]),
        (.tue, .mon, Weekday.allCases),
    ])
    func weekdayRanges(from: Weekday, to: Weekday, days: [Weekday]) {
        #expect(Weekday.range(from: from, to: to) == Set(days))
    }
}
