import Foundation
import Testing
@testable import Enforcer

@Suite("Worker log lines")
struct LogTests {
    @Test("each line gets the stamp; a last line without a newline gets one", arguments: [
        ("permit a\n", "T permit a\n"),
        ("permit a\ndeny b\n", "T permit a\nT deny b\n"),
        ("permit a\ndeny b", "T permit a\nT deny b\n"),
        ("\n", "T \n"),
        ("", ""),
    ])
    func stamped(_ input: String, _ expected: String) {
        #expect(String(decoding: Log.stamped(Array(input.utf8), with: "T"), as: UTF8.self) == expected)
    }

    @Test("timestamps are UTC with milliseconds")
    func timestamp() {
        #expect(Log.timestamp(Date(timeIntervalSince1970: 1_764_618_330.25)) == "2025-12-01T19:45:30.250")
        #expect(Log.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000")
    }
}
