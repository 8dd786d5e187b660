import Compiler
import Foundation
import NFQueue
import Prometheus

/// The daemon's metrics as the text Prometheus scrapes (`GET /metrics`), served from the
/// daemon's own loop by a `PortalServer` (`[metrics] listen`).
///
/// Nothing is counted twice: the kernel's counters and the worker's are read when a scrape
/// asks, and written into swift-prometheus's registry, which writes the exposition text and
/// escapes label values (policy names are free text). The few things only the daemon knows
/// (reloads, flips, apply durations) come from `Daemon.Tally`.
final class MetricsExporter {
    /// What a scrape reads, gathered by the daemon's process.
    struct Reading {
        /// The kernel's counters, or nil when they could not be read.
        var counters: PolicyCounters?
        /// Names of the policies enforced on this system (a policy that is not has no counter).
        var policies: [String]
        var worker: WorkerCounters?
        var kernelQueue: KernelQueueStats?
        var tally: Daemon.Tally
        /// Apply durations since the last scrape.
        var applySeconds: [Double]
    }

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let registry = PrometheusCollectorRegistry()
    private var labelled: [String: Counter] = [:]
    private let applyDuration: DurationHistogram
    private let read: () -> Reading

    init(read: @escaping () -> Reading) {
        self.read = read
        applyDuration = registry.makeDurationHistogram(
            descriptor: Self.descriptor("enforcer_apply_duration_seconds",
                                        help: "Time each apply of the daemon (start excluded) took in the dataplane: kernel transaction and record"),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                      .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)])
    }

    /// The registry's descriptor of `name`: its last word is the unit (`total`, `seconds`).
    static func descriptor(_ name: String, help: String) -> MetricNameDescriptor {
        let cut = name.lastIndex(of: "_")!
        return MetricNameDescriptor(metricName: String(name[..<cut]), unitName: String(name[name.index(after: cut)...]), helpText: help)
    }

    /// A counter set to `value`: the kernel's and the worker's counts are totals already.
    private func set(_ name: String, _ labels: [(String, String)] = [], to value: UInt64, help: String) {
        let key = ([name] + labels.flatMap { [$0.0, $0.1] }).joined(separator: "\u{0}")
        let counter = labelled[key] ?? {
            let descriptor = Self.descriptor(name, help: help)
            let made = labels.isEmpty ? registry.makeCounter(descriptor: descriptor) : registry.makeCounter(descriptor: descriptor, labels: labels)
            labelled[key] = made
            return made
        }()
        counter.reset()
        counter.increment(by: Int64(clamping: value))
    }

    /// The exposition text, everything read now.
    func text() -> [UInt8] {
        let now = read()
        if let counters = now.counters {
            for policy in now.policies.sorted() {
                guard let flows = counters.flows(of: policy) else { continue }
                set("enforcer_policy_flows_total", [("policy", policy)], to: flows,
                    help: "Flows the policy granted (counted on each flow's first packet, in the kernel)")
                set("enforcer_policy_first_packet_bytes_total", [("policy", policy)], to: counters.bytes(of: policy) ?? 0,
                    help: "Bytes of the first packets of the flows the policy granted")
            }
            for (hook, value) in counters.defaultDeny {
                set("enforcer_default_deny_packets_total", [("hook", hook)], to: value.packets, help: "Packets the default deny of the hook dropped")
                set("enforcer_default_deny_bytes_total", [("hook", hook)], to: value.bytes, help: "Bytes the default deny of the hook dropped")
            }
        }
        set("enforcer_kernel_counters_readable", to: now.counters == nil ? 0 : 1,
            help: "1 when the kernel's counters were read for this scrape, 0 when they could not be")
        if let worker = now.worker {
            set("enforcer_worker_packets_total", to: UInt64(worker.packets), help: "Packets the web worker was handed by the queue")
            for (rule, actions) in worker.verdictsByRule {
                for (action, count) in actions {
                    set("enforcer_worker_verdicts_total", [("action", action), ("rule", rule.isEmpty ? "(default_action)" : rule)], to: UInt64(count),
                        help: "Web flows the worker decided, by the deciding rule's action (fail: the fail verdict) and rule")
                }
            }
            set("enforcer_worker_fail_verdicts_total", to: UInt64(worker.failVerdicts),
                help: "Web flows that got the fail verdict (unparseable, too long or slow, table full, a pattern PCRE2 gave up on)")
        }
        if let queue = now.kernelQueue {
            set("enforcer_queue_kernel_dropped_total", [("reason", "queue_full")], to: queue.queueDropped,
                help: "Packets the kernel dropped on the way to the worker (nfnetlink_queue): queue full, or the worker's socket full")
            set("enforcer_queue_kernel_dropped_total", [("reason", "socket_full")], to: queue.userDropped,
                help: "Packets the kernel dropped on the way to the worker (nfnetlink_queue): queue full, or the worker's socket full")
        }
        set("enforcer_flips_total", to: UInt64(now.tally.flips), help: "Time-window and expiry flips the daemon applied")
        set("enforcer_reloads_total", [("result", "ok")], to: UInt64(now.tally.reloadsApplied),
            help: "Reloads of the policy: applied (ok) or refused (the previous generation stayed live)")
        set("enforcer_reloads_total", [("result", "refused")], to: UInt64(now.tally.reloadsRefused),
            help: "Reloads of the policy: applied (ok) or refused (the previous generation stayed live)")
        for seconds in now.applySeconds { applyDuration.record(.nanoseconds(Int64(seconds * 1e9))) }
        return registry.emitToBuffer()
    }

    /// `GET /metrics` (or `/`): the text; anything else: 404, or 405 for another method.
    func answer(_ request: [UInt8], now _: Date) -> Portal.Answer? {
        switch HTTPRequestParser.parse(request, maxHeadLength: Portal.maxRequest) {
        case .needMoreData: return nil
        case .malformed: return Portal.Answer(response: Self.response(400, "Bad Request", Array("bad request\n".utf8)))
        case .complete(let head):
            let path = head.target.prefix { $0 != "?" }
            guard head.method == "GET" || head.method == "HEAD" else {
                return Portal.Answer(response: Self.response(405, "Method Not Allowed", Array("only GET /metrics\n".utf8)))
            }
            guard path == "/metrics" || path == "/" else {
                return Portal.Answer(response: Self.response(404, "Not Found", Array("enforcer serves GET /metrics here\n".utf8)))
            }
            let body = text()
            return Portal.Answer(response: Self.response(200, "OK", head.method == "HEAD" ? [] : body, length: body.count, type: Self.contentType))
        }
    }

    static func response(_ status: Int, _ reason: String, _ body: [UInt8], length: Int? = nil, type: String = "text/plain; charset=utf-8") -> [UInt8] {
        Array("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(length ?? body.count)\r\nConnection: close\r\n\r\n".utf8) + body
    }
}
