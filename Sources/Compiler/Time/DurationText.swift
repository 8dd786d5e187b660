import Foundation

/// Durations as operators write them: `2h`, `30m`, `90s`, `1d`, `1h30m`.
public enum DurationText {
    public static func parse(_ text: some StringProtocol) -> TimeInterval? {
        var total = 0.0, number = ""
        for character in text {
            if character.isASCII && character.isNumber { number.append(character); continue }
            guard let value = Double(number) else { return nil }
            switch character {
            case "d": total += value * 86400
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            default: return nil
            }
            number = ""
        }
        return number.isEmpty && total > 0 ? total : nil
    }
}
