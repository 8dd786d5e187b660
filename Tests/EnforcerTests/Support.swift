import Foundation
import Testing

/// Runs the built `enforcer` command and captures what a user would see.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum Paths {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func example(_ name: String) -> String { packageRoot.appendingPathComponent("examples/\(name)").path }
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    /// The python script that sends the TCP packets a normal socket cannot (a SYN flood, a
    /// ClientHello out of order): `python3 Paths.rawTCP SUBCOMMAND …`; its docstring lists them.
    static let rawTCP = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/raw_tcp.py").path

    /// The `enforcer` binary next to the test bundle (same build folder).
    static let enforcer: String = {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("enforcer").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/enforcer").path
    }()
}

@discardableResult
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = Paths.packageRoot
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    if let input {
        let pipe = Pipe()
        process.standardInput = pipe
        try process.run()
        pipe.fileHandleForWriting.write(Data(input.utf8))
        try pipe.fileHandleForWriting.close()
    } else {
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }
    // Read before waiting so a large output cannot fill the pipe and stall the child.
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
}

func enforcer(_ arguments: String...) throws -> CommandResult {
    try run(Paths.enforcer, arguments, environment: ["TZ": "UTC"])
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it instead.
func expectGolden(_ actual: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let url = Paths.golden.appendingPathComponent(name)
    if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
        try actual.write(to: url, atomically: true, encoding: .utf8)
        return
    }
    let expected = try String(contentsOf: url, encoding: .utf8)
    if expected != actual {
        let expectedLines = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let actualLines = actual.split(separator: "\n", omittingEmptySubsequences: false)
        let first = zip(expectedLines, actualLines).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(expectedLines.count, actualLines.count)
        Issue.record("\(name) differs at line \(first + 1):\n  expected: \(first < expectedLines.count ? String(expectedLines[first]) : "<end>")\n  actual:   \(first < actualLines.count ? String(actualLines[first]) : "<end>")\n(UPDATE_GOLDEN=1 rewrites it)", sourceLocation: sourceLocation)
    }
}
