import Testing
@testable import Compiler

/// `splice` (in place, for a few changes) and `spliced` (one pass into a new array) give the
/// same points: random sorted arrays with repeats, random removals (present or not) and
/// additions, around the size where `splice` turns to `spliced`.
@Suite struct SpliceTests {
    @Test(arguments: [0, 1, 2, 8, 16, 17, 40])
    func inPlaceAgreesWithOnePass(changes: Int) {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let count = Int.random(in: 0...300, using: &random)
            let points = (0..<count).map { _ in (key: UInt32.random(in: 0...100, using: &random), slot: Int32.random(in: 0...5, using: &random)) }
                .sorted { ($0.key, $0.slot) < ($1.key, $1.slot) }
            var removing: [(key: UInt32, slot: Int32)] = [], adding: [(key: UInt32, slot: Int32)] = []
            for _ in 0..<changes {
                if Bool.random(using: &random), let some = points.randomElement(using: &random) {
                    removing.append(some)
                } else if Bool.random(using: &random) {
                    removing.append((UInt32.random(in: 0...100, using: &random), Int32.random(in: 0...5, using: &random)))
                } else {
                    adding.append((UInt32.random(in: 0...100, using: &random), Int32.random(in: 0...5, using: &random)))
                }
            }
            // A point taken out is taken out once, as each contribution is filed once.
            var seen: [String: Int] = [:]
            removing = removing.filter { item in
                let key = "\(item.key)/\(item.slot)"
                seen[key, default: 0] += 1
                return seen[key]! <= points.filter { $0 == item }.count || points.filter { $0 == item }.isEmpty
            }
            let want = spliced(points, removing: removing, adding: adding)
            var got = points
            splice(&got, removing: removing, adding: adding)
            #expect(got.map { "\($0.key)/\($0.slot)" } == want.map { "\($0.key)/\($0.slot)" },
                    "\(count) points, \(removing.count) out, \(adding.count) in")
        }
    }
}
