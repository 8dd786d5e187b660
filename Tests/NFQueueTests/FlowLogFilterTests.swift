
import Testing
@testable import NFQueue
@testable import Compiler

@Suite("Which judged flows are logged, and how often the same one")
struct FlowLogFilterTests {
    static func judgement(client: UInt8 = 1, host: String = "bit.ly", outcome: FlowOutcome = .deny, rule: String? = "deny-short", port: UInt16 = 40000) -> Judgement {
        let key = FlowKey(client: PacketAddress(bytes: [10, 0, 0, client])!, server: PacketAddress(bytes: [192, 0, 2, 80])!, clientPort: port, serverPort: 443)
        return Judgement(flow: key, outcome: outcome, kind: "tls", host: host,
                         decision: WebDecision(action: outcome == .permit ? .permit : .deny, rule: rule, pattern: nil))
    }

    @Test("log_flows: all logs every outcome, deny only what was not permitted, none nothing", arguments: [
        (Config.FlowLogging.all, FlowOutcome.permit, true), (.all, .deny, true), (.all, .redirect, true),
        (.deny, .permit, false), (.deny, .deny, true), (.deny, .redirect, true),
        (.none, .permit, false), (.none, .deny, false), (.none, .redirect, false),
    ])
    func modes(mode: Config.FlowLogging, outcome: FlowOutcome, logged: Bool) {
        var filter = FlowLogFilter(mode: mode)
        #expect(filter.admit(Self.judgement(outcome: outcome), now: 0).log == logged)
    }

    @Test("the same client, host, outcome and rule again within the window is counted, not logged; the next line after it says how many")
    func repeatsAreCounted() {
        var filter = FlowLogFilter(mode: .all, window: 10)
        #expect(filter.admit(Self.judgement(port: 1), now: 0) == (true, 0))
        for port in 2...50 { #expect(filter.admit(Self.judgement(port: UInt16(port)), now: Double(port) / 10) == (false, 0)) }
        // Other clients, hosts, outcomes and rules are not the same line.
        #expect(filter.admit(Self.judgement(client: 2), now: 1).log)
        #expect(filter.admit(Self.judgement(host: "tinyurl.com"), now: 1).log)
        #expect(filter.admit(Self.judgement(outcome: .redirect), now: 1).log)
        #expect(filter.admit(Self.judgement(rule: "other"), now: 1).log)
        var http = Self.judgement()
        http.kind = "http"
        #expect(filter.admit(http, now: 1).log)
        // After the window: logged again, with the count of those left out.
        #expect(filter.admit(Self.judgement(port: 51), now: 10.5) == (true, 49))
        #expect(filter.admit(Self.judgement(port: 52), now: 11) == (false, 0))
    }

    @Test("lines left out are summarised once their window passes, even when no other line of theirs comes")
    func leftOutLinesAreSummarised() {
        var filter = FlowLogFilter(mode: .deny, window: 5)
        _ = filter.admit(Self.judgement(port: 1), now: 0)
        _ = filter.admit(Self.judgement(port: 2), now: 1)
        _ = filter.admit(Self.judgement(port: 3), now: 2)
        _ = filter.admit(Self.judgement(client: 9), now: 2)
        #expect(filter.expired(now: 4).isEmpty)
        let due = filter.expired(now: 5)
        #expect(due.count == 1 && due.first?.repeated == 2 && due.first?.judgement.flow.clientPort == 3)
        #expect(filter.expired(now: 8).isEmpty, "client 9's one line left nothing out")
        #expect(filter.admit(Self.judgement(port: 4), now: 8) == (true, 0), "the summary said it already")
    }

    @Test("a key whose entry was summarised and removed, or dropped by a reset, is new again")
    func removedKeyIsNewAgain() {
        var filter = FlowLogFilter(mode: .all, window: 5)
        #expect(filter.admit(Self.judgement(port: 1), now: 0) == (true, 0))
        #expect(filter.admit(Self.judgement(port: 2), now: 1) == (false, 0))
        #expect(filter.admit(Self.judgement(port: 3), now: 2) == (false, 0))
        #expect(filter.expired(now: 6).first?.repeated == 2)
        #expect(filter.admit(Self.judgement(port: 4), now: 7) == (true, 0), "the summary said it already")
        #expect(filter.admit(Self.judgement(port: 5), now: 8) == (false, 0))
        #expect(filter.expired(now: 12).first?.repeated == 1)
        _ = filter.admit(Self.judgement(port: 6), now: 13)
        _ = filter.admit(Self.judgement(port: 7), now: 14)
        filter.reset(mode: .all, window: 5)
        #expect(filter.admit(Self.judgement(port: 8), now: 15) == (true, 0))
        #expect(filter.admit(Self.judgement(port: 9), now: 16) == (false, 0))
    }

    @Test("the line says how many were left out")
    func lineCarriesTheCount() {
        var text: [UInt8] = []
        Self.judgement().appendLine(to: &text, repeated: 12)
        #expect(String(decoding: text, as: UTF8.self).hasSuffix(" repeated=12\n"))
        text = []
        Self.judgement().appendLine(to: &text)
        #expect(!String(decoding: text, as: UTF8.self).contains("repeated="))
    }

    @Test("a window of 0 logs every flow")
    func noWindow() {
        var filter = FlowLogFilter(mode: .all, window: 0)
        for port in 1...5 { #expect(filter.admit(Self.judgement(port: UInt16(port)), now: 0) == (true, 0)) }
        #expect(filter.expired(now: 100).isEmpty)
    }

    @Test("past its capacity the filter still logs new lines, and holds no more keys")
    func bounded() {
        var filter = FlowLogFilter(mode: .all, window: 10)
        filter.capacity = 8
        for client in 1...20 { #expect(filter.admit(Self.judgement(client: UInt8(client)), now: 0).log) }
        #expect(filter.expired(now: 10).isEmpty)
    }
}
