import Foundation
import Testing
@testable import Compiler

// Quoted names hold any printable text but '"': the product's own convention is "X for Y",
// so apostrophes, parentheses, commas, slashes and non-ASCII letters must all load, be
// found where they are named (gateway, expect from/to, match-source lists), and be refused
// with their place only for what would not show as written (control characters).

/// A name as written between the quotes of a header, and the name it must load as.
struct QuotedNameCase: Sendable, CustomTestStringConvertible {
    var kind: String
    var written: String
    var testDescription: String { "[\(kind)] \"\(written)\"" }
}

/// A policy file and exactly what `check` must say about it (`line:col: severity: message`).
struct QuotedNameDiagnosticCase: Sendable, CustomTestStringConvertible {
    var label: String
    var policy: String
    var expected: [String]
    var testDescription: String { label }
}

private func N(_ kind: String, _ written: String) -> QuotedNameCase { QuotedNameCase(kind: kind, written: written) }
private func D(_ label: String, _ policy: String, _ expected: [String]) -> QuotedNameDiagnosticCase {
    QuotedNameDiagnosticCase(label: label, policy: policy, expected: expected)
}

/// "Bob's laptop" (laptops) and "db (primary)" (databases), each with one address.
private let systems = """
    [system] "Bob's laptop": {
        address: 10.77.0.2
        tags: laptops
    }
    [system] "db (primary)": {
        address: 10.77.0.1
        tags: databases
    }

    """

/// The diagnostics of one directory holding `text` as `rules.d/10-t.policy` (and, with
/// `inventory`, `systems` as `rules.d/00-inv.policy`), the file's own places as `line:col`.
private func diagnostics(_ text: String, inventory: Bool = true) -> (rendered: [String], set: PolicySet?) {
    let fixture = PolicyFixture(["rules.d/00-inv.policy": inventory ? systems : "", "rules.d/10-t.policy": text])
    defer { try? FileManager.default.removeItem(atPath: fixture.path) }
    let result = fixture.load()
    let rendered = result.diagnostics.flatMap { d in
        ([d] + d.notes).map { d in
            let file = d.location.file.hasPrefix(fixture.path + "/") ? String(d.location.file.dropFirst(fixture.path.count + 1)) : d.location.file
            let place = file == "rules.d/10-t.policy" ? "\(d.location.line):\(d.location.column)" : "\(file):\(d.location.line):\(d.location.column)"
            return "\(place): \(d.severity.rawValue): \(d.message)"
        }
    }
    return (rendered, result.policySet)
}

struct QuotedNameTests {
    static let names: [QuotedNameCase] = [
        N("policy", "Database Servers for SRE (24/7), on-call"),
        N("system", "Bob's laptop"),
        N("system", "db (primary)"),
        N("system", "Café Zürich"),
        N("system", "東京オフィス"),
        N("system", "👩‍💻 devs & ops"),
        N("system", "C:\\share\\ops"),
        N("system", "a: b { c } [d] # not a comment // nor this"),
        N("policy", "ops; on-call = 100% <yes>"),
        N("expect", "Bob's laptop → db (primary), 5432"),
        N("gateway-policy", "Printers (2nd floor), via 'router'"),
    ]

    /// Every name of `names` loads as written, whatever kind of block carries it.
    @Test(arguments: names)
    func quotedNameLoadsAsWritten(_ c: QuotedNameCase) throws {
        let body: String
        switch c.kind {
        case "system": body = "    address: 10.77.0.9\n    tags: laptops\n"
        case "policy": body = "    senders: laptops\n    receivers: databases\n    allow: tcp/5432\n"
        case "gateway-policy": body = "    senders: laptops\n    gateway: \"db (primary)\"\n    subnets: 10.78.0.0/24\n    allow: any\n"
        default: body = "    from: \"Bob's laptop\"\n    to: \"db (primary)\"\n    deny: tcp/22\n"
        }
        // A system stands alone (the inventory holds two of these names); the others name it.
        let (rendered, set) = diagnostics("[\(c.kind)] \"\(c.written)\": {\n\(body)}\n", inventory: c.kind != "system")
        #expect(rendered == [])
        let loaded = try #require(set)
        let names: [String] = switch c.kind {
        case "system": loaded.systems.map(\.name)
        case "expect": loaded.expectations.map(\.name)
        default: loaded.policies.map(\.name)
        }
        #expect(names.contains(c.written), "\(names)")
    }

