import Foundation
import Testing

/// The server of a denied flow must see it end, however the client cut its ClientHello.
///
/// When the ClientHello comes in back-to-back segments, the worker reads them in one drain:
/// the verdict letting the first segment through and the decision on the last are made
/// together. The reset for the server must leave after that verdict, or it reaches the
/// server ahead of the bytes it follows and is ignored, and the server's side stays open.
/// A real `enforcer run` on the lab's gateway, real clients in the office, and a TLS server
/// behind the gateway that writes down, per client port, how and how soon each connection
/// ended on its side.
@Suite(.serialized)
struct ResetOrderLiveTests {
    static let port = 8443

    /// A TLS server (python ssl) on every address: for each connection, once its first bytes
    /// are in, one line "CLIENTPORT OUTCOME SECONDS": handshake; reset, eof or gone (the
    /// connection ended before python started TLS on it); or open (nothing more within 3 s),
    /// the seconds counted from those first bytes.
    static let server = """
        import select, socket, ssl, sys, threading, time
        port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
        s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port)); s.listen(64)
        lock = threading.Lock()
        def report(peer, outcome, since):
            with lock: print(peer[1], outcome, "%.3f" % (time.monotonic() - since), flush=True)
        def serve(c, peer):
            start = time.monotonic()
            if not select.select([c], [], [], 5)[0]:
                report(peer, "silent", start); return
            start = time.monotonic()
            c.settimeout(3)
            try:
                tls = ctx.wrap_socket(c, server_side=True)
                report(peer, "handshake", start)
                tls.close()
            except TimeoutError:
                report(peer, "open", start)
            except ConnectionResetError:
                report(peer, "reset", start)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError):
                report(peer, "eof", start)
            except OSError as error:
                try:
                    c.getpeername()
                    report(peer, "error-" + type(error).__name__, start)
                except OSError:
                    report(peer, "gone", start)
        while True:
            c, peer = s.accept()
            threading.Thread(target=serve, args=(c, peer), daemon=True).start()
        """

    /// The office's clients, from raw_tcp.py (`Paths.rawTCP`); each prints "CLIENTPORT RESULT
    /// HELLOBYTES", RESULT being ok (handshake done), reset, closed or timeout.
    enum Client: CustomStringConvertible {
        /// segmented-hello in this mode: a kernel socket (TCP_NODELAY) that writes its
        /// ClientHello in back-to-back writes, one segment each: "two" halves, "three" pieces,
        /// or "large": one write of a ClientHello padded past 1,500 bytes with ALPN names,
        /// which TCP cuts at the MSS.
        case segmented(String)
        /// reordered-hello from this source port: a raw socket (no kernel socket: the office's
        /// own resets for its port are dropped by the test) that sends its ClientHello in two
        /// back-to-back segments, the second half first, then finishes the TLS handshake
        /// itself. A kernel socket cannot send its bytes out of order, and this kernel has no
        /// netem to reorder them on the way.
        case reordering(port: Int)
        var description: String {
            switch self {
            case .segmented(let mode): "\(mode) segments"
            case .reordering: "two segments, second first"
            }
        }
    }

    struct Row {
        var name: String
        var address: String
        var client: Client
        var denied: Bool
    }

    static var rows: [Row] {
        var rows: [Row] = []
        for address in [GatewayLab.webV4, GatewayLab.webV6] {
            for mode in ["two", "three", "large"] {
                rows.append(Row(name: "bit.ly", address: address, client: .segmented(mode), denied: true))
                rows.append(Row(name: "example.org", address: address, client: .segmented(mode), denied: false))
            }
        }
        rows.append(Row(name: "bit.ly", address: GatewayLab.webV4, client: .reordering(port: 40200), denied: true))
        rows.append(Row(name: "example.org", address: GatewayLab.webV4, client: .reordering(port: 40201), denied: false))
        return rows
    }

