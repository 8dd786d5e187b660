import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import Etcd

/// The gateway's wire format without a server: requests as etcd 3.4 reads them, answers and
/// errors as it writes them (each fixture copied from etcd 3.4.23's own output).
@Suite struct GatewayJSONTests {
    @Test(arguments: [
        ("a", [UInt8]("b".utf8)),
        ("/enforcer/f/policy/", [UInt8]("/enforcer/f/policy0".utf8)),
    ])
    func aPrefixEndsAtItsLastByteRaised(prefix: String, end: [UInt8]) {
        #expect(KeyRange.prefix(prefix).rangeEnd == Data(end))
    }

    @Test func aPrefixEndingIn0xffRaisesTheByteBefore() {
        #expect(KeyRange.prefixEnd(Data([0x61, 0xff, 0xff])) == Data([0x62]))
        #expect(KeyRange.prefixEnd(Data([0xff, 0xff])) == Data([0]))
        #expect(KeyRange.prefixEnd(Data()) == Data([0]))
    }

    @Test func aRangeRequestLeavesZeroFieldsOutAndWritesIntegersAsStrings() throws {
        let json = try encoded(WireRangeRequest(.prefix("/a/"), RangeOptions(limit: 5, sort: .init(.modRevision, .descending))))
        #expect(json == #"{"key":"L2Ev","limit":"5","range_end":"L2Ew","sort_order":"DESCEND","sort_target":"MOD"}"#)
        #expect(try encoded(WireRangeRequest(.key("k"), RangeOptions())) == #"{"key":"aw=="}"#)
    }

    /// "The key does not exist" compares mod_revision with 0, which must be written.
    @Test func aCompareWritesItsTargetEvenAtZero() throws {
        #expect(try encoded(WireCompare(.modRevision("k", .equal, 0)))
            == #"{"key":"aw==","mod_revision":"0","result":"EQUAL","target":"MOD"}"#)
        #expect(try encoded(WireCompare(.value("k", .notEqual, "v"))) == #"{"key":"aw==","result":"NOT_EQUAL","target":"VALUE","value":"dg=="}"#)
    }