    static let diagnosticCases: [QuotedNameDiagnosticCase] = [
        // Control characters: the error points at the character itself, counted in characters.
        D("a bell in a quoted name", "[system] \"a\u{7}b\": {\n    address: 10.77.0.9\n}", ["1:12: error: a quoted name cannot hold the control character U+0007"]),
        D("a tab in a quoted name", "[policy] \"on\tcall\": {\n    senders: laptops\n    receivers: databases\n    allow: any\n}", ["1:13: error: a quoted name cannot hold the control character U+0009"]),
        D("DEL in a quoted name", "[system] \"x\u{7F}\": {\n    address: 10.77.0.9\n}", ["1:12: error: a quoted name cannot hold the control character U+007F"]),
        D("a control character after non-ASCII letters", "[system] \"Zürich\u{1}\": {\n    address: 10.77.0.9\n}", ["1:17: error: a quoted name cannot hold the control character U+0001"]),
        D("a C1 control (NEL)", "[system] \"a\u{85}\": {\n    address: 10.77.0.9\n}", ["1:12: error: a quoted name cannot hold the control character U+0085"]),
        D("a line separator", "[system] \"a\u{2028}b\": {\n    address: 10.77.0.9\n}", ["1:12: error: a quoted name cannot hold the line separator U+2028"]),
        D("a right-to-left override", "[system] \"abc\u{202E}fdp.exe\": {\n    address: 10.77.0.9\n}", ["1:14: error: a quoted name cannot hold the bidirectional-text control U+202E"]),
        D("an empty quoted name", "[system] \"\": {\n    address: 10.77.0.9\n}", ["1:10: error: empty quoted name"]),
        D("an unterminated quoted name", "[system] \"Bob's laptop: {\n    address: 10.77.0.9\n}", ["1:10: error: unterminated quoted name"]),
        // Unquoted names keep their rule, and the message says to quote.
        D("an apostrophe without quotes", "[system] Bob's: {\n    address: 10.77.0.9\n}", ["1:10: error: bad name 'Bob's': use letters, digits, '.', '_', '-', or quote it"]),
        D("parentheses without quotes", "[system] db(2): {\n    address: 10.77.0.9\n}", ["1:10: error: bad name 'db(2)': use letters, digits, '.', '_', '-', or quote it"]),
        // A duplicate is found by the name as written.
        D("a duplicate quoted name", "[system] \"Bob's laptop\": {\n    address: 10.77.0.9\n}", ["1:10: error: duplicate system 'Bob's laptop'", "rules.d/00-inv.policy:1:10: note: 'Bob's laptop' is first defined here"]),
        // Names in values: one quoted string is one name, commas and all.
        D("an unknown quoted system in a list", "r: {\n    match-source: \"db (primary), east\", 10.0.0.0/8\n    match-domain: x.example\n    action: deny\n}",
          ["2:19: error: unknown tag or system 'db (primary), east' in match-source, did you mean 'db (primary)'?"]),
        D("a quoted tag list is one item", "[policy] p: {\n    senders: \"laptops, databases\"\n    receivers: databases\n    allow: any\n}",
          ["2:14: error: unknown tag 'laptops, databases': no system carries it"]),
        D("text after a first quoted item", "r: {\n    match-source: \"db (primary)\" east, 10.0.0.0/8\n    match-domain: x.example\n    action: deny\n}",
          ["2:34: error: unexpected 'east, 10.0.0.0/8' after the quoted value"]),
        D("text after a later quoted item", "r: {\n    match-source: 10.0.0.0/8, \"db (primary)\" east, laptops\n    match-domain: x.example\n    action: deny\n}",
          ["2:46: error: unexpected 'east' after the quoted name (separate items with ',')"]),
        D("an unterminated quoted item", "r: {\n    match-source: 10.0.0.0/8, \"db (primary)\n    match-domain: x.example\n    action: deny\n}",
          ["2:31: error: unterminated quoted name"]),
        D("a control character in a quoted item", "r: {\n    match-source: 10.0.0.0/8, \"d\u{7}b\"\n    match-domain: x.example\n    action: deny\n}",
          ["2:33: error: a quoted name cannot hold the control character U+0007"]),
        D("text after a quoted value", "[expect] e: {\n    from: \"Bob's laptop\" x\n    to: \"db (primary)\"\n    allow: any\n}",
          ["1:10: error: expect 'e' needs 'from:'", "2:26: error: unexpected 'x' after the quoted value"]),
    ]

