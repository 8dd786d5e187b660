@testable import Compiler
import Foundation
import Testing

/// `[web] deny_page` and the block page it needs: read from enforcer.conf, where the page
/// lives beside `portal_url`, and when the portal is served at all.
struct ConfigTests {
    static func parse(_ text: String) -> Config {
        let (config, diagnostics) = Config.parse(file: "enforcer.conf", text: text)
        #expect(diagnostics.isEmpty, "\(diagnostics.map(\.description))")
        return config
    }

    @Test("deny_page", arguments: [
        ("", true),
        ("[web]\nfail = \"closed\"\n", true),
        ("[web]\ndeny_page = true\n", true),
        ("[web]\ndeny_page = false\n", false),
        ("[web]\ndeny_page = false   # reset only\n", false),
    ])
    func denyPage(_ text: String, _ expected: Bool) {
        #expect(Self.parse(text).denyPage == expected)
    }

    @Test("[metrics] listen: loopback by default, an address of the operator's, or off", arguments: [
        ("", "127.0.0.1:9469"),
        ("[metrics]\nlisten = \"10.0.0.1:9100\"\n", "10.0.0.1:9100"),
        ("[metrics]\nlisten = \"[::1]:9469\"\n", "::1:9469"),
        ("[metrics]\nlisten = \"\"\n", nil),
        ("[metrics]\nlisten = \"off\"\n", nil),
    ] as [(String, String?)])
    func metricsListen(_ text: String, _ expected: String?) {
        let endpoint = Self.parse(text).metricsEndpoint
        #expect(endpoint.map { "\($0.address):\($0.port)" } == expected)
    }

    @Test("the block page lies beside the portal's page", arguments: [
        ("http://127.0.0.1:8088/", "http://127.0.0.1:8088/blocked"),
        ("http://192.168.50.1:8088", "http://192.168.50.1:8088/blocked"),
        ("http://[fd00:50::1]:8088/", "http://[fd00:50::1]:8088/blocked"),
        ("https://portal.example/notice", "https://portal.example/blocked"),
        ("https://portal.example/gate/", "https://portal.example/gate/blocked"),
        ("https://portal.example/gate/notice?lang=en", "https://portal.example/gate/blocked?lang=en"),
        ("https://portal.example?lang=en", "https://portal.example/blocked?lang=en"),
    ])
    func blockPageURL(_ portal: String, _ expected: String) {
        #expect(Self.parse("[web]\nportal_url = \"\(portal)\"\n").blockPageURL == expected)
    }

    @Test("the portal is served for warn/aup pages, and for the block page while deny_page is on", arguments: [
        ([WebAction.deny], "", true),
        ([.deny], "[web]\ndeny_page = false\n", false),
        ([.warn, .deny], "[web]\ndeny_page = false\n", true),
        ([.aup], "", true),
        ([.permit], "", false),
        ([.permit], "[policy]\ndefault_action = \"deny\"\n", true),
        ([.permit], "[policy]\ndefault_action = \"deny\"\n[web]\ndeny_page = false\n", false),
        ([], "[policy]\ndefault_action = \"deny\"\n", false),
    ])
    func servesPortal(_ actions: [WebAction], _ text: String, _ expected: Bool) {
        let rules = actions.enumerated().map { index, action in
            WebRule(name: "r\(index)", location: SourceLocation(file: "rules.d/10-web.policy", line: index + 1, column: 1), order: index,
                    domains: [], domainListPaths: [], sni: nil, uriPatterns: [], hostPatterns: [], userAgentPatterns: [], sources: [],
                    action: action, description: nil, timeWindow: nil, timeZone: TimeZone(identifier: "UTC")!)
        }
        #expect(Self.parse(text).servesPortal(webRules: rules) == expected)
    }
}
