// Worker hot-path benchmark (`enforcer-bench inspect [POLICY_DIR]`): the per-packet work of
// `enforcer run` without the queue's system calls, on the stream bench/queue-bench.sh feeds
// the kernel (2,000 flows, each a SYN and one segment with a real ClientHello, judged and
// logged). Prints nanoseconds of worker time per packet, the figure queue-bench's ratio
// depends on (bench/README.md works out how much the worker may add to the no-op loop).
// For profiling the worker's own code (`perf record enforcer-bench inspect`); not a goal.
// INSPECT_CYCLES (default 1000) sets the cycles: two valgrind --tool=callgrind runs with
// different counts give the instructions of one cycle, independent of the machine.
import Compiler
import Foundation
import NFQueue

enum InspectBenchmark {
    static func main(_ arguments: [String]) -> Int32 {
        let directory = arguments.count > 1 ? arguments[1] : "examples/enforcegate"
        let hello = (try? Data(contentsOf: URL(fileURLWithPath: arguments.count > 2 ? arguments[2] : "Tests/NFQueueTests/Fixtures/python-python.example.bin"))).map { [UInt8]($0) } ?? []
        guard !hello.isEmpty, let set = PolicyLoader.load(directory: directory).policySet else {
            FileHandle.standardError.write(Data("usage: enforcer-bench inspect [POLICY_DIR [CLIENTHELLO]] (from the repository root)\n".utf8))
            return 2
        }
        let matcher = WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction)
        let client = PacketAddress(bytes: [127, 0, 0, 2])!, server = PacketAddress(bytes: [127, 0, 0, 1])!
        let flows = 2_000, cycles = Int(ProcessInfo.processInfo.environment["INSPECT_CYCLES"] ?? "") ?? 1_000
        var packets: [QueuedPacket] = []
        for index in 0..<flows {
            let port = UInt16(10_000 + index % 50_000), isn = UInt32(truncatingIfNeeded: index &* 2_654_435_761)
            let syn = ForgedSegment(source: client, destination: server, sourcePort: port, destinationPort: 443, sequence: isn, acknowledgment: 0, flags: [.syn])
            let data = ForgedSegment(source: client, destination: server, sourcePort: port, destinationPort: 443, sequence: isn &+ 1, acknowledgment: 1,
                                     flags: [.psh, .ack], payload: hello)
            packets.append(QueuedPacket(id: UInt32(2 * index), mark: 0, bytes: syn.bytes))
            packets.append(QueuedPacket(id: UInt32(2 * index + 1), mark: 0, bytes: data.bytes))
        }
        var inspector = Inspector(matcher: matcher, settings: InspectorSettings(config: set.config))
        var logged = 0, judged = 0
        var sampleJudgement: Judgement?
        var cycleTimes: [Double] = [], synTimes: [Double] = [], helloTimes: [Double] = []
        let wallClock = Date()
        let syns = stride(from: 0, to: packets.count, by: 2).map { packets[$0] }
        let hellos = stride(from: 1, to: packets.count, by: 2).map { packets[$0] }
        for cycle in 0..<cycles {
            var lines: [UInt8] = []
            lines.reserveCapacity(flows * 160)
            // All SYNs, then all ClientHellos: each flow sees its packets in order, and the
            // two kinds of packet are timed apart.
            let start = DispatchTime.now().uptimeNanoseconds
            for packet in syns { _ = inspector.inspect(packet, now: Double(cycle), wallClock: wallClock) }
            let middle = DispatchTime.now().uptimeNanoseconds
            for packet in hellos {
                let action = inspector.inspect(packet, now: Double(cycle), wallClock: wallClock)
                if let judgement = action.judgement { judgement.appendLine(to: &lines); judged += 1; sampleJudgement = judgement }
            }
            let end = DispatchTime.now().uptimeNanoseconds
            logged += lines.count
            cycleTimes.append(Double(end - start) / Double(2 * flows))
            synTimes.append(Double(middle - start) / Double(flows))
            helloTimes.append(Double(end - middle) / Double(flows))
            // The same 2,000 flows again next cycle, as new ones.
            inspector.expire(now: Double(cycle) + 100)
        }
        cycleTimes.sort(); synTimes.sort(); helloTimes.sort()
        print(String(format: "inspect: %d packets, %d judged, %d log bytes; ns per packet (inspect + log line): best cycle %.0f, median %.0f",
                     2 * flows * cycles, judged, logged, cycleTimes[0], cycleTimes[cycles / 2]))
        print(String(format: "  SYN (a flow starts): best %.0f, median %.0f; ClientHello (judged, logged): best %.0f, median %.0f",
                     synTimes[0], synTimes[cycles / 2], helloTimes[0], helloTimes[cycles / 2]))
        parts(matcher: matcher, hello: hello, judgement: sampleJudgement, wallClock: wallClock)
        return 0
    }

    /// The parts of judging one ClientHello, each timed alone (best of 20 runs of 100,000).
    static func parts(matcher: WebMatcher, hello: [UInt8], judgement: Judgement?, wallClock: Date) {
        func best(_ label: String, _ body: () -> Int) {
            var fastest = Double.infinity, sink = 0
            for _ in 0..<20 {
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<100_000 { sink &+= body() }
                fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 100_000)
            }
            print("  " + label.padding(toLength: 52, withPad: " ", startingAt: 0) + String(format: "%6.0f ns", fastest) + (sink == 42 ? " " : ""))
        }
        let windows = matcher.openWindows(at: wallClock), patterns = PatternMatcher()
        let name = ClientHelloParser.parse(hello).value?.serverName ?? ""
        best("ClientHelloParser.parse") { ClientHelloParser.parse(hello[...]).value?.alpn.count ?? 0 }
        best("WebMatcher.decide (\(matcher.rules.count) rules)") {
            matcher.decide(WebRequest(serverName: name, source: nil), windows: windows, patterns: patterns).rule == nil ? 1 : 0
        }
        let request = WebRequest(serverName: name, source: nil)
        best("WebRequest.url (TLS)") { request.url.utf8.count }
        for rule in matcher.rules {
            for pattern in rule.uriPatterns { best("  uri regex of \(rule.name)") { patterns.matches(pattern, request.url) ? 1 : 0 } }
            for (index, domains) in rule.domains.enumerated() { best("  domain set \(index) of \(rule.name)") { domains.match(name) == nil ? 0 : 1 } }
        }
        if let judgement {
            var line: [UInt8] = []
            line.reserveCapacity(1 << 16)
            best("Judgement.appendLine") {
                if line.count > 60_000 { line.removeAll(keepingCapacity: true) }
                judgement.appendLine(to: &line)
                return line.count
            }
        }
    }
}
