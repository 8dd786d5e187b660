import Foundation
import Testing
@testable import Compiler

/// The incremental compile's tricky cases, one line each: the edits, then the elements the
/// receiver's sender maps hold afterwards (`in_hosts_v4` and `in_senders_v4`, as nft
/// prints them, with the policy ids of each class in place of its chain name).
struct IncrementalHostTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var systems: [SystemDefinition]
        var policies: [AccessPolicy]
        var edits: [PolicyEdit]
        var hosts: [String]
        var ranges: [String]
        var testDescription: String { name }
    }

    static let receiver = system("recv", ["10.0.0.1"], tags: ["web"])
    static let p1 = policy("p1", senders: ["a"], receivers: ["web"], allow: ["tcp/22"])
    static let p2 = policy("p2", senders: ["b"], receivers: ["web"], allow: ["tcp/443"])
    static let trusted = policy("p1", senders: ["a"], receivers: ["web"], allow: ["tcp/22"], trust: ["mfa"])

    static let cases: [Case] = [
        Case(name: "two adjacent senders of one class join into one range",
             systems: [receiver, system("x", ["10.1.0.1"], tags: ["a"]), system("y", ["10.1.0.5"], tags: ["a"])], policies: [p1],
             edits: [.setSystem(system("y", ["10.1.0.2"], tags: ["a"]))],
             hosts: [], ranges: ["10.1.0.1-10.1.0.2 : [1]"]),
        Case(name: "and split again when one moves away",
             systems: [receiver, system("x", ["10.1.0.1"], tags: ["a"]), system("y", ["10.1.0.2"], tags: ["a"])], policies: [p1],
             edits: [.setSystem(system("y", ["10.1.0.9"], tags: ["a"]))],
             hosts: ["10.1.0.1 : [1]", "10.1.0.9 : [1]"], ranges: []),
        Case(name: "the middle of a run of three changes class: three pieces",
             systems: [receiver, system("x", ["10.1.0.1", "10.1.0.3"], tags: ["a"]), system("y", ["10.1.0.2"], tags: ["a"])], policies: [p1, p2],
             edits: [.setSystem(system("y", ["10.1.0.2"], tags: ["a", "b"]))],
             hosts: ["10.1.0.1 : [1]", "10.1.0.2 : [1, 2]", "10.1.0.3 : [1]"], ranges: []),
        Case(name: "a class appears with a sender of both policies",
             systems: [receiver, system("x", ["10.1.0.1"], tags: ["a"]), system("y", ["10.1.0.7"], tags: ["b"])], policies: [p1, p2],
             edits: [.setSystem(system("z", ["10.1.0.4"], tags: ["a", "b"]))],
             hosts: ["10.1.0.1 : [1]", "10.1.0.4 : [1, 2]", "10.1.0.7 : [2]"], ranges: []),
        Case(name: "and disappears with it",
             systems: [receiver, system("x", ["10.1.0.1"], tags: ["a"]), system("z", ["10.1.0.4"], tags: ["a", "b"])], policies: [p1, p2],
             edits: [.removeSystem("z")],
             hosts: ["10.1.0.1 : [1]"], ranges: []),
        Case(name: "an address moving into a range splits it",
             systems: [receiver, system("r", ["10.1.0.0/28"], tags: ["a"]), system("y", ["10.1.0.20"], tags: ["b"])], policies: [p1, p2],
             edits: [.setSystem(system("y", ["10.1.0.5"], tags: ["b"]))],
             hosts: ["10.1.0.5 : [1, 2]"], ranges: ["10.1.0.0-10.1.0.4 : [1]", "10.1.0.6-10.1.0.15 : [1]"]),
        Case(name: "and out of it joins it again",
             systems: [receiver, system("r", ["10.1.0.0/28"], tags: ["a"]), system("y", ["10.1.0.5"], tags: ["b"])], policies: [p1, p2],
             edits: [.setSystem(system("y", ["10.1.0.16"], tags: ["b"]))],
             hosts: ["10.1.0.16 : [2]"], ranges: ["10.1.0.0/28 : [1]"]),
        Case(name: "a sender of the range's class right after it extends it",
             systems: [receiver, system("r", ["10.1.0.0/28"], tags: ["a"]), system("y", ["10.1.0.30"], tags: ["a"])], policies: [p1],
             edits: [.setSystem(system("y", ["10.1.0.16"], tags: ["a"]))],
             hosts: [], ranges: ["10.1.0.0-10.1.0.16 : [1]"]),
        Case(name: "trust revoked: the sender leaves the maps",
             systems: [receiver, system("x", ["10.1.0.1"], tags: ["a"]), system("y", ["10.1.0.2"], tags: ["a"])], policies: [trusted],
             edits: [.overrides(RuntimeOverrides(trust: ["x": ["mfa": TrustRecord(granted: true)], "y": ["mfa": TrustRecord(granted: true)]])),
                     .overrides(RuntimeOverrides(trust: ["x": ["mfa": TrustRecord(granted: true)], "y": ["mfa": TrustRecord(granted: false)]]))],
             hosts: ["10.1.0.1 : [1]"], ranges: []),
        Case(name: "a trust grant that runs out, once the clock passes it",
             systems: [receiver, system("x", ["10.1.0.1"], tags: ["a"])], policies: [trusted],
             edits: [.overrides(RuntimeOverrides(trust: ["x": ["mfa": TrustRecord(granted: true, until: instant("2026-11-23T11:00:00Z"))]])),
                     .instant(instant("2026-11-23T12:00:00Z"))],
             hosts: [], ranges: []),
        Case(name: "a policy's senders change: its old senders go, the new come",
             systems: [receiver, system("x", ["10.1.0.1"], tags: ["a"]), system("y", ["10.1.0.3"], tags: ["b"])], policies: [p1],
             edits: [.setPolicy(policy("p1", senders: ["b"], receivers: ["web"], allow: ["tcp/22"]))],
             hosts: ["10.1.0.3 : [1]"], ranges: []),
        Case(name: "the host's own address in a sender is left out",
             systems: [receiver, system("x", ["10.1.0.1"], tags: ["a"])], policies: [p1],
             edits: [.setSystem(system("x", ["10.1.0.1", "10.0.0.1"], tags: ["a"]))],
             hosts: ["10.1.0.1 : [1]"], ranges: []),
    ]

    /// An element as nft prints it, its class chain replaced by the class's policy ids.
    static func text(_ element: SetElement, classes: [String: [Int]]) -> String {
        let address = NFTText.elementText(SetElement(element.key))
        guard case .jump(let chain)? = element.verdict else { return address }
        return "\(address) : \(classes[chain].map { "\($0)" } ?? chain)"
    }

    @Test(arguments: cases)
    func senderMaps(_ c: Case) throws {
        var world = TestWorld(systems: c.systems, policies: c.policies)
        var host = try IncrementalHost(policySet: world.policySet, host: Self.receiver, at: world.instant)
        for edit in c.edits {
            let before = host.ruleset
            world.make(edit)
            let changes = try host.apply([edit])
            let full = try world.fullCompile(host: "recv", ids: host.policyIDs)
            #expect(host.ruleset == full, "\(c.name): \(firstDifference(host.ruleset, full))")
            #expect(byName(changes.applied(to: before)) == byName(full), "\(c.name): the changes do not lead to the full compile")
            #expect(!changes.compiledInFull, "\(c.name)")
        }
        var classes: [String: [Int]] = [:]
        for ids in Set(world.policies.indices.map { [$0 + 1] } + [[1, 2]]) {
            classes[ClassifiedSenders.className(prefix: "in", ids)] = ids
        }
        let table = host.ruleset.table
        #expect(table.set(named: "in_hosts_v4")!.elements.map { Self.text($0, classes: classes) } == c.hosts, "\(c.name)")
        #expect(table.set(named: "in_senders_v4")!.elements.map { Self.text($0, classes: classes) } == c.ranges, "\(c.name)")
        #expect(host.fallbacks.isEmpty, "\(c.name)")
    }

    @Test func hostsOwnSystemChangingIsCompiledInFull() throws {
        var world = TestWorld(systems: [Self.receiver, system("x", ["10.1.0.1"], tags: ["a"])], policies: [Self.p1])
        var host = try IncrementalHost(policySet: world.policySet, host: Self.receiver, at: world.instant)
        let edit = PolicyEdit.setSystem(system("recv", ["10.0.0.2"], tags: ["web"]))
        world.make(edit)
        let changes = try host.apply([edit])
        #expect(changes.compiledInFull)
        #expect(host.fallbacks == ["the host's own system changed": 1])
        #expect(host.ruleset == (try world.fullCompile(host: "recv", ids: host.policyIDs)))
    }

    @Test func aPortsChangeTouchesOnlyItsClassMap() throws {
        var world = TestWorld(systems: [Self.receiver, system("x", ["10.1.0.1"], tags: ["a"])], policies: [Self.p1])
        var host = try IncrementalHost(policySet: world.policySet, host: Self.receiver, at: world.instant)
        let edit = PolicyEdit.setPolicy(policy("p1", senders: ["a"], receivers: ["web"], allow: ["tcp/2222"]))
        world.make(edit)
        let changes = try host.apply([edit])
        let name = ClassifiedSenders.className(prefix: "in", [1]) + "_ports"
        #expect(Set(changes.addedElements.keys) == [name] && Set(changes.removedElements.keys) == [name])
        #expect(changes.addedElements[name]!.map(NFTText.elementText) == ["tcp . 2222 : goto grant_1"])
        #expect(changes.addedSets.isEmpty && changes.addedChains.isEmpty && changes.rewrittenChains.isEmpty)
    }
}
