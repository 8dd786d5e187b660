import Dispatch

/// Work started on another thread now, its value waited for later: what `apply` does
/// while the kernel works through a transaction (the generation record needs only the
/// ruleset, not the kernel's answer).
final class Concurrently<Value: Sendable>: @unchecked Sendable {
    // Written once by the worker before `done` is signalled; read only after the wait.
    private var result: Value?
    private let done = DispatchSemaphore(value: 0)
    // Touched only by the one thread that asks for the value.
    private var waited = false

    init(_ work: @escaping @Sendable () -> Value) {
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = work()
            self.done.signal()
        }
    }

    /// The work's value, once it has finished (waits for it the first time).
    var value: Value {
        if !waited {
            done.wait()
            waited = true
        }
        return result!
    }
}
