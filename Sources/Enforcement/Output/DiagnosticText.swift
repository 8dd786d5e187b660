import Compiler
import Foundation

/// Diagnostics as compilers print them: `file:line:col: severity: message`, then the line
/// and a caret under the column. The command line prints them; the daemon logs them.
public struct DiagnosticText {
    /// Each file's lines, read once however many diagnostics point into it.
    private var sources: [String: [Substring]] = [:]

    public init() {}

    public mutating func render(_ diagnostic: Diagnostic) -> String {
        var text = "\(diagnostic.location): \(diagnostic.severity.rawValue): \(diagnostic.message)"
        if sources[diagnostic.location.file] == nil {
            // Not a file over the size limit, which the diagnostic may be refusing.
            let size = (try? FileManager.default.attributesOfItem(atPath: diagnostic.location.file)[.size] as? Int) ?? 0
            let content = size > SourceLimits.policyFileBytes ? "" : (try? String(contentsOfFile: diagnostic.location.file, encoding: .utf8)) ?? ""
            sources[diagnostic.location.file] = content.split(separator: "\n", omittingEmptySubsequences: false)
        }
        if let lines = sources[diagnostic.location.file], diagnostic.location.line >= 1, diagnostic.location.line <= lines.count,
           lines[diagnostic.location.line - 1].utf8.count <= SourceLimits.lineBytes {
            let line = lines[diagnostic.location.line - 1].replacingOccurrences(of: "\t", with: " ")
            if !line.trimmingCharacters(in: .whitespaces).isEmpty {
                text += "\n    \(line)\n    \(String(repeating: " ", count: max(0, diagnostic.location.column - 1)))^"
            }
        }
        for note in diagnostic.notes { text += "\n" + render(note) }
        return text
    }

    /// Every diagnostic, one rendering each.
    public static func render(_ diagnostics: [Diagnostic]) -> [String] {
        var text = DiagnosticText()
        return diagnostics.map { text.render($0) }
    }
}

/// "1 error", "2 errors".
public func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }
