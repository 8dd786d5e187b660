import Foundation
import Testing

/// The EnforceGate lab: an office host, the gateway gw-1 and a web server in three network
/// namespaces, IPv4 and IPv6 on both links, with a copy of examples/enforcegate that a test
/// may edit before it applies or runs it.
final class GatewayLab {
    let tag = "\(getpid() % 10000)-\(Int.random(in: 0..<1000))"
    let office: String, gateway: String, web: String
    let policy: String
    var state: String { policy + "-state" }
    private var processes: [Process] = []
    static let webV4 = "203.0.113.10", webV6 = "2001:db8:1::10"

    init() throws {
        precondition(getuid() == 0, "the gateway lab builds network namespaces and must run as root (CI does)")
        office = "enfg-\(tag)-office"
        gateway = "enfg-\(tag)-gw"
        web = "enfg-\(tag)-web"
        policy = NSTemporaryDirectory() + "enforcer-gw-\(tag)"
        try FileManager.default.copyItem(atPath: Paths.example("enforcegate"), toPath: policy)
        try LiveTrafficTests.sh("""
            for n in \(office) \(gateway) \(web); do ip netns add $n; ip -n $n link set lo up; done
            ip link add o\(tag) netns \(office) type veth peer name in0 netns \(gateway)
            ip link add w\(tag) netns \(web) type veth peer name out0 netns \(gateway)
            ip -n \(office) link set o\(tag) name eth0; ip -n \(web) link set w\(tag) name eth0
            for n in \(office) \(web); do ip -n $n link set eth0 up; done
            ip -n \(gateway) link set in0 up; ip -n \(gateway) link set out0 up
            ip -n \(office) addr add 192.168.50.11/24 dev eth0; ip -n \(office) addr add fd00:50::11/64 dev eth0 nodad
            ip -n \(gateway) addr add 192.168.50.1/24 dev in0; ip -n \(gateway) addr add fd00:50::1/64 dev in0 nodad
            ip -n \(gateway) addr add 203.0.113.1/24 dev out0; ip -n \(gateway) addr add 2001:db8:1::1/64 dev out0 nodad
            ip -n \(web) addr add \(Self.webV4)/24 dev eth0; ip -n \(web) addr add \(Self.webV6)/64 dev eth0 nodad
            ip -n \(office) route add default via 192.168.50.1; ip -n \(office) -6 route add default via fd00:50::1
            ip -n \(web) route add default via 203.0.113.1; ip -n \(web) -6 route add default via 2001:db8:1::1
            ip netns exec \(gateway) sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
            """)
    }

    deinit {
        for process in processes { Self.stop(process) }
        for n in [office, gateway, web] { Self.removeNamespace(n) }
        try? FileManager.default.removeItem(atPath: policy)
        try? FileManager.default.removeItem(atPath: state)
    }

    /// SIGKILL, then up to 3 s for it to go. Children of the test process inherit the signal
    /// mask of Swift Testing's worker threads, which blocks SIGTERM: only SIGKILL is sure.
    static func stop(_ process: Process) {
        kill(process.processIdentifier, SIGKILL)
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    }

    /// Kills everything still running inside (forked servers serving a connection outlive
    /// their parent), then deletes the namespace.
    static func removeNamespace(_ name: String) {
        _ = try? run("/bin/sh", ["-c", "ip netns pids \(name) | xargs -r kill -KILL; ip netns del \(name)"])
    }

