import Foundation
import Testing

/// The warn/aup portal listens where the clients are: with no address of its own in
/// `portal_url` or `portal_listen`, on the gateway's own addresses in the policy (its client
/// side), never on every address (which would answer the upstream side too).
@Suite(.serialized)
struct PortalListenLiveTests {
    @Test("the portal listens on the gateway's client-side addresses only")
    func clientSideOnly() throws {
        let lab = try GatewayLab()
        try lab.edit("enforcer.conf") {
            $0.replacingOccurrences(of: "portal_url = \"http://192.168.50.1:8088/\"", with: "portal_url = \"http://portal.lab:8088/\"")
        }
        try "warn-news: {\n    match-domain: news.example\n    action: warn\n    description: News sites are for breaks\n}\n"
            .write(toFile: lab.policy + "/rules.d/50-portal.policy", atomically: true, encoding: .utf8)
        let log = URL(fileURLWithPath: lab.policy + "-run.log")
        defer { try? FileManager.default.removeItem(at: log) }
        let worker = try lab.runWorker(log: log)
        defer { GatewayLab.stop(worker) }
        var listening: [String] = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            listening = try run("/usr/sbin/ip", ["netns", "exec", lab.gateway, "ss", "-Hltn", "sport = :8088"]).stdout
                .split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true)[3] }.map(String.init).sorted()
            if listening.count >= 2 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(listening == ["192.168.50.1:8088", "[fd00:50::1]:8088"], "\(listening)\n\(text)")
        #expect(text.contains("portal: serving http://portal.lab:8088/ on 192.168.50.1:8088, [fd00:50::1]:8088"), "\(text)")
    }
}
