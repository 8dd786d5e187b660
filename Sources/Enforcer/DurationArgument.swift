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

/// `apply --confirm`: a duration as `--for` takes it (`2m`, `90s`, `1h`), or a bare number
/// of seconds as earlier releases took it (`120`), so scripts written for them still work.
struct ConfirmWindow: ExpressibleByArgument {
    var seconds: Int

    init?(argument: String) {
        if let bare = Int(argument) {
            guard bare > 0 else { return nil }
            seconds = bare
        } else {
            guard let duration = DurationText.parse(argument) else { return nil }
            seconds = Int(duration.rounded(.up))
        }
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
