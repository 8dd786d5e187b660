import Compiler
import Foundation
import Testing
@testable import Enforcement

/// What an agent writes into its policy from the store's enrolment records: only what an
/// administrator granted and the host reported, checked, so a host's word can never become
/// policy text of its own making.
@Suite struct EnrolledSystemsTests {
    static let layout = try! FleetLayout(fleet: "lab")
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func grant(_ slot: String, tags: [String], expires: Date? = nil) -> Data {
        try! FleetStore.jsonEncoder.encode(Enrolment.Grant(slot: slot, key: "k", tags: tags, expires: expires.map { ISO8601.string($0) }, createdBy: "admin"))
    }

    static func member(_ name: String, _ addresses: [String]) -> Data {
        try! FleetStore.jsonEncoder.encode(Enrolment.Member(name: name, addresses: addresses, updatedAt: "2027-01-15T08:00:00Z"))
    }

    static func systems(_ records: [(slot: String, tags: [String], name: String, addresses: [String])]) -> EnrolledSystems {
        var systems = EnrolledSystems()
        for record in records {
            systems.take(key: layout.enrolledKey(record.slot), value: grant(record.slot, tags: record.tags), layout: layout)
            systems.take(key: layout.memberKey(record.slot), value: member(record.name, record.addresses), layout: layout)
        }
        return systems
    }

