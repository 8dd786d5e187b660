import Foundation

/// Converts between instants and wall-clock time in one zone.
///
/// Wall time is counted as "local seconds": seconds since 1970-01-01 00:00 on the zone's
/// clock face, so a local day is `localSeconds / 86_400` (floored) and a wall time on a day
/// is plain arithmetic. Every UTC offset comes from the zone's tz data through Foundation;
/// no DST rule is written down here.
///
/// Why not `Calendar.date(from:)`: for a wall time that the zone skips it returns the time
/// pushed forward by the gap's length (02:30 → 03:30 on a US spring-forward day), and
/// `date(bySettingHour:…matchingPolicy: .nextTime)` lands a day late inside Lord Howe's
/// 30-minute gap. The policy language wants "the first instant after the gap", so the
/// resolution below asks the zone for offsets and picks the instant itself; the tests
/// check it against `Calendar(identifier: .gregorian)` wherever the two should agree.
struct ZonedWallClock: Sendable {
    static let secondsPerDay = 86_400
    /// Instants are clamped to about ±31,000 years so arithmetic on them can't overflow
    /// (`Date.distantFuture` and friends stay well inside).
    private static let instantLimit = 1e12

    let zone: TimeZone

    init(_ zone: TimeZone) {
        self.zone = zone
    }

    /// The whole second containing `instant` (floored), clamped to a safe range.
    static func wholeSeconds(_ instant: Date) -> Int {
        let t = instant.timeIntervalSince1970
        guard t.isFinite else { return t > 0 ? Int(instantLimit) : -Int(instantLimit) }
        return Int(min(max(t, -instantLimit), instantLimit).rounded(.down))
    }

    func offset(atSecond second: Int) -> Int {
        zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(second)))
    }

    /// The wall-clock reading at `instant`, as local seconds.
    func localSeconds(at instant: Date) -> Int {
        let second = Self.wholeSeconds(instant)
        return second + offset(atSecond: second)
    }

    /// The local day (days since 1970-01-01 on the zone's calendar) containing `instant`.
    func day(containing instant: Date) -> Int {
        Self.floorDivide(localSeconds(at: instant), Self.secondsPerDay)
    }

    /// The earliest instant (Unix seconds) whose wall-clock reading is at or after `local`.
    ///
    /// That one rule covers all three cases: a wall time that occurs once maps to that
    /// instant; one that occurs twice (fall-back) maps to its first occurrence; one that
    /// is skipped (spring-forward) maps to the first instant after the gap. `exists` is
    /// false in the last case.
    func instant(atLocalSeconds local: Int) -> (second: Int, exists: Bool) {
        // The offsets in force a day either side bracket any single transition near
        // `local`; re-asking at each candidate catches an offset that only holds briefly.
        let around = [offset(atSecond: local - Self.secondsPerDay), offset(atSecond: local + Self.secondsPerDay)]
        let offsets = Set(around + around.map { offset(atSecond: local - $0) })

        let readings = offsets.map { local - $0 }.filter { $0 + offset(atSecond: $0) == local }
        if let first = readings.min() {
            return (first, true)
        }

        // Skipped: the answer is the transition, which lies between reading `local` with the
        // largest offset (still before the gap) and with the smallest (already past it).
        guard let largest = offsets.max(), let smallest = offsets.min() else { return (local, false) }
        var before = local - largest  // reads earlier than `local`
        var after = local - smallest  // reads later than `local`
        guard readsAtOrAfter(local, at: after) else { return (after, false) }
        while after - before > 1 {
            let middle = before + (after - before) / 2
            if readsAtOrAfter(local, at: middle) { after = middle } else { before = middle }
        }
        return (after, false)
    }

    /// Local seconds for `minutes` past midnight on local `day` (minutes may run past 1440).
    static func localSeconds(day: Int, minutes: Int) -> Int {
        day * secondsPerDay + minutes * 60
    }

    /// The weekday of a local day; day 0, 1970-01-01, was a Thursday.
    static func weekday(ofDay day: Int) -> Weekday {
        let mondayBased = floorModulo(day + 3, 7)  // 0 is Monday
        return Weekday(rawValue: mondayBased + 1) ?? .mon
    }

    static func floorDivide(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func floorModulo(_ a: Int, _ b: Int) -> Int {
        a - floorDivide(a, b) * b
    }

    private func readsAtOrAfter(_ local: Int, at second: Int) -> Bool {
        second + offset(atSecond: second) >= local
    }
}
