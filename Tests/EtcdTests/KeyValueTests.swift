import Etcd
import Foundation
import Testing

/// Keys against a real etcd: round trips of text, binary and large values; the request size
/// limit; compare-and-swap; reads at a past revision.
@Suite struct KeyValueTests {
    @Test func putRangePrefixAndDeleteRoundTrip() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let binary = Data((0...255).map { UInt8($0) } + [0, 0xff, 0x0a])
                let large = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
                try await etcd.put("/f/policy/a", "alpha")
                try await etcd.put("/f/policy/b", binary)
                try await etcd.put("/f/policy/c", large)
                try await etcd.put("/f/policz", "outside the prefix")
                try await etcd.put(Data([0x2f, 0x00, 0xff]), Data([1, 2, 3]), lease: 0, prevKV: false)

                #expect(try await etcd.get("/f/policy/a")?.valueString == "alpha")
                #expect(try await etcd.get("/f/policy/b")?.value == binary)
                #expect(try await etcd.get("/f/policy/c")?.value == large)
                #expect(try await etcd.get("/f/policy/none") == nil)
                #expect(try await etcd.range(.key(Data([0x2f, 0x00, 0xff]))).kvs.first?.value == Data([1, 2, 3]))

                let prefix = try await etcd.range(.prefix("/f/policy/"))
                #expect(prefix.kvs.map(\.keyString) == ["/f/policy/a", "/f/policy/b", "/f/policy/c"])
                #expect(prefix.count == 3 && !prefix.more)
                let first = prefix.kvs[0]
                #expect(first.version == 1 && first.createRevision == first.modRevision && first.createRevision > 1)

                let limited = try await etcd.range(.prefix("/f/policy/"), RangeOptions(limit: 2, sort: .init(.key, .descending)))
                #expect(limited.kvs.map(\.keyString) == ["/f/policy/c", "/f/policy/b"] && limited.more && limited.count == 3)
                let keysOnly = try await etcd.range(.prefix("/f/policy/"), RangeOptions(keysOnly: true))
                #expect(keysOnly.kvs.count == 3 && keysOnly.kvs.allSatisfy { $0.value.isEmpty })
                let counted = try await etcd.range(.prefix("/f/"), RangeOptions(countOnly: true))
                #expect(counted.kvs.isEmpty && counted.count == 4)

                let replaced = try await etcd.put("/f/policy/a", "alpha 2", prevKV: true)
                #expect(replaced.prevKV?.valueString == "alpha" && replaced.header.revision > first.modRevision)
                #expect(try await etcd.get("/f/policy/a")?.version == 2)

                let deleted = try await etcd.delete(.prefix("/f/policy/"), prevKV: true)
                #expect(deleted.deleted == 3 && deleted.prevKVs.map(\.keyString) == ["/f/policy/a", "/f/policy/b", "/f/policy/c"])
                #expect(try await etcd.range(.prefix("/f/policy/")).kvs.isEmpty)
                #expect(try await etcd.get("/f/policz")?.valueString == "outside the prefix")
                #expect(try await etcd.delete(.key("/f/policy/a")).deleted == 0)
            }
        }
    }

    /// etcd refuses a request over `--max-request-bytes` (1.5 MiB) itself, and one far over it
    /// is refused by gRPC before etcd sees it; both read as `requestTooLarge`.
    @Test func aValueOverTheLimitIsRefusedAsTooLarge() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                for size in [1_600_000, 3 << 20] {
                    let error = await #expect(throws: EtcdError.self) { try await etcd.put("/big", Data(count: size)) }
                    #expect(error?.kind == .requestTooLarge)
                    #expect(error?.description.contains("1.5 MiB") == true)
                }
                #expect(try await etcd.get("/big") == nil)
                try await etcd.put("/big", Data(count: 1_400_000))
                #expect(try await etcd.get("/big")?.value.count == 1_400_000)
            }
        }
    }

    /// Two writers read the same revision and both try to replace the key guarded by it:
    /// exactly one transaction succeeds, and the other sees the winner's value.
    @Test func aTransactionGuardedByModRevisionLetsOneOfTwoWritersWin() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                try await etcd.put("/f/policy", "v1")
                let read = try #require(try await etcd.get("/f/policy"))
                async let first = etcd.txn(if: [.modRevision("/f/policy", .equal, read.modRevision)],
                                           then: [.put("/f/policy", "writer 1")], else: [.range(.key("/f/policy"))])
                async let second = etcd.txn(if: [.modRevision("/f/policy", .equal, read.modRevision)],
                                            then: [.put("/f/policy", "writer 2")], else: [.range(.key("/f/policy"))])
                let results = try await [first, second]
                #expect(results.filter(\.succeeded).count == 1)
                let winner = results[0].succeeded ? "writer 1" : "writer 2"
                #expect(try await etcd.get("/f/policy")?.valueString == winner)
                let loser = try #require(results.first { !$0.succeeded })
                guard case .range(let seen)? = loser.responses.first else { Issue.record("no range in \(loser)"); return }
                #expect(seen.kvs.first?.valueString == winner)
                let won = try #require(results.first { $0.succeeded })
                guard case .put? = won.responses.first else { Issue.record("no put in \(won)"); return }

                // "Does not exist yet" is mod_revision 0; value and version compares.
                let created = try await etcd.txn(if: [.modRevision("/f/new", .equal, 0)], then: [.put("/f/new", "1")])
                #expect(created.succeeded)
                let again = try await etcd.txn(if: [.modRevision("/f/new", .equal, 0)], then: [.put("/f/new", "2")])
                #expect(!again.succeeded && again.responses.isEmpty)
                #expect(try await etcd.txn(if: [.value("/f/new", .equal, "1"), .version("/f/new", .less, 2)],
                                           then: [.delete(.key("/f/new"))]).succeeded)
                #expect(try await etcd.txn(if: [.createRevision("/f/new", .greater, 0)], then: []).succeeded == false)
                #expect(try await etcd.txn(if: [.value("/f/policy", .notEqual, "nobody")], then: []).succeeded)
            }
        }
    }

    @Test func aRangeAtAnOlderRevisionReturnsTheOldValues() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let before = try await etcd.put("/f/policy/a", "old a").header.revision
                try await etcd.put("/f/policy/b", "old b")
                let snapshot = try await etcd.range(.prefix("/f/policy/")).header.revision
                try await etcd.put("/f/policy/a", "new a")
                try await etcd.delete(.key("/f/policy/b"))
                try await etcd.put("/f/policy/c", "new c")

                let old = try await etcd.range(.prefix("/f/policy/"), RangeOptions(revision: snapshot))
                #expect(old.kvs.map(\.valueString) == ["old a", "old b"])
                #expect(try await etcd.range(.prefix("/f/policy/")).kvs.map(\.valueString) == ["new a", "new c"])
                #expect(try await etcd.get("/f/policy/a", revision: before)?.valueString == "old a")

                let future = await #expect(throws: EtcdError.self) { try await etcd.get("/f/policy/a", revision: snapshot + 100) }
                #expect(future?.kind == .futureRevision)

                try await etcd.compact(revision: snapshot + 1)
                let compacted = await #expect(throws: EtcdError.self) {
                    try await etcd.range(.prefix("/f/policy/"), RangeOptions(revision: snapshot))
                }
                #expect(compacted?.kind == .compacted && compacted?.grpcCode == .outOfRange)
                #expect(try await etcd.range(.prefix("/f/policy/"), RangeOptions(revision: snapshot + 1)).kvs.count == 2)
            }
        }
    }
}
