import Dispatch
import Foundation
import Synchronization

/// Work started on another thread now, its value waited for later: what `apply` does
/// while the kernel works through a transaction (the generation record needs only the
/// ruleset, not the kernel's answer), and how the loader, the expectations and the batch
/// encoder use the machine's second core.
public final class Concurrently<Value: Sendable>: @unchecked Sendable {
    // Written once by the worker before `done` is signalled; read only after the wait.
    private var result: Value?
    private let done = DispatchSemaphore(value: 0)
    // Touched only by the one thread that asks for the value.
    private var waited = false

    public init(_ work: @escaping @Sendable () -> Value) {
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = work()
            self.done.signal()
        }
    }

    /// The work's value, once it has finished (waits for it the first time).
    public var value: Value {
        if !waited {
            done.wait()
            waited = true
        }
        return result!
    }
}

extension Concurrently {
    /// How many parts to cut work into that scales with cores: one per active core, at most
    /// `limit` (work under some size is cheaper on one thread than handed around).
    public static func parts(limit: Int) -> Int {
        max(1, min(ProcessInfo.processInfo.activeProcessorCount, limit))
    }

    /// `work(0) … work(count - 1)`, the first on this thread and the others each on one
    /// of its own; the values in order.
    public static func each(_ count: Int, _ work: @escaping @Sendable (Int) -> Value) -> [Value] {
        let others = (1..<max(count, 1)).map { part in Concurrently { work(part) } }
        return [work(0)] + others.map(\.value)
    }
}

extension Concurrently {
    /// `work(value)` on another thread, which gets `value` as its only copy: an array in it
    /// can be sorted in place there without being copied first.
    public convenience init<Input: Sendable>(handing value: consuming Input, _ work: @escaping @Sendable (consuming Input) -> Value) {
        let handoff = Handoff(value)
        self.init { work(handoff.take()) }
    }
}

/// One value passed to another thread and taken there, leaving no copy behind.
private final class Handoff<Value: Sendable>: Sendable {
    private let slot: Mutex<Value?>

    init(_ value: consuming Value) { slot = Mutex(value) }

    func take() -> Value { slot.withLock { $0.take()! } }
}