    @Test func aGrantedAndPresentSystemIsABlock() throws {
        let rendering = Self.systems([("k-1", ["servers", "web"], "app-1", ["10.20.3.11", "fd00:20:3::11", "127.0.0.1", "fe80::1", "10.20.3.11"])])
            .render(taken: [], now: Self.now, grace: 60)
        #expect(rendering.text.hasSuffix("[system] app-1: {\n    address: 10.20.3.11, fd00:20:3::11\n    tags: servers, web\n}\n"))
        #expect(rendering.problems.isEmpty && rendering.next == nil)
        // The text is a policy file the loader reads as that system.
        let directory = NSTemporaryDirectory() + "enforcer-enrolled-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/rules.d", withIntermediateDirectories: true)
        try rendering.text.write(toFile: directory + "/rules.d/" + StoreMirror.enrolledFileName, atomically: true, encoding: .utf8)
        let loaded = PolicyLoader.load(directory: directory)
        #expect(loaded.diagnostics.filter { $0.severity == .error }.isEmpty, "\(loaded.diagnostics)")
        #expect(loaded.policySet?.system(named: "app-1")?.tags == ["servers", "web"])
    }

    /// The host's word (name, addresses) that could smuggle text into the policy, or take
    /// what is not its own, is left out and said why; the administrator's tags too.
    @Test(arguments: [
        (["evil\n}\n[policy] open: {\n allow: any", ], ["10.0.0.1"], "not a plain name"),
        (["x: {"], ["10.0.0.1"], "not a plain name"),
        ([String(repeating: "a", count: 64)], ["10.0.0.1"], "not a plain name"),
        (["db-1"], ["10.0.0.1"], "taken by a system of the pushed policy"),
        (["app-2"], ["10.0.0.1/8", "any", "10.0.0.1\n}"], "no address another host can reach"),
        (["app-2"], ["127.0.0.1", "::1", "169.254.1.1", "fe80::2", "224.0.0.1", "0.0.0.0"], "no address another host can reach"),
    ])
    func theHostsWordIsChecked(name: [String], addresses: [String], problem: String) {
        let rendering = Self.systems([("k-1", ["servers"], name[0], addresses)]).render(taken: ["db-1"], now: Self.now, grace: 60)
        #expect(!rendering.text.contains("[system]"), "\(rendering.text)")
        #expect(rendering.problems.count == 1 && rendering.problems[0].contains(problem), "\(rendering.problems)")
    }

    @Test func tagsThatAreNotNamesAreDropped() {
        let rendering = Self.systems([("k-1", ["servers", "a\nb", "x}"], "app-1", ["10.0.0.1"])]).render(taken: [], now: Self.now, grace: 60)
        #expect(rendering.text.contains("    tags: servers\n}"))
    }

    @Test func theEarlierEnrolmentKeepsAContestedName() {
        let rendering = Self.systems([("k-10", ["b"], "app", ["10.0.0.2"]), ("k-2", ["a"], "app", ["10.0.0.1"])]).render(taken: [], now: Self.now, grace: 60)
        #expect(rendering.text.contains("address: 10.0.0.1\n    tags: a"))
        #expect(rendering.problems == ["enrolled system app (slot k-10) left out: the name is taken by slot k-2"])
    }

    @Test func noGrantNoSystem() {
        var systems = EnrolledSystems()
        systems.take(key: Self.layout.memberKey("k-1"), value: Self.member("app-1", ["10.0.0.1"]), layout: Self.layout)
        #expect(systems.render(taken: [], now: Self.now, grace: 60).systems.isEmpty)
        // Keys outside the enrolment prefixes are not its business.
        let taken = systems.take(key: Self.layout.pushKey, value: Data(), layout: Self.layout)
        #expect(!taken)
    }

    @Test func aDepartedSystemStaysForTheGrace() {
        var systems = Self.systems([("k-1", ["servers"], "app-1", ["10.0.0.1"])])
        systems.take(key: Self.layout.memberKey("k-1"), value: nil, layout: Self.layout, at: Self.now)
        let during = systems.render(taken: [], now: Self.now.addingTimeInterval(59), grace: 60)
        #expect(during.systems.keys.sorted() == ["app-1"] && during.next == Self.now.addingTimeInterval(60))
        #expect(systems.render(taken: [], now: Self.now.addingTimeInterval(60), grace: 60).systems.isEmpty)
        // Back within the grace: present again, no departure left.
        systems.take(key: Self.layout.memberKey("k-1"), value: Self.member("app-1", ["10.0.0.1"]), layout: Self.layout)
        #expect(systems.departed.isEmpty && systems.render(taken: [], now: Self.now.addingTimeInterval(120), grace: 60).systems.count == 1)
    }

    @Test func anExpiringSystemIsWrittenWithItsExpiry() throws {
        var systems = EnrolledSystems()
        let expiry = Self.now.addingTimeInterval(10)
        systems.take(key: Self.layout.enrolledKey("k-1"), value: Self.grant("k-1", tags: [], expires: expiry), layout: Self.layout)
        systems.take(key: Self.layout.memberKey("k-1"), value: Self.member("app-1", ["10.0.0.1"]), layout: Self.layout)
        let before = systems.render(taken: [], now: Self.now, grace: 60)
        // No tags: a system no policy reaches, written without a tags line. The expiry is the
        // daemon's to act on, by its own clock: the file does not change then.
        let stamp = ISO8601.string(expiry)
        #expect(before.text.contains("[system] app-1: {\n    address: 10.0.0.1\n    expires: \(stamp)\n}"), "\(before.text)")
        #expect(before.systems.count == 1 && before.next == nil && before.problems.isEmpty)
        let after = systems.render(taken: [], now: expiry, grace: 60)
        #expect(after.text == before.text && after.problems.first?.contains("expired") == true)
        // The written expiry reads back as the instant granted.
        let fixture = try PolicyDirectoryFixture(files: ["99-enrolled-systems.policy": after.text])
        let loaded = try Pipeline(directory: fixture.path).load().policy
        #expect(loaded.system(named: "app-1")?.expires == ISO8601.date(stamp))
    }

    @Test func changesAreNamed() {
        #expect(EnrolledSystems.changes(from: ["a": "1", "b": "2", "c": "3"], to: ["a": "1", "b": "9", "d": "4"]) == "b changed, c removed, d added")
        #expect(EnrolledSystems.changes(from: [:], to: [:]) == "no change")
    }

    @Test func definedNamesAreFoundWithoutParsing() {
        let files = [Data("[system] db-1: {\n  address: 10.0.0.1\n}\n  [system]  \"Bob's laptop\": {\n[policy] p: {\n".utf8), Data("[system] k{\n".utf8),
                     Data("[system] \"ops: on-call (24/7)\": {\n".utf8)]
        #expect(EnrolledSystems.definedNames(in: files) == ["db-1", "Bob's laptop", "k", "ops: on-call (24/7)"])
    }

    /// `fleet expire`: exactly one of --at, --after, --never; a time must parse and lie ahead.
    @Test(arguments: [
        ("2027-01-15T09:00:00Z", nil, false, "2027-01-15T09:00:00Z"),
        ("2027-01-15T10:30:00+01:00", nil, false, "2027-01-15T09:30:00Z"),
        (nil, 86_400, false, "2027-01-16T08:00:00Z"),
        (nil, nil, true, "never"),
        (nil, nil, false, "give one of --at TIME, --after DURATION or --never"),
        ("2027-01-15T09:00:00Z", 60, false, "give one of"),
        (nil, 60, true, "give one of"),
        ("tomorrow", nil, false, "--at 'tomorrow': not a time"),
        ("2027-01-15T07:59:00Z", nil, false, "is not in the future: to take the system away now, use `fleet remove`"),
        (nil, 0, false, "--after: a duration longer than nothing"),
    ] as [(String?, Double?, Bool, String)])
    func expiryArguments(at: String?, after: Double?, never: Bool, expected: String) {
        let now = ISO8601.date("2027-01-15T08:00:00Z")!
        let outcome: String
        do { outcome = try FleetEnrolment.expiry(at: at, after: after, never: never, now: now).map { ISO8601.string($0) } ?? "never" } catch {
            outcome = "\(error)"
        }
        #expect(outcome.contains(expected), "\(outcome)")
    }
}
