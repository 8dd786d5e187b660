import Foundation
import Testing

/// The block page, live in the EnforceGate lab: the seed's deny rule (`deny-urlshortening-domains`,
/// "Access to URL shortening services is not permitted") as an office user meets it. Over plain
/// HTTP curl is sent to the portal's block page, which names the rule, shows its description and
/// the URL, and has no button; the web server's side of the connection is reset. Over TLS it stays
/// a reset, and the worker's log says why no page was shown. With `deny_page = false`, a reset only.
@Suite(.serialized)
struct BlockPageLiveTests {
    /// A plain-HTTP client that waits until the server has accepted (a reset for a connection
    /// still in the accept queue only removes it there, and the observer would never see it),
    /// then sends one request: prints the status line and Location, or "reset".
    static let delayedRequest = """
        import socket, sys, time
        host, address, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
        s = socket.create_connection((address, port), timeout=3)
        time.sleep(0.5)
        try:
            s.sendall(("GET %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % (path, host)).encode())
            answer = b""
            while True:
                data = s.recv(65536)
                if not data: break
                answer += data
            head = answer.split(b"\\r\\n\\r\\n")[0].decode().split("\\r\\n")
            print(" ".join([head[0]] + [line[10:] for line in head[1:] if line.lower().startswith("location: ")]), flush=True)
        except ConnectionResetError:
            print("reset", flush=True)
        """

    static let blockPage = "http://192.168.50.1:8088/blocked"
    static let description = "Access to URL shortening services is not permitted"

    @Test(arguments: [true, false])
    func aDeniedRequest(denyPage: Bool) throws {
        let lab = try GatewayLab()
        try lab.edit("enforcer.conf") {
            $0.replacingOccurrences(of: "web_ports = [80, 443]", with: "web_ports = [80, 443, 8080]")
                .replacingOccurrences(of: "deny_page = true", with: "deny_page = \(denyPage)" + (denyPage ? "" : "\nlog_flows = \"deny\""))
        }
        try lab.edit("rules.d/00-gateway.policy") { $0.replacingOccurrences(of: "allow: tcp/80, tcp/443,", with: "allow: tcp/80, tcp/443, tcp/8080,") }
        try lab.serveHTTP()
        try lab.serveTLS()
        let seen = URL(fileURLWithPath: lab.policy + "-observer.out")
        defer { try? FileManager.default.removeItem(at: seen) }
        let server = try lab.spawn(in: lab.web, ["python3", "-c", WebWorkerLiveTests.observer, "8080"], output: seen)
        Thread.sleep(forTimeInterval: 0.3)
        let log = URL(fileURLWithPath: lab.policy + "-run.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let worker = try lab.runWorker(log: log)
        func curl(_ url: String) throws -> String {
            try run("/usr/sbin/ip", ["netns", "exec", lab.office, "curl", "-s", "-m", "3", url]).stdout
        }

        // The seed's own example URL (its expectation https://bit.ly/3abc), over plain HTTP,
        // on both address families.
        for address in [GatewayLab.webV4, "[\(GatewayLab.webV6)]"] {
            let denied = try lab.fetch("http://\(address)/3abc", host: "bit.ly")
            guard denyPage else {
                #expect(denied.wasReset, "deny_page = false via \(address): expected a reset, saw \(denied)")
                continue
            }
            guard case let .status(302, location?) = denied else { Issue.record("via \(address): expected the block page redirect, saw \(denied)"); continue }
            #expect(location == Self.blockPage + "?rule=deny-urlshortening-domains&url=http%3A%2F%2Fbit.ly%2F3abc")
            let page = try curl(location)
            #expect(page.contains("<p>\(Self.description)</p>"), "\(page)")
            #expect(page.contains("<p>You asked for <code>http://bit.ly/3abc</code> (rule <code>deny-urlshortening-domains</code>).</p>"), "\(page)")
            #expect(!page.contains("<button") && !page.contains("<form"), "a block page has nothing to acknowledge: \(page)")
        }
        if denyPage {
            // Markup in the URL is shown as text.
            let forged = try curl(Self.blockPage + "?rule=deny-urlshortening-domains&url=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
            #expect(forged.contains("<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>") && !forged.contains("<script>"), "\(forged)")
        }

        // The web server's side: reset, with or without the page.
        let client = try run("/usr/sbin/ip", ["netns", "exec", lab.office, "python3", "-c", Self.delayedRequest, "bit.ly", GatewayLab.webV4, "8080", "/3abc"])
        let expected = denyPage ? "HTTP/1.1 302 Found \(Self.blockPage)?rule=deny-urlshortening-domains&url=http%3A%2F%2Fbit.ly%2F3abc" : "reset"
        #expect(client.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected, "\(client.stdout)\(client.stderr)")
        let deadline = Date().addingTimeInterval(5)
        while server.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let observed = try String(contentsOf: seen, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(observed == "reset", "the server must see a reset, saw '\(observed)'")

        // TLS: no page can be shown inside a handshake.
        let tls = try lab.fetch("https://bit.ly/3abc")
        #expect(tls.wasReset, "TLS deny: expected a reset, saw \(tls)")
        // The same again at once, and a permitted site: with log_flows = "deny" (the false
        // case) the permit gets no line, and the repeat is counted rather than logged.
        #expect(try lab.fetch("https://bit.ly/3abc").wasReset)
        let permitted = try lab.fetch("https://example.org/")
        #expect(!permitted.wasReset, "\(permitted)")

        let text = lab.stopWorker(worker, log: log)
        #expect(text.contains("outcome=\(denyPage ? "redirect" : "deny") client=192.168.50.11:") && text.contains(" proto=http host=bit.ly method=GET url=http://bit.ly/3abc action=deny rule=deny-urlshortening-domains"), "\(text)")
        #expect(text.contains("proto=tls host=bit.ly") && text.contains("action=deny rule=deny-urlshortening-domains pattern=\"domain bit.ly\""), "\(text)")
        #expect(text.contains("reason=\"no block page on TLS: it cannot be shown without breaking the handshake; reset both ways\"") == denyPage, "\(text)")
        let tlsDenials = text.components(separatedBy: "proto=tls host=bit.ly").count - 1
        if denyPage {
            #expect(text.contains("outcome=permit client=192.168.50.11:") && text.contains("proto=tls host=example.org"), "log_flows = \"all\" logs permits: \(text)")
        } else {
            #expect(!text.contains("outcome=permit client=192.168.50.11:") && !text.contains("host=example.org"), "log_flows = \"deny\" leaves permits out: \(text)")
        }
        #expect(tlsDenials == 1, "the same denial again within 10 s is counted, not logged: \(text)")
        #expect(text.contains("portal: serving http://192.168.50.1:8088/ on 192.168.50.1:8088 for 0 warn/aup rules and the block page of deny rules (\(Self.blockPage))") == denyPage,
                "\(text)")
    }
}
