/// Writing a log line's bytes into an `OutputSpan`: the line reserves its room once
/// (`Array.append(addingCapacity:initializingWith:)`), and each piece is then a bounds-checked
/// store instead of an `Array.append` with its own uniqueness and capacity checks, which a
/// line per judged flow pays on the worker's path.
extension OutputSpan where Element == UInt8 {
    mutating func write(_ bytes: [UInt8]) {
        let span = bytes.span
        for index in span.indices { append(span[index]) }
    }

    mutating func write(_ text: String) {
        let span = text.utf8.span
        for index in span.indices { append(span[index]) }
    }

    /// The decimal digits of a number in 0 ... 65535 (ports), or of any non-negative number.
    mutating func writeDecimal(_ number: Int) {
        let value = Swift.max(0, number)
        var divisor = 1
        while divisor <= value / 10 { divisor &*= 10 }
        var rest = value
        while divisor > 0 {
            append(UInt8(truncatingIfNeeded: 48 &+ rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    /// A dotted quad.
    mutating func writeIPv4(_ word: UInt32) {
        var shift: UInt32 = 24
        while true {
            let octet = UInt8(truncatingIfNeeded: word >> shift)
            if octet >= 100 { append(48 + octet / 100) }
            if octet >= 10 { append(48 + octet / 10 % 10) }
            append(48 + octet % 10)
            if shift == 0 { return }
            append(UInt8(ascii: "."))
            shift -= 8
        }
    }
}
