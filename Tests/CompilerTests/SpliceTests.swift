import Testing
@testable import Compiler

/// `splice` (in place, for a few changes) and `spliced` (one pass into a new array) give the
/// same points: random sorted arrays with repeats, random removals (present or not) and
/// additions, around the size where `splice` turns to `spliced`.
@Suite struct SpliceTests {
    @Test(arguments: [0, 1, 2, 8, 16, 17, 40])
    func inPlaceAgreesWithOnePass(changes: Int) {
        var random = SeededGenerator(seed: UInt64(changes) + 1)
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
            // A contribution is filed once, so it is taken out at most as often as it is there
            // (one that is not there may be asked for any number of times).
            var left: [String: Int] = [:]
            for point in points { left["\(point.key)/\(point.slot)", default: 0] += 1 }
            removing = removing.filter { item in
                guard let count = left["\(item.key)/\(item.slot)"] else { return true }
                left["\(item.key)/\(item.slot)"] = count - 1
                return count > 0
            }
            let want = spliced(points, removing: removing, adding: adding)
            var got = points
            splice(&got, removing: removing, adding: adding)
            #expect(got.map { "\($0.key)/\($0.slot)" } == want.map { "\($0.key)/\($0.slot)" },
                    "\(count) points, \(removing.count) out, \(adding.count) in")
        }
    }
}
