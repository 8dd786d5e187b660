import Foundation
import Testing

/// The ruleset `apply --dry-run` prints must be accepted by the real `nft`: load it into a
/// throwaway network namespace, list it back, and compare it with the plan.
/// Needs root (CI runs as root); without root it fails, it is never skipped.
@Suite(.serialized)
struct NFTRoundTripTests {
    @Test(arguments: [("enclave", "db-1"), ("enclave", "router-1"), ("enclave", "k8s-node-1"), ("enclave", "kiosk-1"),
                      ("enclave", "dev-laptop-1"), ("enforcegate", "gw-1")])
    func printedRulesetLoadsAndListsBack(example: String, system: String) throws {
        try #require(getuid() == 0, "the nft round trip needs root (network namespaces); run the tests as root")
        let plan = try enforcer("apply", "--dry-run", "--dir", "examples/\(example)", "--system", system, "--at", "2026-11-23T15:00:00Z")
        #expect(plan.status == 0, "\(plan.stderr)")
        let ruleset = try #require(plan.stdout.components(separatedBy: "\nruleset:\n").last)

        let namespace = try Namespace()
        defer { namespace.remove() }
        var loadable = ruleset
        if ruleset.contains(" queue num ") && !namespace.hasNativeQueue() {
            // This kernel has no nft `queue` expression (apply will use the xtables NFQUEUE
            // target through the compat expression). nft must still parse the statement:
            // the kernel, not the parser, has to be what refuses it.
            let refusal = try namespace.nft(["-f", "-"], input: ruleset)
            #expect(refusal.status != 0)
            #expect(!refusal.stderr.contains("syntax error"), "\(refusal.stderr)")
            let complaints = refusal.stderr.split(separator: "\n").filter { $0.contains("Error:") }
            #expect(!complaints.isEmpty && complaints.allSatisfy { $0.contains("Could not process rule: No such file or directory") }, "\(refusal.stderr)")
            loadable = ruleset.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.contains(" queue num ") }.joined(separator: "\n")
        }
        let load = try namespace.nft(["-f", "-"], input: loadable)
        #expect(load.status == 0, "nft -f refused the plan's ruleset:\n\(load.stderr)")

        // List it back as JSON and compare the shape with what the plan printed.
        let listed = try namespace.nft(["-j", "list", "table", "inet", "enforcer"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let kernel = try KernelShape(json: listed.stdout)
        let printed = PrintedShape(text: loadable)
        #expect(kernel.setElements == printed.setElements)
        #expect(kernel.chainRules == printed.chainRules)

        // What nft lists must load again unchanged (the listing is a fixed point).
        let text = try namespace.nft(["list", "table", "inet", "enforcer"])
        let second = try Namespace()
        defer { second.remove() }
        #expect(try second.nft(["-f", "-"], input: text.stdout).status == 0)
        #expect(try second.nft(["list", "table", "inet", "enforcer"]).stdout == text.stdout)
    }
}

/// A network namespace that exists for one test.
struct Namespace {
    let name = "enforcer-t-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    init() throws {
        let result = try run("/usr/sbin/ip", ["netns", "add", name])
        guard result.status == 0 else { throw NamespaceError(message: result.stderr) }
    }

    func remove() { _ = try? run("/usr/sbin/ip", ["netns", "del", name]) }

    func nft(_ arguments: [String], input: String? = nil) throws -> CommandResult {
        try run("/usr/sbin/ip", ["netns", "exec", name, "nft"] + arguments, input: input)
    }

    /// Whether the kernel knows the native nft `queue` expression.
    func hasNativeQueue() -> Bool {
        let probe = "table inet enforcer_probe {\n\tchain c {\n\t\ttcp dport 1 queue num 0 bypass\n\t}\n}\n"
        let ok = (try? nft(["-f", "-"], input: probe).status == 0) ?? false
        _ = try? nft(["delete", "table", "inet", "enforcer_probe"])
        return ok
    }
}

struct NamespaceError: Error { var message: String }

/// Element and rule counts per set and chain, from `nft -j list`.
struct KernelShape {
    var setElements: [String: Int] = [:]
    var chainRules: [String: Int] = [:]

    init(json: String) throws {
        let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        for item in root?["nftables"] as? [[String: Any]] ?? [] {
            if let set = (item["set"] ?? item["map"]) as? [String: Any], let name = set["name"] as? String {
                setElements[name] = (set["elem"] as? [Any])?.count ?? 0
            }
            if let chain = item["chain"] as? [String: Any], let name = chain["name"] as? String {
                chainRules[name] = chainRules[name] ?? 0
            }
            if let rule = item["rule"] as? [String: Any], let chain = rule["chain"] as? String {
                chainRules[chain, default: 0] += 1
            }
        }
    }
}

/// The same counts read from the printed ruleset text.
struct PrintedShape {
    var setElements: [String: Int] = [:]
    var chainRules: [String: Int] = [:]

    init(text: String) {
        var current: (kind: String, name: String)?
        var inElements = false
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("set ") || line.hasPrefix("map ") || line.hasPrefix("chain ") {
                let words = line.split(separator: " ")
                current = (String(words[0]), String(words[1]))
                if words[0] == "chain" { chainRules[String(words[1])] = 0 } else { setElements[String(words[1])] = 0 }
                continue
            }
            guard let block = current else { continue }
            if line == "}" { current = nil; inElements = false; continue }
            if block.kind == "chain" {
                if !line.hasPrefix("type ") && !line.hasPrefix("comment ") { chainRules[block.name, default: 0] += 1 }
            } else if line.hasPrefix("elements = {") || inElements {
                inElements = !line.hasSuffix("}")
                setElements[block.name, default: 0] += 1
            }
        }
    }
}
