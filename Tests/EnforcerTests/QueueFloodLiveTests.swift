import Foundation
import Testing

/// A flood of new connections must not push flows past the worker: with the queue full,
/// the kernel drops (`[kernel] queue_full = "closed"`, the default), so a denied domain stays
/// denied while the flood lasts. In the gateway lab, with a short queue so that a flood from
/// the office overflows it for sure.
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

    @Test("under a SYN flood that overflows the queue, a denied domain stays denied")
    func aFloodCannotOpenADeny() throws {
        let lab = try GatewayLab()
        try lab.edit("enforcer.conf") { $0.replacingOccurrences(of: "[kernel]", with: "[kernel]\nqueue_maxlen = 16") }
        try lab.serveTLS()
        let log = URL(fileURLWithPath: lab.policy + "-run.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let worker = try lab.runWorker(log: log)
        defer { GatewayLab.stop(worker) }
        #expect(try lab.fetch("https://example.org/").succeeded, "the lab does not serve a permitted site")
        #expect(try lab.fetch("https://bit.ly/").wasReset, "bit.ly is not denied in the lab")

        let flood = try lab.spawn(in: lab.office, ["python3", "-c", Self.synFlood, "192.168.50.11", GatewayLab.webV4, "6"])
        defer { GatewayLab.stop(flood) }
        Thread.sleep(forTimeInterval: 0.5)
        var outcomes: [String: Int] = [:]
        let end = Date().addingTimeInterval(4.5)
        while Date() < end {
            let fetched = try lab.fetch("https://bit.ly/")
            outcomes[fetched.succeeded ? "HTTP 200" : fetched.description, default: 0] += 1
        }
        let dropped = try Self.queueDropped(lab)
        print("denied domain during the flood: \(outcomes); queue full drops: \(dropped)")
        #expect(dropped > 0, "the flood never filled the queue, so this proves nothing")
        #expect(outcomes["HTTP 200"] == nil, "a denied domain was reached during the flood: \(outcomes)")
        #expect(outcomes.values.reduce(0, +) >= 2)
    }
}
