import Testing
@testable import Compiler

/// `allow: ssh`: the names of a services file and what they stand for.
struct ServiceNamesTests {
    static let table = ServiceNames(parsing: """
        # comment line
        ssh		22/tcp				# SSH Remote Login Protocol
        domain		53/tcp				# Domain Name Server
        domain		53/udp
        http		80/tcp		www		# WorldWideWeb HTTP
        sieve		4190/tcp
        sctp-thing	9/sctp
        broken		x/tcp
        zero		0/tcp
        nofield
        """, path: "/x/services")

    @Test(arguments: [
        ("ssh", [Service.tcp(PortRange(first: 22, last: 22))]),
        ("SSH", [.tcp(PortRange(first: 22, last: 22))]),
        ("domain", [.tcp(PortRange(first: 53, last: 53)), .udp(PortRange(first: 53, last: 53))]),
        ("www", [.tcp(PortRange(first: 80, last: 80))]),    // an alias
        ("sieve", [.tcp(PortRange(first: 4190, last: 4190))]),
    ] as [(String, [Service])])
    func resolves(name: String, services: [Service]) {
        #expect(Self.table.services(named: name) == services)
    }

    @Test(arguments: ["sctp-thing", "broken", "zero", "nofield", "comment", "SSH Remote", ""])
    func skipsWhatAllowCannotSay(name: String) {
        #expect(Self.table.services(named: name) == nil)
    }

    @Test func aMissingFileHasNoNames() {
        let table = ServiceNames.read("/nonexistent/services")
        #expect(table.names.isEmpty && table.path == "/nonexistent/services")
    }

    @Test func thePolicyShowsTheNameBesideThePorts() throws {
        let set = try PolicyFixture(policy: """
            [system] a: {
                address: 10.0.0.1
                tags: x
            }
            [policy] p: {
                senders: x
                receivers: x
                allow: ssh, domain, tcp/443
            }
            """).policySet()
        let policy = try #require(set.policies.first)
        #expect(policy.allow == [.tcp(PortRange(first: 22, last: 22)), .tcp(PortRange(first: 53, last: 53)), .udp(PortRange(first: 53, last: 53)), .tcp(PortRange(first: 443, last: 443))])
        #expect(policy.allowText == "tcp/22 (ssh), tcp/53 (domain), udp/53 (domain), tcp/443")
    }
}
