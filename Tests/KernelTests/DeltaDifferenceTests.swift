import Testing
@testable import Kernel

/// The element diff of a delta: the merge pass over key-ordered sets must agree with the
/// plain set difference, and unsorted input must still come out right.
@Suite struct DeltaDifferenceTests {
    static func element(_ address: UInt32, chain: String = "in_a", end: Bool = false) -> NFTElement {
        withUnsafeBytes(of: address.bigEndian) { raw in
            NFTElement(key: Array(raw), flags: end ? 1 : 0, verdict: NFTVerdict(code: -3, chain: chain))
        }
    }

    static func reference(_ before: [NFTElement], _ after: [NFTElement]) -> (Set<NFTElement>, Set<NFTElement>) {
        (Set(before).subtracting(after), Set(after).subtracting(before))
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var before: [NFTElement]
        var after: [NFTElement]
        var removed: Int
        var added: Int
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "unchanged", before: (0..<100).map { element($0) }, after: (0..<100).map { element($0) }, removed: 0, added: 0),
        Case(name: "one address moves to the end", before: (0..<100).map { element($0) },
             after: (0..<100).filter { $0 != 7 }.map { element($0) } + [element(1000)], removed: 1, added: 1),
        Case(name: "a key keeps its place, its class changes", before: (0..<10).map { element($0) },
             after: (0..<10).map { element($0, chain: $0 == 4 ? "in_b" : "in_a") }, removed: 1, added: 1),
        Case(name: "an interval end point becomes a start", before: [element(1), element(5, end: true)],
             after: [element(1), element(5)], removed: 1, added: 1),
        Case(name: "everything new", before: (0..<5).map { element($0) }, after: (5..<9).map { element($0) }, removed: 5, added: 4),
        Case(name: "from empty", before: [], after: (0..<3).map { element($0) }, removed: 0, added: 3),
        Case(name: "to empty", before: (0..<3).map { element($0) }, after: [], removed: 3, added: 0),
        Case(name: "unsorted input", before: [element(9), element(1), element(5)], after: [element(5), element(2), element(9)],
             removed: 1, added: 1),
    ]

    @Test(arguments: cases)
    func agreesWithTheSetDifference(_ test: Case) {
        let (removed, added) = Delta.difference(KernelElements(test.before), KernelElements(test.after))
        let (expectedRemoved, expectedAdded) = Self.reference(test.before, test.after)
        #expect(Set(removed) == expectedRemoved)
        #expect(Set(added) == expectedAdded)
        #expect(removed.count == test.removed)
        #expect(added.count == test.added)
    }

    @Test func randomSortedSetsAgreeWithTheSetDifference() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let universe = UInt32.random(in: 1...300, using: &generator)
            func pick() -> [NFTElement] {
                (0..<universe).filter { _ in Bool.random(using: &generator) }
                    .map { Self.element($0, chain: Bool.random(using: &generator) ? "in_a" : "in_b") }
            }
            let before = pick(), after = pick()
            let (removed, added) = Delta.difference(KernelElements(before), KernelElements(after))
            let (expectedRemoved, expectedAdded) = Self.reference(before, after)
            #expect(Set(removed) == expectedRemoved && removed.count == expectedRemoved.count)
            #expect(Set(added) == expectedAdded && added.count == expectedAdded.count)
        }
    }
}
