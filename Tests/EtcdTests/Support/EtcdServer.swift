import Etcd
import Foundation
import Glibc
import Testing

/// A real etcd (Debian's /usr/bin/etcd) for one test: on 127.0.0.1, on ports free when it
/// starts, with a fresh data directory. `EtcdServer.with` starts it, waits until it answers,
/// and kills it and removes its directory when the body ends, thrown error or not.
final class EtcdServer: @unchecked Sendable {
    static let binary = "/usr/bin/etcd"

    /// The folder of this server's data, certificates and log.
    let directory: String
    let clientURL: String
    let tls: TLSFiles?
    private let process: Process

    struct Options {
        /// Serve https, verify clients' certificates (`--client-cert-auth`).
        var tls: TLSFiles?
        /// `--auth-token-ttl`: how long an unused token lives, in seconds.
        var authTokenTTL: Int?
        /// How often a quiet watch with progress_notify hears from etcd.
        var progressNotifyInterval = "1s"
    }

    /// Runs `body` with a started etcd, then kills it and removes its directory.
    static func with<T>(_ options: Options = Options(), _ body: (EtcdServer) async throws -> T) async throws -> T {
        let server = try await start(options)
        defer { server.stop() }
        return try await body(server)
    }

    /// A client of this server, shut down when `body` ends (the HTTP client beneath must be).
    func withClient<T>(tls: EtcdTLS? = nil, credentials: EtcdCredentials? = nil, endpoints: [String]? = nil,
                       _ body: (EtcdGatewayClient) async throws -> T) async throws -> T {
        let client = try EtcdGatewayClient(endpoints: endpoints ?? [clientURL], tls: tls ?? self.tls?.clientTLS, credentials: credentials,
                                           requestTimeout: .seconds(10))
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private init(directory: String, clientURL: String, tls: TLSFiles?, process: Process) {
        self.directory = directory
        self.clientURL = clientURL
        self.tls = tls
        self.process = process
    }

    /// Starts etcd; again on new ports if it exited at once (a port taken since it was found free).
    private static func start(_ options: Options) async throws -> EtcdServer {
        for attempt in 1... {
            do {
                return try await launch(options)
            } catch let failure as ServerFailure where failure.exited && attempt < 3 {
                continue
            }
        }
        fatalError("unreachable")
    }

    private static func launch(_ options: Options) async throws -> EtcdServer {
        let directory = NSTemporaryDirectory() + "enforcer-etcd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (clientPort, peerPort) = try (freePort(), freePort())
        let scheme = options.tls == nil ? "http" : "https"
        let clientURL = "\(scheme)://127.0.0.1:\(clientPort)"
        let peerURL = "http://127.0.0.1:\(peerPort)"
        var arguments = [
            "--name", "test", "--data-dir", directory + "/data",
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
            "--initial-cluster", "test=\(peerURL)",
            // One member on loopback: elect itself in a fraction of the default second.
            "--heartbeat-interval", "20", "--election-timeout", "200",
            "--experimental-watch-progress-notify-interval", options.progressNotifyInterval,
        ]
        if let tls = options.tls {
            arguments += ["--cert-file", tls.serverCertificate, "--key-file", tls.serverKey, "--trusted-ca-file", tls.caCertificate,
                          "--client-cert-auth"]
        }
        if let ttl = options.authTokenTTL { arguments += ["--auth-token-ttl", String(ttl)] }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: directory + "/etcd.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/etcd.log"))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let server = EtcdServer(directory: directory, clientURL: clientURL, tls: options.tls, process: process)
        do {
            try await server.waitUntilAnswering()
        } catch {
            server.stop()
            throw error
        }
        return server
    }

    /// Polls the status until etcd answers (it has elected itself), for at most 15 s.
    private func waitUntilAnswering() async throws {
        let client = try EtcdGatewayClient(endpoints: [clientURL], tls: tls?.clientTLS, connectTimeout: .seconds(1), requestTimeout: .seconds(2))
        let deadline = ContinuousClock.now + .seconds(15)
        var last: EtcdError?
        // At least 40 tries, whatever the clock says: in the full suite, other tests' CPU-bound
        // work can keep this task from running for longer than the deadline, and a timeout
        // must mean etcd did not answer, not that the test never asked again.
        var attempts = 0
        while ContinuousClock.now < deadline || attempts < 40 {
            attempts += 1
            guard process.isRunning else { break }
            do {
                _ = try await client.status()
                await client.shutdown()
                return
            } catch {
                last = error
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        await client.shutdown()
        let log = (try? String(contentsOfFile: directory + "/etcd.log", encoding: .utf8)) ?? ""
        throw ServerFailure(description: "etcd did not start (\(last.map(String.init(describing:)) ?? "exited")); its log ends:\n"
                                + log.split(separator: "\n").suffix(15).joined(separator: "\n"), exited: !process.isRunning)
    }

    /// Kills etcd at once (as a crash or a power cut would), leaving its directory.
    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Kills etcd and removes its directory.
    func stop() {
        kill()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A counter from etcd's Prometheus metrics (`GET /metrics`, plain http only).
    func metric(_ name: String) throws -> Double? {
        let text = try curl(clientURL + "/metrics")
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }
}

struct ServerFailure: Error, CustomStringConvertible {
    var description: String
    /// etcd exited by itself before answering.
    var exited = false
}

/// A TCP port on 127.0.0.1 that nothing listens on right now: bound to port 0, read, released.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ServerFailure(description: "socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ServerFailure(description: "bind: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Runs a command to its end; its standard output, or an error with its standard error.
@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ServerFailure(description: "\(executable) \(arguments.joined(separator: " ")) failed: \(String(decoding: err, as: UTF8.self))")
    }
    return String(decoding: out, as: UTF8.self)
}

func curl(_ url: String) throws -> String { try run("/usr/bin/curl", ["-sS", "--max-time", "5", url]) }
