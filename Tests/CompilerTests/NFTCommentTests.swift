import Foundation
import Testing
@testable import Compiler

// Where names meet the kernel. Chains and sets are named by numbers and hashes, never by a
// name, so any two policies get their own kernel objects however alike their names; a name
// reaches the kernel only as a comment, which must list and load back with nft (`NFTComment`).

private let long = String(repeating: "a", count: 200)

struct NFTCommentTests {
    @Test(arguments: [
        ("policy web", "policy web"),
        ("policy Database Servers for SRE (24/7), on-call", "policy Database Servers for SRE (24/7), on-call"),
        ("policy Bob's laptop", "policy Bob's laptop"),
        ("policy Café Zürich", "policy Café Zürich"),
        ("policy C:\\share", "policy C:\\share"),
        ("say \"hi\"", "say 'hi'"),
        ("a\tb\u{85}c\u{2028}d", "a b c d"),
        (String(repeating: "a", count: 128), String(repeating: "a", count: 128)),
        (String(repeating: "a", count: 129), String(repeating: "a", count: 125) + "…"),
        (String(repeating: "é", count: 64), String(repeating: "é", count: 64)),
        (String(repeating: "é", count: 65), String(repeating: "é", count: 62) + "…"),
        (String(repeating: "a", count: 124) + "👩‍💻", String(repeating: "a", count: 124) + "…"),
    ])
    func commentFitsNFT(_ text: String, _ expected: String) {
        #expect(NFTComment.fitted(text) == expected)
    }

    /// Any text, fitted, is a comment nft reads back: at most 128 bytes, no '"', no control
    /// character; it is the text itself when that already was one, else the text's cleaned
    /// start and "…"; fitting twice changes nothing.
    @Test func anyTextFitsNFT() {
        var random = SplitMix64(seed: 0x4E46_5443)
        let pieces: [String] = ["a", "Z", "0", " ", "'", "\"", "(", ")", ",", "/", "\\", "#", "é", "ü", "東", "京", "👩‍💻", "🇨🇭",
                                "e\u{301}", "\u{200D}", "\u{7}", "\t", "\u{85}", "\u{2028}", "\u{202E}", "…", "\u{FEFF}"]
        for _ in 0..<3000 {
            var text = ""
            for _ in 0..<random.below(120) {
                if random.below(4) == 0 {
                    text.unicodeScalars.append(Unicode.Scalar(UInt32(random.below(0x3_0000))) ?? "?")
                } else {
                    text += pieces[random.below(pieces.count)]
                }
            }
            let fitted = NFTComment.fitted(text)
            #expect(fitted.utf8.count <= NFTComment.maxBytes, "\(text.debugDescription)")
            #expect(!fitted.contains("\""))
            #expect(!fitted.unicodeScalars.contains { $0.properties.generalCategory == .control }, "\(text.debugDescription)")
            #expect(NFTComment.fitted(fitted) == fitted, "\(text.debugDescription)")
            let clean = text.utf8.count <= NFTComment.maxBytes && !text.contains("\"")
                && !text.unicodeScalars.contains { [.control, .lineSeparator, .paragraphSeparator].contains($0.properties.generalCategory) }
            if clean { #expect(fitted == text) }
            if fitted.hasSuffix("…") && !text.hasSuffix("…") {
                let start = fitted.dropLast()
                let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map {
                    $0 == "\"" ? "'" : [.control, .lineSeparator, .paragraphSeparator].contains($0.properties.generalCategory) ? " " : $0
                }))
                #expect(cleaned.hasPrefix(start), "\(text.debugDescription)")
            }
        }
    }

    /// Policies and systems with random Unicode names compile to kernel objects named only
    /// by numbers and hashes (short ASCII, unique), one grant chain per policy even when their
    /// names differ only past what a comment can hold; every comment fits nft.
    @Test func randomNamesNeverNameKernelObjects() throws {
        var random = SplitMix64(seed: 0x6E61_6D65)
        let alphabet: [String] = ["a", "b", " ", "'", "(", ")", ",", "/", "é", "東", "👩‍💻", "-", ":", "#", "{", "}", "\\"]
        func name() -> String {
            var text = ""
            for _ in 0..<(1 + random.below(40)) { text += alphabet[random.below(alphabet.count)] }
            return text.trimmingCharacters(in: .whitespaces).isEmpty ? "x" : text
        }
        for round in 0..<20 {
            var names = Set<String>()
            while names.count < 6 { names.insert(name()) }
            var policyNames = Array(names)
            // Two names alike in their first 200 bytes: their comments are cut alike.
            policyNames += [long + "Zürich (1)", long + "Zürich (2)"]
            var text = """
                [system] "receiver \(round) (primary)": {
                    address: 10.80.0.1
                    tags: servers
                }

                """
            for (index, system) in names.enumerated() {
                text += "[system] \"\(system)\": {\n    address: 10.81.\(index).1\n    tags: clients\n}\n"
            }
            for (index, policy) in policyNames.enumerated() {
                text += "[policy] \"\(policy)\": {\n    senders: clients\n    receivers: servers\n    allow: tcp/\(1000 + index)\n}\n"
            }
            let set = try PolicyFixture(policy: text).policySet()
            #expect(Set(set.policies.map(\.name)) == Set(policyNames))
            let receiver = try #require(set.system(named: "receiver \(round) (primary)"))
            let table = try HostCompiler(graph: AccessGraph(set), system: receiver, at: instant("2026-11-23T15:00:00Z")).compile().ruleset.table
            let objectNames = table.chains.map(\.name) + table.sets.map(\.name)
            #expect(Set(objectNames).count == objectNames.count, "kernel object names are unique")
            for objectName in objectNames {
                #expect(objectName.utf8.count < 64 && objectName.utf8.allSatisfy { $0.isASCIILetterOrDigit || $0 == .underscore }, "\(objectName)")
            }
            let grants = table.chains.filter { $0.name.hasPrefix("grant_") }
            #expect(grants.count == policyNames.count, "one grant chain per policy")
            var comments = table.chains.compactMap(\.comment) + table.chains.flatMap { $0.rules.compactMap(\.comment) }
            comments += table.sets.compactMap(\.comment) + table.sets.flatMap { $0.elements.compactMap(\.comment) }
            for comment in comments { #expect(comment == NFTComment.fitted(comment), "\(comment)") }
            // The grant chains' comments name their policies, as written where they fit.
            for policy in policyNames where ("policy " + policy).utf8.count <= NFTComment.maxBytes {
                #expect(grants.contains { $0.comment == "policy " + policy }, "\(policy)")
            }
        }
    }

    /// The plan prints a comment as the kernel gets it: no escapes (nft has none), cut alike.
    @Test func planPrintsTheKernelsComment() {
        let chain = Chain(name: "grant_1", rules: [Rule([.verdict(.accept)], comment: "policy C:\\share \"x\" " + long)])
        var out = ""
        NFTText.render(chain, into: &out)
        #expect(out.contains("comment \"\(NFTComment.fitted("policy C:\\share 'x' " + long))\""))
        #expect(out.contains("C:\\share 'x'"))
    }
}
