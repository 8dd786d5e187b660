/// A position in a value's text, counted in characters so error offsets line up with the
/// columns `SourceLocation` reports.
struct TimeTextCursor {
    let characters: [Character]
    private(set) var position = 0

    init(_ text: String) {
        characters = Array(text)
    }

    var atEnd: Bool { position >= characters.count }
    var current: Character? { atEnd ? nil : characters[position] }

    func isAt(_ character: Character) -> Bool { current == character }

    mutating func advance() {
        if !atEnd { position += 1 }
    }

    /// Consumes `character` if it is next.
    mutating func skip(_ character: Character) -> Bool {
        guard isAt(character) else { return false }
        position += 1
        return true
    }

    mutating func skipWhitespace() {
        while let character = current, character.isWhitespace { position += 1 }
    }

    /// Consumes the longest run of characters matching `predicate`.
    mutating func take(while predicate: (Character) -> Bool) -> String {
        let start = position
        while let character = current, predicate(character) { position += 1 }
        return String(characters[start..<position])
    }

    /// The longest run of characters from here matching `predicate`, without consuming it;
    /// used to quote the offending text in messages.
    func peek(while predicate: (Character) -> Bool) -> String {
        var copy = self
        return copy.take(while: predicate)
    }

    /// Text between two positions, for quoting.
    func text(from start: Int, to end: Int) -> String {
        let lower = max(0, min(start, characters.count)), upper = max(lower, min(end, characters.count))
        return String(characters[lower..<upper])
    }

    /// The value of an ASCII digit; other digits (Arabic-Indic and so on) are not numbers here.
    static func digitValue(_ character: Character) -> Int? {
        guard let ascii = character.asciiValue, ascii >= 48, ascii <= 57 else { return nil }
        return Int(ascii - 48)
    }

    /// The rest of the text, trailing whitespace dropped, for quoting.
    var rest: String {
        var text = Substring(String(characters[min(position, characters.count)...]))
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return String(text)
    }
}
