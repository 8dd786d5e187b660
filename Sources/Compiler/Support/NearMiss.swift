/// Which known word a mistyped one probably meant, for the "did you mean" of keys, kinds,
/// names and subcommands.
public enum NearMiss {
    /// The candidate closest to `word` (case ignored), if it is close enough: at most a third
    /// of the word's letters changed, one for a short word. Words of two letters or fewer get
    /// no suggestion: nearly everything is close to them.
    public static func nearest(_ word: String, among candidates: [String]) -> String? {
        let lower = word.lowercased()
        let best = candidates.map { ($0, distance(lower, $0.lowercased())) }.min { $0.1 < $1.1 }
        guard word.count > 2, let best, best.1 > 0, best.1 <= max(1, word.count / 3) else { return nil }
        return best.0
    }

    /// The fewest edits from `a` to `b`: insert, delete or change a letter, or swap two
    /// neighbours. Counting a swap as one edit matters because it is the commonest typo
    /// (`tabel` for `table`), which would otherwise cost two and often go unsuggested.
    /// A swapped pair is not edited again (the "optimal string alignment" distance).
    public static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        // Three rows of the table: the one before last (for swaps), the last, this one.
        var beforeLast = [Int](repeating: 0, count: b.count + 1)
        var last = Array(0...b.count)
        for i in 1...a.count {
            var row = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count {
                let change = a[i - 1] == b[j - 1] ? 0 : 1
                row[j] = min(last[j] + 1, row[j - 1] + 1, last[j - 1] + change)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    row[j] = min(row[j], beforeLast[j - 2] + 1)
                }
            }
            beforeLast = last
            last = row
        }
        return last[b.count]
    }
}
