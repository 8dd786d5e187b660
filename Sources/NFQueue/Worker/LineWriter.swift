import Compiler

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

    /// A logfmt value (`Logfmt`'s rule): at most twice its length, plus the quotes.
    mutating func writeValue(_ text: String) {
        let span = text.utf8.span
        var plain = !span.isEmpty
        for index in span.indices where Logfmt.needsQuotes(span[index]) {
            plain = false
            break
        }
        if plain {
            for index in span.indices { append(span[index]) }
            return
        }
        append(UInt8(ascii: "\""))
        for index in span.indices {
            let (first, second) = Logfmt.escaped(span[index])
            append(first)
            if let second { append(second) }
        }
        append(UInt8(ascii: "\""))
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
