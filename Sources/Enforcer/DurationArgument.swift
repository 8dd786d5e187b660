import ArgumentParser
import Compiler
import Foundation

/// `2h`, `30m`, `90s`, `1d`, `1h30m` on the command line.
struct DurationArgument: ExpressibleByArgument {
    var seconds: TimeInterval

    init?(argument: String) {
        guard let seconds = DurationText.parse(argument) else { return nil }
        self.seconds = seconds
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
