import Etcd
import Foundation
import Testing

/// Leases against a real etcd: a key on a 2 s lease goes when the lease expires, stays while
/// it is kept alive, and goes at once when it is revoked.
@Suite struct LeaseTests {
    @Test func aKeyOnAnExpiredLeaseDisappears() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let lease = try await etcd.grantLease(ttl: 2)
                #expect(lease.ttl == 2 && lease.id != 0)
                try await etcd.put("/f/presence/a", "up", lease: lease.id)
                #expect(try await etcd.get("/f/presence/a")?.lease == lease.id)
                let alive = try await etcd.timeToLive(lease: lease.id, keys: true)
                #expect(alive.grantedTTL == 2 && alive.ttl > 0 && alive.keys == [Data("/f/presence/a".utf8)])

                try await Task.sleep(for: .seconds(3))
                #expect(try await etcd.get("/f/presence/a") == nil)
                #expect(try await etcd.timeToLive(lease: lease.id).ttl == -1)
                let gone = await #expect(throws: EtcdError.self) { try await etcd.keepAliveOnce(lease: lease.id) }
                #expect(gone?.kind == .leaseNotFound)
            }
        }
    }

    @Test func aKeyOnALeaseKeptAliveStays() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let lease = try await etcd.grantLease(ttl: 2, id: 4242)
                #expect(lease.id == 4242)
                try await etcd.put("/f/presence/a", "up", lease: lease.id)
                for _ in 0..<6 {
                    try await Task.sleep(for: .milliseconds(500))
                    #expect(try await etcd.keepAliveOnce(lease: lease.id) == 2)
                }
                // Three seconds after the grant, past its first TTL: still there.
                #expect(try await etcd.get("/f/presence/a")?.valueString == "up")
            }
        }
    }

    @Test func revokingALeaseRemovesItsKeysAtOnce() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { etcd in
                let lease = try await etcd.grantLease(ttl: 60)
                try await etcd.put("/f/presence/a", "up", lease: lease.id)
                try await etcd.put("/f/presence/b", "up", lease: lease.id)
                try await etcd.revokeLease(lease.id)
                #expect(try await etcd.range(.prefix("/f/presence/")).kvs.isEmpty)
                let again = await #expect(throws: EtcdError.self) { try await etcd.revokeLease(lease.id) }
                #expect(again?.kind == .leaseNotFound && again?.grpcCode == .notFound)
                let unknown = await #expect(throws: EtcdError.self) { try await etcd.put("/f/presence/c", "up", lease: lease.id) }
                #expect(unknown?.kind == .leaseNotFound)
            }
        }
    }
}
