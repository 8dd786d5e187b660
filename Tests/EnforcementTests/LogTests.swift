import Foundation
import Testing
@testable import Enforcement

@Suite("Worker log lines")
struct LogTests {
    @Test("a worker line's prefix is the timestamp and a space")
    func prefix() {
        #expect(String(decoding: Log.prefix(at: Date(timeIntervalSince1970: 1_764_618_330.25)), as: UTF8.self) == "2025-12-01T19:45:30.250 ")
    }

    @Test("timestamps are UTC with milliseconds")
    func timestamp() {
        #expect(Log.timestamp(Date(timeIntervalSince1970: 1_764_618_330.25)) == "2025-12-01T19:45:30.250")
        #expect(Log.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000")
    }
}
