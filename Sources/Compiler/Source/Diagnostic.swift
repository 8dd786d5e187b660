/// A place in a policy file. Lines and columns count from 1; columns count characters.
public struct SourceLocation: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.file, a.line, a.column) < (b.file, b.line, b.column)
    }
}

/// One finding about policy text, printed as `file:line:col: error: message`.
public struct Diagnostic: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable, Comparable {
        case note, warning, error
        public static func < (a: Severity, b: Severity) -> Bool {
            let rank: [Severity: Int] = [.note: 0, .warning: 1, .error: 2]
            return rank[a]! < rank[b]!
        }
    }

    public var severity: Severity
    public var location: SourceLocation
    public var message: String
    /// Further places that explain this one (the first definition of a duplicate name).
    public var notes: [Diagnostic]

    public init(_ severity: Severity, _ location: SourceLocation, _ message: String, notes: [Diagnostic] = []) {
        self.severity = severity
        self.location = location
        self.message = message
        self.notes = notes
    }

    public static func error(_ location: SourceLocation, _ message: String, notes: [Diagnostic] = []) -> Diagnostic {
        Diagnostic(.error, location, message, notes: notes)
    }

    public static func warning(_ location: SourceLocation, _ message: String) -> Diagnostic {
        Diagnostic(.warning, location, message)
    }

    public var description: String {
        ([("\(location): \(severity.rawValue): \(message)")] + notes.map(\.description)).joined(separator: "\n")
    }
}

/// An error found inside one value (a time spec, an address, a port range), located by
/// its character offset in that value; the policy parser turns it into a `Diagnostic`
/// at file:line:col.
public struct ValueError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    /// Offset in characters from the start of the value.
    public var offset: Int

    public init(_ message: String, at offset: Int = 0) {
        self.message = message
        self.offset = offset
    }

    public var description: String { message }
}
