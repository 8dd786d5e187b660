import Compiler
import Foundation
import Kernel

/// The fleet store's changes as daemon events: `FleetAgent` follows the store on the
/// concurrency runtime's threads and wakes the loop through its pipe; here, on the loop's
/// thread, each new bundle is written into the mirror and handed on at once (no settling
/// delay: a push is one transaction, whole when it arrives).
final class StoreWatchSource: EventSource {
    let agent: FleetAgent
    let mirror: StoreMirror
    /// A new bundle is in the mirror: its revision and who pushed it.
    var onUpdate: (_ revision: Int64, _ reason: String) -> Void = { _, _ in }
    /// Writes the fleet's runtime overrides where the daemon reads them (its state directory).
    var writeOverrides: (RuntimeOverrides) throws -> Void = { _ in }
    /// The watch's state, after every wake.
    var onConnection: (FleetAgent.Connection) -> Void = { _ in }

    init(agent: FleetAgent, mirror: StoreMirror) {
        self.agent = agent
        self.mirror = mirror
    }

    var fileDescriptor: Int32 { agent.wake.readEnd }

    func wake(_ readiness: Poll.Readiness, now: Double) {
        agent.wake.drain()
        let (update, notes, connection) = agent.take()
        Log.emit(notes)
        onConnection(connection)
        guard let update else { return }
        var reasons: [String] = []
        do {
            if let bundle = update.bundle {
                Trace.phase("store: update taken by the loop")
                let pieces = update.pieces
                try mirror.write(paths: pieces?.paths ?? [], content: { pieces?.content($0) ?? Data() }, revision: update.revision,
                                 digest: bundle.digest, unchanged: update.unchanged)
                Trace.phase("store: mirror written")
                reasons.append("pushed by \(bundle.pushedBy)" + (bundle.message.map { ": \($0)" } ?? "")
                               + (update.chunks.map { " (new chunks: \($0.patched) made from patches, \($0.fetched) fetched)" } ?? ""))
            }
            if let enrolled = update.enrolled {
                try mirror.writeEnrolled(enrolled)
                reasons.append("enrolled systems: \(update.enrolledChanges ?? "changed")")
            }
            if let overrides = update.overrides {
                try writeOverrides(overrides)
                reasons.append("runtime overrides changed")
            }
        } catch {
            Log.error("store: revision \(update.revision) not taken in: \(error)")
            return
        }
        onUpdate(update.revision, "store revision \(update.revision), " + reasons.joined(separator: "; "))
    }
}
