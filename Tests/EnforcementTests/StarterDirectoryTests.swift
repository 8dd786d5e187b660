import Compiler
import Foundation
import Testing
@testable import Enforcement

/// `enforcer init`'s files: they check as written and grant SSH from the tag, and what
/// cannot make such files is refused.
struct StarterDirectoryTests {
    static func address(_ text: String) -> IPAddress { try! IPAddress.parse(text) }

    static func load(_ starter: StarterDirectory) throws -> (PolicyLoader.Loaded, String) {
        let directory = NSTemporaryDirectory() + "enforcer-starter-" + UUID().uuidString
        _ = try starter.write(into: directory)
        return (PolicyLoader.load(directory: directory), directory)
    }

    @Test(arguments: [
        // the SSH session init runs in (nil: none), the admin address it writes
        (nil, "192.0.2.10"),
        ("10.1.2.3 50000 10.0.0.5 22", "10.1.2.3"),
        ("127.0.0.1 50000 127.0.0.1 22", "192.0.2.10"),   // a session over loopback names no admin machine
    ] as [(String?, String)])
    func theFilesCheckAndGrantSSH(_ connection: String?, _ admin: String) throws {
        let starter = StarterDirectory(name: "box", addresses: [Self.address("10.0.0.5"), Self.address("fd00::5")], sshFrom: "ops",
                                       session: connection.flatMap(SSHSession.fromEnvironment))
        let (loaded, directory) = try Self.load(starter)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        let policy = try #require(loaded.policySet)
        let box = try #require(policy.system(named: "box"))
        #expect(box.addresses.map(\.description) == ["10.0.0.5", "fd00::5"])
        let evaluator = FlowEvaluator(graph: AccessGraph(policy), system: box)
        let ssh = { (from: String, port: UInt16) in
            evaluator.decide(FlowQuery(from: Self.address(from), to: Self.address("10.0.0.5"), proto: .tcp, port: port, at: Date())).allowed
        }
        #expect(ssh(admin, 22))
        #expect(!ssh(admin, 23))
        #expect(!ssh("10.9.9.9", 22))
    }

    @Test(arguments: [
        // name, addresses, --ssh-from, the refusal (nil: none)
        ("box", ["10.0.0.5"], "admins", nil),
        ("box one", ["10.0.0.5"], "admins", "'box one' is not a plain system name (letters, digits, '.', '_', '-'); give one with --name"),
        ("", ["10.0.0.5"], "admins", "'' is not a plain system name (letters, digits, '.', '_', '-'); give one with --name"),
        ("box", ["10.0.0.5"], "my admins", "--ssh-from 'my admins' is not a plain tag (letters, digits, '.', '_', '-')"),
        ("admin-workstation", ["10.0.0.5"], "admins", "--name 'admin-workstation' is the name init gives the admin system; choose another"),
        ("box", [], "admins", "found no address on this host but loopback and link-local ones; give an interface its address, or write the inventory by hand"),
    ] as [(String, [String], String, String?)])
    func refusals(_ name: String, _ addresses: [String], _ sshFrom: String, _ expected: String?) {
        let starter = StarterDirectory(name: name, addresses: addresses.map(Self.address), sshFrom: sshFrom, session: nil)
        #expect(starter.problem() == expected)
    }

    @Test func onlyAddressesAPolicyCanName() {
        let found = ["127.0.0.1", "::1", "fe80::1", "fd00::5", "10.0.0.5", "10.0.0.5", "192.168.1.2"].map(Self.address)
        #expect(StarterDirectory.usableAddresses(found).map(\.description) == ["10.0.0.5", "192.168.1.2", "fd00::5"])
    }
}
