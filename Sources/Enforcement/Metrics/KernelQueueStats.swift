/// One queue's line of `/proc/net/netfilter/nfnetlink_queue`: what the kernel itself dropped
/// on its way to the worker, which no count of the worker's can see.
///
/// Each line holds nine numbers: queue number, the listener's netlink port id, packets
/// waiting now, copy mode, copy range, packets dropped because the queue was full, packets
/// dropped because the listener's socket could not take them (`user dropped`), the last
/// packet id, and a constant 1.
public struct KernelQueueStats: Sendable, Equatable {
    public var queue: UInt16
    public var waiting: UInt64
    /// Dropped while the queue held `queue_maxlen` packets (with `queue_full = "closed"`).
    public var queueDropped: UInt64
    /// Dropped because the worker's netlink socket buffer was full.
    public var userDropped: UInt64

    public static let path = "/proc/net/netfilter/nfnetlink_queue"

    /// The line of `queue` in the file's text, nil when no worker is bound to it (the kernel
    /// lists bound queues only) or the line is not nine numbers.
    public static func parse(_ text: String, queue: UInt16) -> KernelQueueStats? {
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { UInt64($0) }
            guard fields.count == 9, fields.allSatisfy({ $0 != nil }), fields[0] == UInt64(queue) else { continue }
            return KernelQueueStats(queue: queue, waiting: fields[2]!, queueDropped: fields[5]!, userDropped: fields[6]!)
        }
        return nil
    }
}
