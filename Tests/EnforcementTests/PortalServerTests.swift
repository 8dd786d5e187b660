import Compiler
import Foundation
import Testing
@testable import Enforcement

/// The portal on a real loopback socket, on the daemon's real event loop, under visitors
/// that send too much, too slowly or nonsense: their answers, their timeouts, and that the
/// flip timer and a policy reload on the same loop still happen on time meanwhile.
@Suite("Portal server under abuse", .serialized)
struct PortalServerTests {
    /// Visitors in Python: 40 that trickle a byte every 50 ms, 3 with an endless head,
    /// 3 with nonsense, 2 that never send, then one ordinary visitor; prints one line each.
    static let visitors = #"""
    import socket, sys, threading, time
    port = int(sys.argv[1])
    out, lock = [], threading.Lock()
    def say(line):
        with lock: out.append(line)
    def connect():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        return s
    def answer(s):
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
        except Exception as e:
            return "error " + type(e).__name__
        return data.split(b"\r\n", 1)[0].decode() if data else "closed"
    def slow(i):
        s = connect()
        try:
            for b in b"GET /?rule=warn-news HTTP/1.1\r\nHost: p\r\n":
                s.send(bytes([b])); time.sleep(0.05)
            say("slow " + answer(s))
        except Exception as e:
            say("slow dropped")
    def endless(i):
        s = connect()
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: p\r\nX: " + b"a" * 20000)
        except Exception:
            pass
        say("endless " + answer(s))
    def nonsense(i):
        s = connect()
        s.sendall([b"\x16\x03\x01\x02\x00garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"GET /?rule=warn-news HTTP/1.1\r\nHost: p\rX\r\n\r\n"][i])
        say("nonsense " + answer(s))
    def silent(i):
        s = connect()
        say("silent " + answer(s))
    threads = [threading.Thread(target=f, args=(i,)) for f, n in ((slow, 40), (endless, 3), (nonsense, 3), (silent, 2)) for i in range(n)]
    for t in threads: t.start()
    time.sleep(0.5)
    s = connect(); s.sendall(b"GET /?rule=warn-news HTTP/1.1\r\nHost: p\r\n\r\n"); say("ordinary " + answer(s))
    for t in threads: t.join()
    print("\n".join(sorted(out)))
    """#

    @Test("oversized, slow and malformed requests get answers or timeouts; flips and reloads keep their time")
    func abuse() throws {
        let loop = EventLoop()
        loop.idleWaitMilliseconds = 20
        let port = UInt16.random(in: 20_000...40_000)
        let pages = Portal(webRules: try PortalTests.portal().rules.values.sorted { $0.name < $1.name }, acknowledgeFor: 600)
        var limits = PortalServer.Limits()
        limits.idleTimeout = 0.6
        limits.requestTimeout = 1.5
        limits.maxConnections = 32
        let server = PortalServer(socket: try ListeningSocket(address: try IPAddress.parse("127.0.0.1"), port: port), portal: pages,
                                  loop: loop, limits: limits)

        // Three flips, 0.7 s apart, on the wall-clock timer the daemon uses.
        let timer = try WallClockTimerSource(fired: .timerFired, clockChanged: .clockSet)
        let start = Date()
        var due = (1...3).map { start.addingTimeInterval(0.7 * Double($0)) }
        var lateness: [Double] = []
        timer.onEvent = { event in
            guard event == .timerFired, let instant = due.first else { return }
            lateness.append(Date().timeIntervalSince(instant))
            due.removeFirst()
            try? timer.arm(at: due.first)
        }
        try timer.arm(at: due.first)
        loop.add(timer)

        // A policy file written at 1.2 s is a reload 0.3 s later.
        let directory = NSTemporaryDirectory() + "enforcer-portal-watch-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let watch = try PolicyWatchSource(directory: directory)
        watch.watch([directory])
        var reloadedAfter: Double?
        watch.onEvent = { _ in reloadedAfter = Date().timeIntervalSince(start) }
        loop.add(watch)

        let attack = Process()
        attack.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        attack.arguments = ["-c", Self.visitors, String(port)]
        let out = Pipe()
        attack.standardOutput = out
        try attack.run()
        var wrote = false
        var mostOpen = 0
        while attack.isRunning || Date().timeIntervalSince(start) < 2.6 {
            try loop.turn()
            mostOpen = max(mostOpen, server.openConnections)
            if !wrote && Date().timeIntervalSince(start) >= 1.2 {
                try "x".write(toFile: directory + "/10-x.policy", atomically: true, encoding: .utf8)
                wrote = true
            }
            if Date().timeIntervalSince(start) > 20 { attack.terminate(); break }
        }
        let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").map(String.init)

        #expect(lateness.count == 3, "flips: \(lateness)")
        #expect(lateness.allSatisfy { $0 >= 0 && $0 < 0.1 }, "flip lateness: \(lateness)")
        #expect(reloadedAfter.map { $0 >= 1.5 && $0 < 1.7 } == true, "reload at \(String(describing: reloadedAfter))")
        #expect(mostOpen <= limits.maxConnections)
        #expect(server.openConnections == 0)
        #expect(lines.contains("ordinary HTTP/1.1 200 OK"), "\(lines)")
        #expect(lines.filter { $0 == "endless HTTP/1.1 431 Request Header Fields Too Large" }.count == 3, "\(lines)")
        #expect(lines.filter { $0 == "nonsense HTTP/1.1 400 Bad Request" }.count == 3, "\(lines)")
        #expect(lines.filter { $0 == "silent closed" }.count == 2, "\(lines)")
        // The trickling visitors never finish a head: dropped, never answered.
        #expect(lines.filter { $0.hasPrefix("slow") }.count == 40)
        #expect(!lines.contains { $0.hasPrefix("slow HTTP") }, "\(lines)")
        server.stop()
    }

    @Test("an answer the visitor reads slowly is written in parts")
    func partialWrites() throws {
        let loop = EventLoop()
        loop.idleWaitMilliseconds = 20
        let port = UInt16.random(in: 40_001...60_000)
        // A rule description of 3 MB makes a page larger than a loopback socket's buffers.
        let big = String(repeating: "b", count: 3_000_000)
        var rule = try #require(try PortalTests.portal().rules["warn-news"])
        rule.description = big
        let server = PortalServer(socket: try ListeningSocket(address: try IPAddress.parse("127.0.0.1"), port: port),
                                  portal: Portal(webRules: [rule], acknowledgeFor: 60), loop: loop)
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        reader.arguments = ["-c", """
            import socket, sys, time
            s = socket.create_connection(("127.0.0.1", \(port)))
            s.sendall(b"GET /?rule=warn-news HTTP/1.1\\r\\nHost: p\\r\\n\\r\\n")
            time.sleep(0.5)
            n = 0
            while True:
                c = s.recv(4096)
                if not c: break
                n += len(c); time.sleep(0.0005)
            print(n)
            """]
        let out = Pipe()
        reader.standardOutput = out
        try reader.run()
        let start = Date()
        while reader.isRunning && Date().timeIntervalSince(start) < 20 { try loop.turn() }
        let received = Int(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(received > 3_000_000)
        server.stop()
    }
}