    /// Stops `enforcer run` and returns its log once it says it stopped.
    func stopWorker(_ process: Process, log: URL) -> String {
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        var text = ""
        while Date() < deadline {
            text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if text.contains("run: stopped") { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return text
    }

    /// Rewrites a file of the policy copy.
    func edit(_ relativePath: String, _ change: (String) -> String) throws {
        let path = policy + "/" + relativePath
        try change(try String(contentsOfFile: path, encoding: .utf8)).write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Starts a long-running process in a namespace; stopped when the lab goes.
    @discardableResult
    func spawn(in namespace: String, _ arguments: [String], output: URL? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: policy)
        if let output {
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        process.standardInput = FileHandle.nullDevice
        try process.run()
        processes.append(process)
        return process
    }

    /// python3 http.server on port 80, both families.
    func serveHTTP() throws {
        try spawn(in: web, ["python3", "-m", "http.server", "--bind", "::", "80"])
        try waitForListener(port: 80)
    }

    /// openssl s_server on port 443 of both addresses, with a throwaway self-signed certificate.
    func serveTLS() throws {
        let key = policy + "/lab-key.pem", cert = policy + "/lab-cert.pem"
        let made = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=enforcer-lab"])
        try #require(made.status == 0, "openssl req: \(made.stderr)")
        for address in [Self.webV4, "[\(Self.webV6)]"] {
            try spawn(in: web, ["openssl", "s_server", "-accept", "\(address):443", "-cert", cert, "-key", key, "-www", "-quiet"])
        }
        try waitForListener(port: 443, count: 2)
    }

    private func waitForListener(port: Int, count: Int = 1) throws {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            let listing = try run("/usr/sbin/ip", ["netns", "exec", web, "ss", "-Hltn", "sport = :\(port)"]).stdout
            if listing.split(separator: "\n").count >= count { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        Issue.record("nothing listens on port \(port) in the web namespace")
    }

    func apply(_ extra: [String] = []) throws -> CommandResult {
        try run("/usr/sbin/ip", ["netns", "exec", gateway, Paths.enforcer, "apply", "--dir", policy, "--system", "gw-1",
                                  "--state-dir", state] + extra)
    }

    /// `enforcer run` on the gateway; returns once the worker listens. Its log goes to `log`.
    func runWorker(log: URL) throws -> Process {
        let process = try spawn(in: gateway, [Paths.enforcer, "run", "--dir", policy, "--system", "gw-1", "--state-dir", state], output: log)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && process.isRunning {
            if (try? String(contentsOf: log, encoding: .utf8))?.contains("worker: judging queue") == true { return process }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        Issue.record("enforcer run did not start its worker: \(text)")
        return process
    }

    /// What curl in the office says: the HTTP status, or curl's exit code when it failed.
    enum Fetch: Equatable, CustomStringConvertible {
        case status(Int, location: String?)
        case failed(Int32)
        var description: String {
            switch self {
            case let .status(code, location): "HTTP \(code)" + (location.map { " → \($0)" } ?? "")
            case let .failed(code): "curl exit \(code)\(code == 35 || code == 56 ? " (reset)" : code == 28 ? " (timeout)" : "")"
            }
        }
        /// The connection was cut by a reset: curl 35 during the TLS handshake, 56 on receive.
        var wasReset: Bool { self == .failed(35) || self == .failed(56) }
        var succeeded: Bool { if case .status(200, _) = self { true } else { false } }
    }

    /// `https://NAME/` with the name resolved to the web server (so it is the SNI), or
    /// `http://ADDRESS/PATH` with a Host header.
    func fetch(_ url: String, resolveTo address: String = webV4, host: String? = nil) throws -> Fetch {
        var arguments = ["netns", "exec", office, "curl", "-sk", "-o", "/dev/null", "-m", "3", "-w", "%{http_code} %{redirect_url}"]
        if url.hasPrefix("https://") {
            let name = url.dropFirst(8).prefix { $0 != "/" && $0 != ":" }
            arguments += ["--resolve", "\(name):443:\(address.contains(":") ? "[\(address)]" : address)"]
        }
        if let host { arguments += ["-H", "Host: \(host)"] }
        let result = try run("/usr/sbin/ip", arguments + [url])
        guard result.status == 0 else { return .failed(result.status) }
        let parts = result.stdout.split(separator: " ", maxSplits: 1).map(String.init)
        return .status(Int(parts.first ?? "") ?? 0, location: parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil)
    }
}
