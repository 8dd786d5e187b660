import Foundation

public struct WatchOptions: Sendable, Equatable {
    /// The first revision to report; 0 for "from now on". Reading a snapshot at revision R
    /// and watching from R + 1 misses nothing in between.
    public var startRevision: Int64
    /// Each event also carries the key as it was before the change.
    public var prevKV: Bool
    /// etcd sends an empty response now and then on a quiet watch, so a watcher knows it is
    /// still current up to that header's revision.
    public var progressNotify: Bool

    public init(startRevision: Int64 = 0, prevKV: Bool = false, progressNotify: Bool = false) {
        self.startRevision = startRevision
        self.prevKV = prevKV
        self.progressNotify = progressNotify
    }
}

public struct WatchEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case put, delete }

    public var kind: Kind
    /// The key after the change; for a delete, only the key and the deleting revision
    /// (`modRevision`) are set.
    public var kv: KeyValue
    /// The key before the change, when asked for (`prevKV`) and it existed.
    public var prevKV: KeyValue?

    public init(kind: Kind, kv: KeyValue, prevKV: KeyValue? = nil) {
        self.kind = kind
        self.kv = kv
        self.prevKV = prevKV
    }
}

/// One message of a watch: events in revision order, or none for a progress notification.
public struct WatchResponse: Sendable, Equatable {
    public var header: ResponseHeader
    public var watchID: Int64
    public var events: [WatchEvent]

    public init(header: ResponseHeader, watchID: Int64 = 0, events: [WatchEvent]) {
        self.header = header
        self.watchID = watchID
        self.events = events
    }

    /// No events: etcd says the watcher has seen everything up to `header.revision`.
    public var isProgressNotify: Bool { events.isEmpty }
}

/// A watch that etcd has confirmed: the changes to its keys, in order, for as long as it
/// lasts. It never ends by itself: it ends with an `EtcdError` when etcd cancels it
/// (`compacted`, carrying the oldest revision kept, means "read a fresh snapshot and watch
/// again from there") or when the connection is lost (`connection`); and it ends without
/// an error when the task reading it is cancelled, which closes the connection.
///
/// One pass only: iterate it once, in one task at a time.
public struct EtcdWatch: AsyncSequence {
    public typealias Element = WatchResponse
    public typealias Failure = EtcdError

    private let nextResponse: () async throws(EtcdError) -> WatchResponse?

    /// A watch whose responses come from `next`: nil once it has ended.
    public init(next: @escaping () async throws(EtcdError) -> WatchResponse?) {
        nextResponse = next
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let nextResponse: () async throws(EtcdError) -> WatchResponse?

        public mutating func next() async throws(EtcdError) -> WatchResponse? {
            try await nextResponse()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(nextResponse: nextResponse) }
}
