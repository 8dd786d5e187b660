import Testing
@testable import NFQueue

/// Random mutations of valid inputs, from a fixed seed so any failure reproduces.
/// Beyond "does not trap", each run checks the properties the worker relies on:
/// `needMoreData` asks for at least one byte, a prefix that is already malformed never
/// turns into a valid whole, and a prefix that is already complete agrees with the whole.
@Suite("Parsers under random mutation")
struct ParserFuzzTests {
    static let iterations = 20_000

    /// One to four edits: bit flips, byte overwrites (often with 0x00/0xff, the usual
    /// length extremes), small +/- nudges that mimic off-by-one lengths, insertions,
    /// deletions, duplicated runs and truncation; now and then pure noise instead.
    static func mutate(_ seed: [UInt8], using rng: inout SeededGenerator) -> [UInt8] {
        if Int.random(in: 0..<40, using: &rng) == 0 {
            return (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        var bytes = seed
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            guard !bytes.isEmpty else { break }
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: bytes[at] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            case 1: bytes[at] = [0x00, 0xff, 0x7f, 0x80].randomElement(using: &rng) ?? 0
            case 2: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 3: bytes[at] = bytes[at] &+ (Bool.random(using: &rng) ? 1 : 255)
            case 4: bytes.insert(contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
            case 5: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...16, using: &rng)))
            case 6: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + Int.random(in: 1...32, using: &rng))], at: at)
            default: bytes.removeSubrange(at...)
            }
        }
        return bytes
    }

    /// Runs `parse` over mutated seeds and checks the stream-parser properties.
    static func exercise<Value: Equatable>(seeds: [[UInt8]], seed: UInt64,
                                           parse: ([UInt8]) -> ParseResult<Value>,
                                           check: (Value) -> Bool) -> (tally: [String: Int], failures: [String]) {
        var rng = SeededGenerator(seed: seed)
        var tally: [String: Int] = [:]
        var failures: [String] = []
        for iteration in 0..<iterations {
            let input = mutate(seeds[iteration % seeds.count], using: &rng)
            let result = parse(input)
            let cut = Int.random(in: 0...input.count, using: &rng)
            let prefixResult = parse(Array(input[..<cut]))
            var problem: String?
            switch result {
            case .complete(let value):
                tally["complete", default: 0] += 1
                if !check(value) { problem = "implausible value \(value)" }
            case .needMoreData(let atLeast):
                tally["needMoreData", default: 0] += 1
                if let atLeast, atLeast < 1 { problem = "needMoreData(atLeast: \(atLeast))" }
            case .malformed:
                tally["malformed", default: 0] += 1
            }
            switch prefixResult {
            case .malformed where result.malformedReason == nil:
                problem = "prefix of \(cut) bytes malformed but whole is \(result)"
            case .complete where prefixResult != result:
                problem = "prefix of \(cut) bytes complete but whole is \(result)"
            default:
                break
            }
            if let problem, failures.count < 5 {
                failures.append("iteration \(iteration): \(problem); input \(input.prefix(48).map { String($0, radix: 16) })")
            }
        }
        return (tally, failures)
    }

    @Test("ClientHello parser")
    func clientHello() throws {
        let seeds = try ClientHelloParserTests.captured.map { try HelloFixtures.bytes($0.file) }
        let (tally, failures) = Self.exercise(seeds: seeds, seed: 0x7e57_c11e_4e11_0001,
                                              parse: ClientHelloParser.parse) { hello in
            (hello.serverName?.utf8.allSatisfy(HostNameSyntax.isNameByte) ?? true) && hello.legacyVersion >> 8 == 3
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(tally.values.reduce(0, +) == Self.iterations)
        #expect(tally.count == 3, "mutations should reach all three answers: \(tally)")
    }

    @Test("HTTP request parser")
    func httpRequest() {
        let seeds = HTTPRequestParserTests.cases.compactMap { testCase -> [UInt8]? in
            if case .head = testCase.outcome { return Array(testCase.raw.utf8) }
            return nil
        }
        let (tally, failures) = Self.exercise(seeds: seeds, seed: 0x7e57_4778_0000_0002,
                                              parse: { HTTPRequestParser.parse($0) }) { head in
            (head.host?.utf8.allSatisfy { $0 < 0x80 && $0 != 0x20 && !(0x41...0x5a).contains($0) } ?? true)
                && (head.host == nil || head.url.contains("://"))
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(tally.count == 3, "mutations should reach all three answers: \(tally)")
    }

    @Test("packet view")
    func packets() {
        let seeds = PacketViewTests.cases.map(\.packet).filter { !$0.isEmpty }
        var rng = SeededGenerator(seed: 0x7e57_9ac4_e700_0003)
        var failures: [String] = []
        for iteration in 0..<Self.iterations {
            let packet = Self.mutate(seeds[iteration % seeds.count], using: &rng)
            let view = PacketView(packet)
            let consistent = (view.payloadRange.map { $0.lowerBound >= 0 && $0.upperBound <= packet.count } ?? true)
                && (view.tcp == nil || view.transportProtocol == PacketView.ProtocolNumber.tcp)
                && (view.udp == nil || view.transportProtocol == PacketView.ProtocolNumber.udp)
                && (view.tcp == nil || view.udp == nil)
                && (!view.isNonInitialFragment || (view.tcp == nil && view.udp == nil))
            if !consistent, failures.count < 5 { failures.append("iteration \(iteration): \(packet)") }
        }
        #expect(failures.isEmpty, "\(failures)")
    }
}
