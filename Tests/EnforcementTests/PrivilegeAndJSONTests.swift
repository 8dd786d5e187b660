import Foundation
import Testing
@testable import Enforcement

/// Whether `apply` may run: CAP_NET_ADMIN in the CapEff line of /proc/self/status.
struct PrivilegeTests {
    @Test(arguments: [
        // CapEff value, may administer the network
        ("000001ffffffffff", true),     // root
        ("0000000000001000", true),     // CAP_NET_ADMIN alone (a hardened service)
        ("0000000000003000", true),     // with CAP_NET_RAW
        ("0000000000002000", false),    // CAP_NET_RAW alone
        ("0000000000000000", false),    // an ordinary user
    ])
    func capEff(_ mask: String, _ allowed: Bool) throws {
        let status = "Name:\tenforcer\nUmask:\t0077\nCapInh:\t0000000000000000\nCapPrm:\t\(mask)\nCapEff:\t\(mask)\nCapBnd:\t000001ffffffffff\n"
        let effective = try #require(Privilege.effectiveCapabilities(status: status))
        #expect((effective & Privilege.netAdminBit != 0) == allowed)
    }

    @Test func noCapEffLineReadsAsUnknown() {
        #expect(Privilege.effectiveCapabilities(status: "Name:\tx\n") == nil)
        #expect(Privilege.effectiveCapabilities(status: "CapEff:\tzz\n") == nil)
    }
}

/// `--json` documents: every key, nulls written, snake_case names from the state's types.
struct JSONTextTests {
    struct Sample {
        var startedAt: Date
        var stoppedAt: Date?
        var policies: [String]
        var lastError: String?
    }

    @Test func aDocumentKeepsNullsAndAddsTheSchema() {
        let sample = Sample(startedAt: Date(timeIntervalSince1970: 0), stoppedAt: nil, policies: ["a"], lastError: nil)
        let text = JSONText.document(["daemon": sample, "generation": nil as Int?, "nested": ["inner": nil as String?] as [String: Any?]])
        #expect(text == #"{"daemon":{"last_error":null,"policies":["a"],"started_at":"1970-01-01T00:00:00Z","stopped_at":null},"generation":null,"nested":{"inner":null},"schema":1}"#)
    }

    @Test(arguments: [("startedAt", "started_at"), ("policyDirectory", "policy_directory"), ("pid", "pid"), ("failVerdicts", "fail_verdicts")])
    func snakeCase(_ name: String, _ expected: String) {
        #expect(JSONText.snakeCase(name) == expected)
    }
}