    @Test func theServerOfADeniedFlowSeesItEndWithinASecond() throws {
        let lab = try GatewayLab()
        // Every flow gets its log line (the rows repeat client, host and outcome, which would
        // otherwise be counted rather than logged), so the log can be checked flow by flow.
        try lab.edit("enforcer.conf") {
            $0.replacingOccurrences(of: "web_ports = [80, 443]", with: "web_ports = [80, 443, \(Self.port)]")
                .replacingOccurrences(of: "[web]\n", with: "[web]\nlog_repeat_window = \"0s\"\n")
        }
        try lab.edit("rules.d/00-gateway.policy") { $0.replacingOccurrences(of: "allow: tcp/80, tcp/443,", with: "allow: tcp/80, tcp/443, tcp/\(Self.port),") }
        // No kernel socket owns the raw client's port: keep the office from resetting the SYN-ACK.
        try LiveTrafficTests.sh("""
            ip netns exec \(lab.office) nft -f - <<'EOF'
            table inet rawclient { chain output { type filter hook output priority 0; policy accept; tcp sport 40200-40299 tcp flags rst drop; }; }
            EOF
            """)
        let key = lab.policy + "/order-key.pem", cert = lab.policy + "/order-cert.pem"
        let made = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=enforcer-lab"])
        try #require(made.status == 0, "openssl req: \(made.stderr)")
        let seen = URL(fileURLWithPath: lab.policy + "-server.out")
        defer { try? FileManager.default.removeItem(at: seen) }
        try lab.spawn(in: lab.web, ["python3", "-c", Self.server, String(Self.port), cert, key], output: seen)
        let listening = Date().addingTimeInterval(5)
        while try run("/usr/sbin/ip", ["netns", "exec", lab.web, "ss", "-Hltn", "sport = :\(Self.port)"]).stdout.isEmpty && Date() < listening {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let log = URL(fileURLWithPath: lab.policy + "-run.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let worker = try lab.runWorker(log: log)

        var table = "sni  address  client  client saw  server saw\n"
        for row in Self.rows {
            let arguments: [String]
            switch row.client {
            case .segmented(let mode): arguments = ["python3", Paths.rawTCP, "segmented-hello", row.name, row.address, String(Self.port), mode]
            case .reordering(let port): arguments = ["python3", Paths.rawTCP, "reordered-hello", row.name, row.address, String(Self.port), String(port)]
            }
            let result = try run("/usr/sbin/ip", ["netns", "exec", lab.office] + arguments)
            let words = result.stdout.split(separator: "\n").last?.split(separator: " ").map(String.init) ?? []
            let what = "\(row.name) via \(row.address), \(row.client)"
            guard words.count == 3, let clientPort = Int(words[0]), let helloBytes = Int(words[2]) else {
                Issue.record("\(what): the client printed '\(result.stdout)' \(result.stderr.suffix(400))")
                continue
            }
            let clientSaw = words[1]
            if case .segmented("large") = row.client { #expect(helloBytes > 1500, "\(what): the ClientHello must span segments, it has \(helloBytes) bytes") }

            // The server's line for this connection: within 3 s if it stayed open, at once otherwise.
            var serverLine: [String]?
            let deadline = Date().addingTimeInterval(5)
            while serverLine == nil && Date() < deadline {
                let lines = ((try? String(contentsOf: seen, encoding: .utf8)) ?? "").split(separator: "\n")
                serverLine = lines.map { $0.split(separator: " ").map(String.init) }.first { $0.count == 3 && $0[0] == String(clientPort) }
                if serverLine == nil { Thread.sleep(forTimeInterval: 0.05) }
            }
            let serverSaw = serverLine.map { "\($0[1]) after \($0[2]) s" } ?? "nothing"
            table += "\(row.name)  \(row.address)  \(row.client)  \(clientSaw)  \(serverSaw)\n"
            if row.denied {
                #expect(clientSaw == "reset", "\(what): the client must be reset, saw \(clientSaw)")
                let ended = serverLine.map { ["reset", "eof", "gone"].contains($0[1]) && (Double($0[2]) ?? .infinity) < 1 } ?? false
                #expect(ended, "\(what): the server must see the connection end within 1 s, saw \(serverSaw)")
            } else {
                #expect(clientSaw == "ok", "\(what): the handshake must complete, the client saw \(clientSaw) \(result.stderr.suffix(400))")
                #expect(serverLine?[1] == "handshake", "\(what): the server must complete the handshake, saw \(serverSaw)")
            }
        }
        print(table)
        let text = lab.stopWorker(worker, log: log)
        #expect(text.contains("proto=tls host=bit.ly") && text.contains("action=deny rule=deny-urlshortening-domains"), "\(text)")
        #expect(text.contains("outcome=permit client=192.168.50.11:40201 server=203.0.113.10:\(Self.port) proto=tls host=example.org"), "\(text)")
    }
}
