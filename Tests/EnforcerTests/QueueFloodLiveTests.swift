import Foundation
import Testing

/// A flood of new connections must not push flows past the worker, nor crowd out the other
/// clients: the flooding source's SYNs over its share are dropped in the kernel before the
/// queue (`[kernel] queue_syn_rate`), and a queue that fills anyway drops rather than lets
/// packets through unjudged (`[kernel] queue_full = "closed"`). In the gateway lab, with a
/// short queue so that a flood overflows it for sure when nothing limits it.
@Suite(.serialized)
struct QueueFloodLiveTests {
    /// SYNs from the office's address and random ports to ADDRESS:443 for SECONDS, as fast as
    /// one raw socket sends them; prints how many.
    static let synFlood = #"""
        import random, socket, struct, sys, time
        src, dst, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
        def checksum(data):
            if len(data) % 2: data += b"\0"
            total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
            while total >> 16: total = (total & 0xffff) + (total >> 16)
            return ~total & 0xffff
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
        end, sent = time.time() + seconds, 0
        while time.time() < end:
            for _ in range(200):
                sport = random.randint(20000, 60000)
                tcp = struct.pack("!HHIIBBHHH", sport, 443, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
                pseudo = saddr + daddr + struct.pack("!BBH", 0, 6, len(tcp))
                tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, saddr, daddr)
                s.sendto(ip + tcp, (dst, 0))
                sent += 1
        print(sent)
        """#

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

        let flood = try lab.spawn(in: lab.office, ["python3", "-c", Self.synFlood, "192.168.50.11", GatewayLab.webV4, "8"])
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
