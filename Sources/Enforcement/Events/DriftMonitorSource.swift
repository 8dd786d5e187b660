import Foundation
import Compiler
import Kernel

/// Changes to enforcer's tables made by another process, as `.drift` events: the kernel's
/// nf_tables notices (what `nft monitor` shows), gathered per transaction. A transaction
/// committed by a process named `enforcer` is enforcer's own (every enforcer command takes
/// the state lock and keeps the record); anything else touching enforcer's tables (`nft
/// flush ruleset`, a rule inserted, a chain policy changed, an element added or deleted) is
/// drift. The timed grants set is left out: its elements run out in the kernel by design.
final class DriftMonitorSource: EventSource {
    private let monitor: NFTablesMonitor
    var onEvent: (DaemonEvent) -> Void = { _ in }
    /// enforcer's tables (inet family) and the sets in them whose changes are expected.
    var tables: Set<String> = []
    var expectedSets: Set<String> = []
    /// Whether this process changed the kernel in the last moments: an overflow of the
    /// notices then comes from its own large transaction.
    var changedRecently: () -> Bool = { false }
    /// A transaction (nf_tables generation `from` → `to`) that left enforcer's tables alone:
    /// the record may say they are still as enforcer left them at `to`.
    var untouchedThrough: (_ from: UInt32, _ to: UInt32) -> Void = { _, _ in }

    /// Changes seen since the last transaction ended.
    private var open: [String] = []
    /// Drift seen, waiting for the burst to settle (a script of several `nft` commands is
    /// repaired once, after the last).
    private var found: [String] = []
    private var settleAt: Double?
    static let settle = 0.05

    init() throws(KernelError) {
        monitor = try NFTablesMonitor()
    }

    var fileDescriptor: Int32 { monitor.fileDescriptor }
    /// Due at once when a large commit of this process hid other commits from it.
    var deadline: Double? { monitor.hasMissed ? 0 : settleAt }

    func wake(_ readiness: Poll.Readiness, now: Double) {
        let (events, overflowed) = monitor.events()
        if let missed = monitor.takeMissed() {
            found.append("other commits came while enforcer committed a large transaction (nf_tables generation \(missed.from) → \(missed.to)), so changes may have gone unseen")
        }
        let own = getpid()
        var ownCommit = false
        var untouched: [UInt32] = []
        for event in events {
            switch event {
            case .changed(let family, let table, let object, _):
                guard family == TableFamily.inet.number, tables.contains(table) else { continue }
                if case .elements(let set) = object, expectedSets.contains(set) { continue }
                open.append("\(event.words) in table inet \(table)")
            case .committed(let generation, let pid, let process):
                if Int32(bitPattern: pid) == own { ownCommit = true }
                if open.isEmpty { untouched.append(generation) }
                if !open.isEmpty, Int32(bitPattern: pid) != own, process != "enforcer" {
                    found.append(contentsOf: Self.summarized(open).map { "\($0) by \(process) (pid \(pid))" })
                }
                open = []
            }
        }
        if overflowed && !ownCommit && !changedRecently() {
            found.append("the kernel's change notices overflowed, so changes may have gone unseen")
        }
        // Only while no drift waits for repair and no notice was lost: the record then keeps
        // pace with commits that did not touch enforcer's tables (one at a time, from the
        // generation it holds, so a gap leaves it behind).
        if !overflowed && found.isEmpty {
            for generation in untouched { untouchedThrough(generation == 1 ? UInt32.max : generation &- 1, generation) }
        }
        if !found.isEmpty, settleAt == nil { settleAt = now + Self.settle }
        if let due = settleAt, now >= due {
            let changes = found
            found = []
            settleAt = nil
            onEvent(.drift(changes: changes))
        }
    }

    /// The same change many times over (a flood of elements) said once, with a count.
    static func summarized(_ changes: [String]) -> [String] {
        var order: [String] = []
        var counts: [String: Int] = [:]
        for change in changes {
            if counts[change] == nil { order.append(change) }
            counts[change, default: 0] += 1
        }
        return order.map { counts[$0]! > 1 ? "\($0) (\(counts[$0]!) times)" : $0 }
    }
}
