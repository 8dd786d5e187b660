import Foundation
import Testing
@testable import Compiler

/// The portal's address on a gateway: the default derived from the gateway's client-side
/// address, and `check`'s warning when the portal would send clients to their own loopback.
struct PortalAddressTests {
    /// A gateway `gw` with `gateway` addresses routing for clients at `clients`, a warn rule
    /// (so the portal is served), and `conf` as enforcer.conf.
    static func fixture(gateway: String, clients: String, conf: String = "", webRule: String = "r: {\n    match-domain: example.com\n    action: warn\n}\n") -> PolicyFixture {
        PolicyFixture(["rules.d/10-test.policy": """
            [system] gw: {
                address: \(gateway)
                tags: gateways
            }
            [system] pc: {
                address: \(clients)
                tags: office
            }
            [gateway-policy] out: {
                senders: office
                gateway: gw
                subnets: 0.0.0.0/0, ::/0
                allow: tcp/80, tcp/443
            }
            \(webRule)
            """], config: conf)
    }

    @Test(arguments: [
        // the gateway's addresses, its clients' addresses, the derived portal_url (nil: none, 127.0.0.1 stays)
        ("192.168.50.1, 203.0.113.7", "192.168.50.11", "http://192.168.50.1:8088/"),
        ("203.0.113.7, 192.168.50.1", "192.168.50.11", "http://192.168.50.1:8088/"),    // not the first written: the nearest
        ("fd00:50::1, 192.168.50.1", "192.168.50.11, fd00:50::11", "http://192.168.50.1:8088/"),  // IPv4 reads better
        ("fd00:50::1, 203.0.113.7", "fd00:50::11", "http://[fd00:50::1]:8088/"),       // the clients have IPv6 only
        ("127.0.0.1, 10.1.0.1", "10.2.0.5", "http://10.1.0.1:8088/"),                  // never loopback
        ("10.9.0.0/24", "10.8.0.11", nil),                                              // a block is no address to send anyone to
    ] as [(String, String, String?)])
    func theDefaultOnAGateway(_ gateway: String, _ clients: String, _ expected: String?) throws {
        let fixture = Self.fixture(gateway: gateway, clients: clients)
        let policy = try fixture.policySet()
        let resolved = policy.resolvingPortalURL(for: try #require(policy.system(named: "gw")))
        #expect(resolved.config.portalURL == expected ?? "http://127.0.0.1:8088/")
        #expect(resolved.config.portalURLLocation == nil)
        // Only the gateway's plan changes: a client's stays on the default.
        #expect(policy.resolvingPortalURL(for: try #require(policy.system(named: "pc"))).config.portalURL == "http://127.0.0.1:8088/")
    }

    @Test func aWrittenPortalURLIsKept() throws {
        let policy = try Self.fixture(gateway: "192.168.50.1", clients: "192.168.50.11", conf: "[web]\nportal_url = \"http://portal.lab:8088/\"\n").policySet()
        #expect(policy.resolvingPortalURL(for: try #require(policy.system(named: "gw"))).config.portalURL == "http://portal.lab:8088/")
    }

    @Test(arguments: [
        // enforcer.conf, the warn/deny web rule (nil: the fixture's warn rule), the warning `check` prints (nil: none)
        ("[web]\nportal_url = \"http://127.0.0.1:8088/\"\n", nil,
         "enforcer.conf:2:14: warning: portal_url's host 127.0.0.1 is a loopback address: the gateway redirects its clients there, and on a client that is the client itself, where no portal answers; use the gateway's address on its clients' network, such as \"http://192.168.50.1:8088/\", or leave portal_url out to have it derived"),
        ("[web]\nportal_url = \"http://localhost:8088/notice\"\n", nil,
         "enforcer.conf:2:14: warning: portal_url's host localhost is a loopback address: the gateway redirects its clients there, and on a client that is the client itself, where no portal answers; use the gateway's address on its clients' network, such as \"http://192.168.50.1:8088/\", or leave portal_url out to have it derived"),
        ("[web]\nportal_url = \"http://[::1]:8088/\"\n", "r: {\n    match-domain: example.com\n    action: deny\n}\n",
         "enforcer.conf:2:14: warning: portal_url's host ::1 is a loopback address: the gateway redirects its clients there, and on a client that is the client itself, where no portal answers; use the gateway's address on its clients' network, such as \"http://192.168.50.1:8088/\", or leave portal_url out to have it derived"),
        ("[web]\nportal_url = \"http://192.168.50.1:8088/\"\n", nil, nil),
        ("", nil, nil),  // the default, derived from 192.168.50.1
        // No portal: only permit rules, or deny rules without the block page.
        ("[web]\nportal_url = \"http://127.0.0.1:8088/\"\n", "r: {\n    match-domain: example.com\n    action: permit\n}\n", nil),
        ("[web]\nportal_url = \"http://127.0.0.1:8088/\"\ndeny_page = false\n", "r: {\n    match-domain: example.com\n    action: deny\n}\n", nil),
    ] as [(String, String?, String?)])
    func checkWarnsOfALoopbackPortal(_ conf: String, _ webRule: String?, _ expected: String?) throws {
        let fixture = webRule.map { Self.fixture(gateway: "192.168.50.1", clients: "192.168.50.11", conf: conf, webRule: $0) }
            ?? Self.fixture(gateway: "192.168.50.1", clients: "192.168.50.11", conf: conf)
        let warnings = fixture.load().diagnostics.map { "\($0)".replacingOccurrences(of: fixture.path + "/", with: "") }
        #expect(warnings == (expected.map { [$0] } ?? []))
    }

    @Test func checkWarnsAtAGatewayWithNoAddressToDeriveFrom() {
        let fixture = Self.fixture(gateway: "10.9.0.0/24", clients: "10.8.0.11")
        let warnings = fixture.load().diagnostics.map { "\($0)".replacingOccurrences(of: fixture.path + "/", with: "") }
        #expect(warnings == ["rules.d/10-test.policy:1:10: warning: gateway 'gw' has no single address that is not loopback, so the portal's default address stays http://127.0.0.1:8088/, which each client reads as itself; give it its address on the clients' network, or set [web] portal_url"])
    }

    @Test(arguments: [
        ("http://127.0.0.1:8088/", "127.0.0.1", true), ("https://user@LOCALHOST/x", "localhost", true),
        ("http://[::1]:8088/", "::1", true), ("http://[::ffff:127.0.0.2]/", "::ffff:127.0.0.2", true),
        ("http://app.localhost:80/", "app.localhost", true), ("http://192.168.50.1:8088/?a=b", "192.168.50.1", false),
        ("http://portal.lab/", "portal.lab", false), ("http://[fd00::1]/", "fd00::1", false), ("http://128.0.0.1/", "128.0.0.1", false),
    ])
    func loopbackHosts(_ url: String, _ host: String, _ loopback: Bool) {
        #expect(Config.portalHost(url) == host)
        #expect(Config.isLoopbackHost(host) == loopback)
    }
}
