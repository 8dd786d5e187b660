import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// The lines of a streamed gateway answer (a watch, a keep-alive): one JSON object per line,
/// over a chunked HTTP/1.1 body whose chunks need not end where lines do.
///
/// Dropping the reader before the body ends cancels the request, which closes its connection:
/// that is how a watch is ended.
final class GatewayLineReader {
    /// A line longer than this is not etcd's (its own messages stay under its gRPC limits).
    static let maximumLine = 256 << 20

    private var chunks: HTTPClientResponse.Body.AsyncIterator
    /// Bytes received after the last whole line.
    private var pending: [UInt8] = []
    /// `pending` before this index holds no newline (no need to search it again).
    private var searched = 0
    private let received: ReceivedBytes?

    init(_ body: HTTPClientResponse.Body, counting received: ReceivedBytes? = nil) {
        chunks = body.makeAsyncIterator()
        self.received = received
    }

    /// The next non-blank line, without its newline; nil when the body has ended. Throws what
    /// the connection throws.
    func nextLine() async throws -> [UInt8]? {
        while true {
            if let newline = pending[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                searched = 0
                if Self.isBlank(line) { continue }
                return line
            }
            searched = pending.count
            guard let chunk = try await chunks.next() else {
                // The last line may come without its newline.
                let line = pending
                pending = []
                searched = 0
                return Self.isBlank(line) ? nil : line
            }
            received?.add(chunk.readableBytes)
            pending.append(contentsOf: chunk.readableBytesView)
            if pending.count > Self.maximumLine {
                throw EtcdError(.malformedResponse, "a streamed line is longer than \(Self.maximumLine) bytes")
            }
        }
    }

    private static func isBlank(_ line: [UInt8]) -> Bool {
        line.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }
    }
}

/// One watch's answer read as typed responses: the first message (etcd's "created") is awaited
/// before the watch is handed out; a cancel or a lost connection ends it with an error, once.
final class GatewayWatchStream {
    private let lines: GatewayLineReader
    private let endpoint: String
    private var finished = false

    init(_ body: HTTPClientResponse.Body, endpoint: String, counting received: ReceivedBytes? = nil) {
        lines = GatewayLineReader(body, counting: received)
        self.endpoint = endpoint
    }

    /// Waits for etcd to confirm the watch; throws why it did not (permission denied, a
    /// refused token).
    func awaitCreated() async throws(EtcdError) {
        while let result = try await nextResult() {
            if result.created == true { return }
        }
        throw EtcdError(.connection, "etcd closed the watch before creating it", endpoint: endpoint)
    }

    /// The next response with events, or a progress notification; nil once the watch has
    /// ended or the reading task was cancelled.
    func next() async throws(EtcdError) -> WatchResponse? {
        while let result = try await nextResult() {
            // etcd 3.4 sends "created" as a message of its own; awaitCreated took it.
            if result.created == true { continue }
            return WatchResponse(header: result.header.header, watchID: result.watch_id.int, events: (result.events ?? []).map(\.event))
        }
        return nil
    }

    private func nextResult() async throws(EtcdError) -> WireWatchLine.Result? {
        guard !finished else { return nil }
        do throws(EtcdError) {
            while true {
                let line: [UInt8]?
                do {
                    line = try await lines.nextLine()
                } catch let error as EtcdError {
                    throw error
                } catch {
                    if Task.isCancelled { finished = true; return nil }
                    var lost = EtcdGatewayClient.transportError(error, endpoint: endpoint)
                    lost.message = "the watch's connection was lost: " + lost.message
                    throw lost
                }
                guard let line else {
                    if Task.isCancelled { finished = true; return nil }
                    throw EtcdError(.connection, "etcd closed the watch's connection", endpoint: endpoint)
                }
                let decoded = try EtcdGatewayClient.decode(WireWatchLine.self, Data(line), endpoint: endpoint)
                if let failure = decoded.error {
                    throw EtcdError.fromServer(code: failure.grpc_code ?? GRPCStatusCode.unknown.rawValue, message: failure.message ?? "",
                                               httpStatus: failure.http_code, endpoint: endpoint)
                }
                guard let result = decoded.result else { continue }
                if result.canceled == true {
                    let compacted = result.compact_revision.int
                    if compacted > 0 {
                        throw EtcdError(.compacted, "etcdserver: mvcc: required revision has been compacted", grpcCode: .outOfRange,
                                        endpoint: endpoint, compactRevision: compacted)
                    }
                    throw EtcdError.fromCancelReason(result.cancel_reason ?? "", endpoint: endpoint)
                }
                return result
            }
        } catch {
            finished = true
            throw error
        }
    }
}

/// A running count of the bytes a client's answers brought, shared by its unary calls and
/// its streams (which read on other tasks).
final class ReceivedBytes: Sendable {
    private let count = Atomic<Int>(0)

    func add(_ bytes: Int) { count.add(bytes, ordering: .relaxed) }
    var total: Int { count.load(ordering: .relaxed) }
}