    @Test func anAnswerReadsIntegersFromStringsAndAbsentFieldsAsZero() throws {
        let range = try decoded(WireRangeResponse.self, #"""
            {"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},
             "kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}
            """#).response
        #expect(range.header == ResponseHeader(clusterID: 15118495548433857066, memberID: 13668033151171901709, revision: 2, raftTerm: 2))
        #expect(range.kvs == [KeyValue(key: Data("foo".utf8), value: Data("bar".utf8), createRevision: 2, modRevision: 2, version: 1)])
        #expect(range.count == 1 && !range.more)
        let empty = try decoded(WireRangeResponse.self, #"{"header":{"revision":"7"}}"#).response
        #expect(empty.kvs.isEmpty && empty.count == 0 && empty.header.revision == 7)
        let failed = try decoded(WireTxnResponse.self, #"{"header":{"revision":"4"},"responses":[{"response_range":{"header":{"revision":"4"}}}]}"#)
        #expect(failed.succeeded == nil)
    }

    @Test func aWatchLineReadsEventsWithAPutBeingTheDefault() throws {
        let line = try decoded(WireWatchLine.self, #"""
            {"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"Zm9v","mod_revision":"3","value":"YmF6"}},
             {"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"4"}}]}}
            """#)
        let events = try #require(line.result?.events).map(\.event)
        #expect(events.map(\.kind) == [.put, .delete])
        #expect(events.map(\.kv.modRevision) == [3, 4])
    }

    @Test(arguments: [
        (403, #"{"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}"#, EtcdError.Kind.permissionDenied),
        (401, #"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#, .invalidAuthToken),
        (400, #"{"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3}"#, .authenticationFailed),
        (400, #"{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}"#, .authenticationRequired),
        (400, #"{"error":"etcdserver: request is too large","message":"etcdserver: request is too large","code":3}"#, .requestTooLarge),
        (429, #"{"error":"grpc: received message larger than max (3145738 vs. 2097152)","message":"grpc: received message larger than max (3145738 vs. 2097152)","code":8}"#, .requestTooLarge),
        (400, #"{"error":"etcdserver: mvcc: required revision has been compacted","message":"etcdserver: mvcc: required revision has been compacted","code":11}"#, .compacted),
        (400, #"{"error":"etcdserver: mvcc: required revision is a future revision","message":"etcdserver: mvcc: required revision is a future revision","code":11}"#, .futureRevision),
        (404, #"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#, .leaseNotFound),
        (409, #"{"error":"etcdserver: user name already exists","message":"etcdserver: user name already exists","code":9}"#, .server),
        (404, "Not Found\n", .http),
    ])
    func anErrorAnswerIsSortedByCodeAndMessage(status: Int, body: String, kind: EtcdError.Kind) {
        let error = EtcdGatewayClient.failure(status: HTTPResponseStatus(statusCode: status), ByteBuffer(string: body), endpoint: "http://e:2379")
        #expect(error.kind == kind)
        #expect(error.httpStatus == status && error.endpoint == "http://e:2379")
    }

    @Test func anErrorSaysWhatHappenedInWords() {
        let denied = EtcdGatewayClient.failure(status: .forbidden, ByteBuffer(string: #"{"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}"#),
                                               endpoint: "http://10.0.0.5:2379")
        #expect(denied.description == #"etcd http://10.0.0.5:2379: permission denied: the user's roles do not allow this on this key ("etcdserver: permission denied", gRPC 7 PermissionDenied, HTTP 403)"#)
        let notEtcd = EtcdGatewayClient.failure(status: .notFound, ByteBuffer(string: "Not Found\n"), endpoint: "http://10.0.0.5:2379")
        #expect(notEtcd.description == #"etcd http://10.0.0.5:2379: an HTTP error that is not etcd's ("404 Not Found: Not Found", HTTP 404)"#)
    }

    /// A watch refused when created says why in text, gRPC's status spelled out.
    @Test func aWatchCancelReasonIsSortedLikeAnError() {
        let denied = EtcdError.fromCancelReason("rpc error: code = PermissionDenied desc = etcdserver: permission denied", endpoint: nil)
        #expect(denied.kind == .permissionDenied && denied.grpcCode == .permissionDenied && denied.message == "etcdserver: permission denied")
        #expect(EtcdError.fromCancelReason("rpc error: code = Unauthenticated desc = etcdserver: invalid auth token", endpoint: nil).kind == .invalidAuthToken)
        #expect(EtcdError.fromCancelReason("rpc error: code = InvalidArgument desc = etcdserver: user name is empty", endpoint: nil).kind == .authenticationRequired)
        #expect(EtcdError.fromCancelReason("something else", endpoint: nil).kind == .watchCanceled)
    }

    /// Lines split across chunks, several in one chunk, blank ones, and a last one without
    /// its newline.
    @Test func aStreamedAnswerIsCutIntoLinesWhereverItsChunksEnd() async throws {
        let chunks = ["{\"a\":", "1}\n{\"b\":2}\n\n{\"c\"", ":3}\r\n", "{\"d\":4}"].map { ByteBuffer(string: $0) }
        let body = HTTPClientResponse.Body.stream(Chunks(chunks: chunks))
        let reader = GatewayLineReader(body)
        var lines: [String] = []
        while let line = try await reader.nextLine() { lines.append(String(decoding: line, as: UTF8.self)) }
        #expect(lines == [#"{"a":1}"#, #"{"b":2}"#, "{\"c\":3}\r", #"{"d":4}"#])
    }

    /// The Etcd target is a bottom layer: it imports none of enforcer's other targets.
    @Test func theEtcdTargetImportsNothingOfEnforcer() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/Etcd").standardized
        let allowed: Set = ["AsyncHTTPClient", "Foundation", "NIOCore", "NIOHTTP1", "NIOPosix", "NIOSSL", "Synchronization"]
        let files = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { $0.hasSuffix(".swift") }
        #expect(files.count > 5)
        for file in files {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            let imports = text.split(separator: "\n").filter { $0.hasPrefix("import ") }.map { String($0.dropFirst(7)) }
            #expect(Set(imports).isSubset(of: allowed), "\(file) imports \(imports)")
        }
    }

    private func encoded(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private func decoded<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(json.utf8))
    }
}

/// Chunks of a body, as the network might cut them.
private struct Chunks: AsyncSequence, Sendable {
    let chunks: [ByteBuffer]

    struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: [ByteBuffer]
        mutating func next() async -> ByteBuffer? { remaining.isEmpty ? nil : remaining.removeFirst() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: chunks) }
}