    @Test(arguments: diagnosticCases)
    func quotedNameDiagnostics(_ c: QuotedNameDiagnosticCase) {
        let (rendered, set) = diagnostics(c.policy)
        #expect(rendered == c.expected)
        #expect((set == nil) == c.expected.contains { $0.contains(": error: ") })
    }

    /// Quoted names are found wherever a system is named: a gateway, an expectation's
    /// endpoints, and a quoted item of a `match-source` list that holds a comma.
    @Test func quotedNamesAreFoundWhereTheyAreNamed() throws {
        let text = """
            [system] "router (east), 2nd floor": {
                address: 10.77.0.254
                tags: routers
            }
            [policy] "Database Servers for SRE (24/7), on-call": {
                senders: "laptops"
                receivers: databases, "routers"
                allow: tcp/5432
            }
            [gateway-policy] "Printers for Bob's laptop": {
                senders: laptops
                gateway: "router (east), 2nd floor"
                subnets: 10.78.0.0/24
                allow: tcp/631
            }
            [expect] "Bob's laptop reaches db (primary)": {
                from: "Bob's laptop"
                to: "db (primary)"
                allow: tcp/5432
            }
            "Block for db (primary), router (east)": {
                match-source: "db (primary)", 10.9.0.0/16, "router (east), 2nd floor", laptops
                match-domain: bad.example
                action: deny
            }
            """
        let (rendered, loaded) = diagnostics(text)
        #expect(rendered == [])
        let set = try #require(loaded)
        let policy = try #require(set.policies.first { $0.name == "Database Servers for SRE (24/7), on-call" })
        #expect(policy.senders == ["laptops"])
        guard case .direct(let receivers) = policy.reach else { Issue.record("a direct policy"); return }
        #expect(receivers == ["databases", "routers"])
        let gateway = try #require(set.policies.first { $0.name == "Printers for Bob's laptop" })
        guard case .gateway(let router, _) = gateway.reach else { Issue.record("a gateway policy"); return }
        #expect(router == "router (east), 2nd floor")
        let rule = try #require(set.webRules.first)
        #expect(rule.name == "Block for db (primary), router (east)")
        #expect(rule.sources.count == 4)
        let expectation = try #require(set.expectations.first)
        guard case .flow(let from, let to, _, _) = expectation.check else { Issue.record("a flow expectation"); return }
        #expect(from == .system("Bob's laptop"))
        #expect(to == .system("db (primary)"))
        // The flow is judged with the policy's name as written.
        let decision = FlowEvaluator(graph: AccessGraph(set)).decide(
            FlowQuery(from: address("10.77.0.2"), to: address("10.77.0.1"), proto: .tcp, port: 5432, at: instant("2026-11-23T15:00:00Z")))
        #expect(decision.allowed)
        #expect(decision.policy == "Database Servers for SRE (24/7), on-call")
    }

    /// Whether a value was one quoted string costs an entry nothing: a policy holds one entry
    /// per line until the directory is checked (millions for a large address list).
    @Test func entryStaysSixtyFourBytes() {
        #expect(MemoryLayout<RawEntry>.stride == 64)
    }

    /// The splitting of list values that hold quotes, item by item.
    @Test(arguments: [
        ("\"a, b\", c", [("a, b", 0), ("c", 8)]),
        ("c, \"a, b\"", [("c", 0), ("a, b", 3)]),
        ("  \"x\"  ,  y  ,, \"z\"", [("x", 2), ("y", 10), ("z", 16)]),
        ("\"Café, Zürich\",\"東京, 2F\"", [("Café, Zürich", 0), ("東京, 2F", 17)]),
        ("a\"b, c", [("a\"b", 0), ("c", 5)]),
    ])
    func quotedItemsSplit(_ value: String, _ expected: [(String, Int)]) {
        let (items, errors) = QuotedText.items(value)
        #expect(errors.isEmpty)
        #expect(items.map(\.text) == expected.map(\.0))
        #expect(items.map(\.offset) == expected.map(\.1))
    }
}
