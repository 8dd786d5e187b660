import Foundation
import NFQueue
import Testing
@testable import Enforcement

/// The pure parts of the metrics: the kernel queue's line, and the exposition text.
struct MetricsTests {
    static let proc = """
          0  12345     3 2 65531     17     4      998  1
          7  12399     0 2 65531      0     9       12  1
        """

    @Test("the kernel queue's line", arguments: [
        (UInt16(0), KernelQueueStats(queue: 0, waiting: 3, queueDropped: 17, userDropped: 4)),
        (7, KernelQueueStats(queue: 7, waiting: 0, queueDropped: 0, userDropped: 9)),
        (3, nil),
    ] as [(UInt16, KernelQueueStats?)])
    func queueLine(_ queue: UInt16, _ expected: KernelQueueStats?) {
        #expect(KernelQueueStats.parse(Self.proc, queue: queue) == expected)
    }

    @Test("a line that is not nine numbers is skipped", arguments: ["", "0 1 2", "0 1 2 3 4 5 6 7 x", "0 1 2 3 4 5 6 7 8 9"])
    func malformed(_ text: String) {
        #expect(KernelQueueStats.parse(text, queue: 0) == nil)
    }

    /// Policy names are free text: quotes, backslashes and line feeds come out escaped.
    @Test func labelValuesAreEscapedAndValuesAreTheKernels() {
        let name = "Ops \"night\" shift \\ on-call\nsecond line"
        var worker = WorkerCounters()
        worker.failVerdicts = 2
        worker.verdictsByRule = ["block-social": ["deny": 5], "": ["permit": 1]]
        let exporter = MetricsExporter {
            MetricsExporter.Reading(counters: PolicyCounters(byCounter: ["policy_4": .init(packets: 11, bytes: 660), "deny_input": .init(packets: 3, bytes: 180)],
                                                             policyIDs: [name: 4]),
                                    policies: [name], worker: worker, kernelQueue: KernelQueueStats(queue: 0, waiting: 0, queueDropped: 6, userDropped: 1),
                                    tally: Daemon.Tally(flips: 2, reloadsApplied: 1, reloadsRefused: 1), applySeconds: [0.004])
        }
        let text = String(decoding: exporter.text(), as: UTF8.self)
        for line in [
            #"enforcer_policy_flows_total{policy="Ops \"night\" shift \\ on-call\nsecond line"} 11"#,
            #"enforcer_default_deny_packets_total{hook="input"} 3"#,
            #"enforcer_worker_verdicts_total{action="deny",rule="block-social"} 5"#,
            #"enforcer_worker_verdicts_total{action="permit",rule="(default_action)"} 1"#,
            "enforcer_worker_fail_verdicts_total 2",
            #"enforcer_queue_kernel_dropped_total{reason="queue_full"} 6"#,
            #"enforcer_reloads_total{result="refused"} 1"#,
            "enforcer_flips_total 2",
            "enforcer_apply_duration_seconds_count 1",
        ] {
            #expect(text.contains(line), "\(line)\n--- in ---\n\(text)")
        }
        // A second scrape sets the totals again rather than adding them up.
        #expect(String(decoding: exporter.text(), as: UTF8.self).contains(#"enforcer_default_deny_packets_total{hook="input"} 3"#))
    }

    @Test func onlyGetMetricsIsAnswered() throws {
        let exporter = MetricsExporter { MetricsExporter.Reading(counters: nil, policies: [], worker: nil, kernelQueue: nil, tally: .init(), applySeconds: []) }
        func status(_ request: String) -> String? {
            exporter.answer(Array(request.utf8), now: Date()).map { String(decoding: $0.response, as: UTF8.self).components(separatedBy: "\r\n")[0] }
        }
        #expect(status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == "HTTP/1.1 200 OK")
        #expect(status("GET /other HTTP/1.1\r\nHost: x\r\n\r\n") == "HTTP/1.1 404 Not Found")
        #expect(status("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n") == "HTTP/1.1 405 Method Not Allowed")
        #expect(status("GET /metr") == nil, "waits for the rest of the head")
    }
}
