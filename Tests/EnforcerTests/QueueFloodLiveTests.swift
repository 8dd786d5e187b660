import Foundation
import Testing

/// A flood of new connections must not push flows past the worker, nor crowd out the other
/// clients: the flooding source's SYNs over its share are dropped in the kernel before the
/// queue (`[kernel] queue_syn_rate`), and a queue that fills anyway drops rather than lets
/// packets through unjudged (`[kernel] queue_full = "closed"`). In the gateway lab, with a
/// short queue so that a flood overflows it for sure when nothing limits it.
@Suite(.serialized)
struct QueueFloodLiveTests {
    /// Packets the kernel dropped because queue `number` was full (nfnetlink_queue's
    /// queue_dropped column), in the gateway's namespace.
    static func queueDropped(_ lab: GatewayLab, number: Int = 0) throws -> Int {
        let text = try run("/usr/sbin/ip", ["netns", "exec", lab.gateway, "cat", "/proc/net/netfilter/nfnetlink_queue"]).stdout
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ").compactMap { Int($0) }
            if fields.count >= 6, fields[0] == number { return fields[5] }
        }
        return 0
    }

    /// What a flood from office-pc-1 (192.168.50.11) does while office-pc-1 asks for a denied
    /// domain and office-pc-2 (192.168.50.12, the same office namespace) for a permitted one.
    struct Outcome {
        var denied: [String: Int] = [:]
        var permitted: [String: Int] = [:]
        var queueDropped = 0
    }

    static func flood(kernel settings: String) throws -> Outcome {
        let lab = try GatewayLab()
        try lab.edit("enforcer.conf") { $0.replacingOccurrences(of: "[kernel]", with: "[kernel]\nqueue_maxlen = 16\n" + settings) }
        try LiveTrafficTests.sh("ip -n \(lab.office) addr add 192.168.50.12/24 dev eth0")
        try lab.serveTLS()
        let log = URL(fileURLWithPath: lab.policy + "-run.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let worker = try lab.runWorker(log: log)
        defer { GatewayLab.stop(worker) }
        #expect(try lab.fetch("https://example.org/").succeeded, "the lab does not serve a permitted site")
        #expect(try lab.fetch("https://bit.ly/").wasReset, "bit.ly is not denied in the lab")

        // SYNs from office-pc-1 and random ports to the web server's 443 for 8 s, as fast as one
        // raw socket sends them (raw_tcp.py syn-flood).
        let flood = try lab.spawn(in: lab.office, ["python3", Paths.rawTCP, "syn-flood", "192.168.50.11", GatewayLab.webV4, "443", "8"])
        defer { GatewayLab.stop(flood) }
        Thread.sleep(forTimeInterval: 0.5)
        var outcome = Outcome()
        let end = Date().addingTimeInterval(6)
        while Date() < end {
            let denied = try lab.fetch("https://bit.ly/")
            outcome.denied[denied.succeeded ? "HTTP 200" : denied.description, default: 0] += 1
            let other = try run("/usr/sbin/ip", ["netns", "exec", lab.office, "curl", "-sk", "-o", "/dev/null", "-m", "3", "-w", "%{http_code}",
                                                  "--interface", "192.168.50.12", "--resolve", "example.org:443:\(GatewayLab.webV4)", "https://example.org/"])
            outcome.permitted[other.status == 0 ? "HTTP \(other.stdout)" : "curl exit \(other.status)", default: 0] += 1
        }
        outcome.queueDropped = try Self.queueDropped(lab)
        return outcome
    }

    @Test("under a SYN flood from one client, a denied domain stays denied and another client's permitted requests succeed")
    func aFloodCannotOpenADenyNorCrowdOutOthers() throws {
        let limited = try Self.flood(kernel: "")
        print("with the defaults (per-source SYN limit, queue_full closed): denied \(limited.denied), permitted from another client \(limited.permitted), queue full drops \(limited.queueDropped)")
        #expect(limited.denied["HTTP 200"] == nil, "a denied domain was reached during the flood: \(limited.denied)")
        #expect(limited.permitted.keys.sorted() == ["HTTP 200"], "another client's permitted requests failed: \(limited.permitted)")

        // Without the per-source limit the flood fills the queue: still nothing unjudged gets
        // through (it drops), which shows the queue really overflowed in this lab.
        let unlimited = try Self.flood(kernel: "queue_syn_rate = 0")
        print("without the SYN limit (queue_full closed): denied \(unlimited.denied), permitted from another client \(unlimited.permitted), queue full drops \(unlimited.queueDropped)")
        #expect(unlimited.queueDropped > 0, "the flood never filled the queue, so this proves nothing")
        #expect(unlimited.denied["HTTP 200"] == nil, "a denied domain was reached during the flood: \(unlimited.denied)")
    }
}
