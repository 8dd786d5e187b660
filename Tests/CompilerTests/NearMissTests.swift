import Testing
@testable import Compiler

/// "Did you mean": which word a typo was meant as, and how far apart two words are.
struct NearMissTests {
    @Test(arguments: [
        // a, b, distance
        ("table", "table", 0),
        ("tabel", "table", 1),      // two neighbours swapped: one edit, not two
        ("stauts", "status", 1),
        ("ploicy", "policy", 1),
        ("aplpy", "apply", 1),
        ("chek", "check", 1),       // one letter left out
        ("checkk", "check", 1),     // one too many
        ("chuck", "check", 1),      // one changed
        ("ca", "abc", 3),           // a swap is not edited again ("optimal string alignment")
        ("", "run", 3),
        ("run", "", 3),
        ("flush", "status", 5),
    ] as [(String, String, Int)])
    func distance(a: String, b: String, expected: Int) {
        #expect(NearMiss.distance(a, b) == expected, "\(a) → \(b)")
        #expect(NearMiss.distance(b, a) == expected, "\(b) → \(a)")
    }

    static let subcommands = ["check", "apply", "test", "test-uri", "confirm", "rollback", "flush", "run", "status", "history", "fleet", "enrol", "policy", "trust"]

    @Test(arguments: [
        // typed, meant (nil: nothing close enough)
        ("stauts", "status"),
        ("aplpy", "apply"),
        ("chekc", "check"),
        ("Status", nil),            // the same word, whatever its case: nothing to suggest
        ("rollbak", "rollback"),
        ("tset", "test"),
        ("frobnicate", nil),
        ("xy", nil),                // too short to guess at
        ("polcy", "policy"),
    ] as [(String, String?)])
    func nearest(typed: String, meant: String?) {
        #expect(NearMiss.nearest(typed, among: Self.subcommands) == meant, "\(typed)")
    }
}
