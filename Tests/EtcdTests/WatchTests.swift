import Etcd
import Foundation
import Testing

/// Watches against a real etcd: events in order from a start revision, progress
/// notifications, the end of a watch by cancellation, by compaction and by a dead server.
@Suite struct WatchTests {
    @Test func aWatchFromTheNextRevisionSeesPutsAndDeletesInOrder() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                try await etcd.put("/f/policy/a", "before")
                let snapshot = try await etcd.range(.prefix("/f/policy/"))
                let watch = try await etcd.watch(.prefix("/f/policy/"), from: snapshot.header.revision + 1, prevKV: true)
                let put1 = try await etcd.put("/f/policy/a", "one").header.revision
                try await etcd.put("/f/other", "not watched")
                let put2 = try await etcd.put("/f/policy/b", "two").header.revision
                let deleted = try await etcd.delete(.key("/f/policy/a")).header.revision

                var events: [WatchEvent] = []
                for try await response in watch {
                    events += response.events
                    if events.count >= 3 { break }
                }
                #expect(events.map(\.kind) == [.put, .put, .delete])
                #expect(events.map(\.kv.keyString) == ["/f/policy/a", "/f/policy/b", "/f/policy/a"])
                #expect(events.map(\.kv.modRevision) == [put1, put2, deleted])
                #expect(events.map(\.kv.valueString) == ["one", "two", ""])
                #expect(events[0].prevKV?.valueString == "before")
                #expect(events[2].prevKV?.valueString == "one")
            }
        }
    }

    /// The client counts the bytes of etcd's answers, unary and streamed: a value of 30,000
    /// bytes comes as 40,000 of base64 in its JSON, once by a read and once by a watch event,
    /// and a put's answer (a header) adds only a little.
    @Test func theBytesOfAnswersAndWatchEventsAreCounted() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let value = Data((0..<30_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
                let watch = try await etcd.watch(.prefix("/f/big/"))
                let beforePut = etcd.bytesReceived
                try await etcd.put("/f/big/a", value)
                let afterPut = etcd.bytesReceived
                #expect(afterPut > beforePut && afterPut - beforePut < 500)
                var iterator = watch.makeAsyncIterator()
                let response = try #require(try await iterator.next())
                #expect(response.events.first?.kv.value == value)
                let afterEvent = etcd.bytesReceived
                #expect(afterEvent - afterPut >= 40_000 && afterEvent - afterPut < 41_000)
                _ = try await etcd.get("/f/big/a")
                #expect(etcd.bytesReceived - afterEvent >= 40_000 && etcd.bytesReceived - afterEvent < 41_000)
            }
        }
    }

    /// With progress_notify, a quiet watch hears from etcd (every second here) and learns how
    /// far it is current.
    @Test func aQuietWatchWithProgressNotifyGetsAnEmptyResponse() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let revision = try await etcd.put("/f/policy/a", "x").header.revision
                let watch = try await etcd.watch(.prefix("/f/policy/"), from: revision + 1, progressNotify: true)
                var iterator = watch.makeAsyncIterator()
                let response = try #require(try await iterator.next())
                #expect(response.isProgressNotify && response.header.revision == revision)
            }
        }
    }

    /// Cancelling the task that reads a watch ends the iteration without an error and closes
    /// its connection: etcd's count of watch streams falls back to zero.
    @Test func cancellingTheReadingTaskClosesTheWatch() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let watch = try await etcd.watch(.prefix("/f/"))
                #expect(try server.metric("etcd_debugging_mvcc_watch_stream_total") == 1)
                let reader = Task {
                    var count = 0
                    for try await response in watch { count += response.events.count }
                    return count
                }
                try await etcd.put("/f/a", "1")
                try await Task.sleep(for: .milliseconds(200))
                reader.cancel()
                #expect(try await reader.value == 1)
                try await eventually { try server.metric("etcd_debugging_mvcc_watch_stream_total") == 0 }
            }
        }
    }

    /// A watch from a compacted revision ends with `compacted`, carrying the oldest revision
    /// kept, so the watcher reads a fresh snapshot and watches again from there.
    @Test func aWatchAtACompactedRevisionEndsWithTheCompactRevision() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let first = try await etcd.put("/f/policy/a", "1").header.revision
                try await etcd.put("/f/policy/a", "2")
                let last = try await etcd.put("/f/policy/a", "3").header.revision
                try await etcd.compact(revision: last)
                let watch = try await etcd.watch(.prefix("/f/policy/"), from: first)
                let error = await #expect(throws: EtcdError.self) {
                    for try await _ in watch {}
                }
                #expect(error?.kind == .compacted)
                #expect(error?.compactRevision == last)
                #expect(error?.description.contains("the oldest kept is \(last)") == true)
            }
        }
    }

    @Test func killingEtcdEndsTheWatchWithAConnectionError() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let watch = try await etcd.watch(.prefix("/f/"))
                try await etcd.put("/f/a", "1")
                let reader = Task {
                    var count = 0
                    do {
                        for try await response in watch { count += response.events.count }
                        return (count, nil as EtcdError?)
                    } catch let error as EtcdError {
                        return (count, error)
                    } catch {
                        Issue.record("not an EtcdError: \(error)")
                        return (count, nil)
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                server.kill()
                let (count, error) = await reader.value
                #expect(count == 1)
                #expect(error?.kind == .connection)
                #expect(error?.endpoint == server.clientURL)
            }
        }
    }
}

/// Waits until `condition` holds, for at most `seconds`.
func eventually(within seconds: Double = 5, _ condition: () throws -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    #expect(try condition(), "not within \(seconds) s", sourceLocation: sourceLocation)
}
