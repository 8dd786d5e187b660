import Foundation
import Testing
@testable import Compiler

/// The service names the tests' policies may use, the same on every machine (the host's own
/// /etc/services differs from one distribution to the next).
let testServices = ServiceNames(parsing: """
    # name   port/protocol  aliases
    ssh      22/tcp
    domain   53/tcp
    domain   53/udp
    http     80/tcp         www
    https    443/tcp
    https    443/udp
    sctp-only 9/sctp
    """, path: "/etc/services")

/// A policy directory written to a fresh temporary folder.
struct PolicyFixture {
    let path: String

    init(_ files: [String: String], config: String? = nil) {
        path = NSTemporaryDirectory() + "enforcer-test-" + UUID().uuidString
        let fm = FileManager.default
        try! fm.createDirectory(atPath: path + "/rules.d", withIntermediateDirectories: true)
        if let config { try! config.write(toFile: path + "/enforcer.conf", atomically: true, encoding: .utf8) }
        for (name, text) in files {
            let file = path + "/" + name
            try! fm.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try! text.write(toFile: file, atomically: true, encoding: .utf8)
        }
    }

    /// One `rules.d/10-test.policy` holding `text`.
    init(policy text: String, config: String? = "[policy]\ntime_window_tz = \"utc\"\n") {
        self.init(["rules.d/10-test.policy": text], config: config)
    }

    func load() -> PolicyLoader.Loaded { PolicyLoader.load(directory: path, services: testServices) }

    /// The loaded set, failing the test with the diagnostics if it has errors.
    func policySet(sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> PolicySet {
        let result = load()
        let errors = result.diagnostics.filter { $0.severity == .error }
        #expect(errors.isEmpty, "\(errors.map(\.description).joined(separator: "\n"))", sourceLocation: sourceLocation)
        return try #require(result.policySet, sourceLocation: sourceLocation)
    }
}

/// `n` systems tagged `tag`, at 10.<block>.x.y.
func systems(_ n: Int, tag: String, prefix: String, block: Int) -> String {
    (0..<n).map { i in
        "[system] \(prefix)-\(i): {\n    address: 10.\(block).\(i / 250).\(i % 250 + 1)\n    tags: \(tag)\n}\n"
    }.joined()
}

func instant(_ text: String) -> Date {
    try! Instant.parse(text, defaultZone: TimeZone(identifier: "UTC")!)
}

func address(_ text: String) -> IPAddress { try! IPAddress.parse(text) }
