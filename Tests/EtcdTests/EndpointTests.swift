import Etcd
import Foundation
import Testing

/// Several endpoints: a member that cannot be reached is passed over for the next.
@Suite struct EndpointTests {
    @Test func anUnreachableEndpointIsPassedOverForTheNext() async throws {
        let dead = "http://127.0.0.1:\(try freePort())"
        try await EtcdServer.with { server in
            try await server.withClient(endpoints: [dead, server.clientURL]) { etcd in
                try await etcd.put("/f/a", "1")
                #expect(try await etcd.get("/f/a")?.valueString == "1")
                #expect(try await etcd.status().version == "3.4.23")
                _ = try await etcd.watch(.key("/f/a"))
            }
        }
    }

    @Test func whenNoEndpointAnswersTheErrorNamesThemAll() async throws {
        let dead = ["http://127.0.0.1:\(try freePort())", "http://127.0.0.1:\(try freePort())"]
        let etcd = try EtcdGatewayClient(endpoints: dead)
        let error = await #expect(throws: EtcdError.self) { try await etcd.put("/f/a", "1") }
        await etcd.shutdown()
        #expect(error?.kind == .connection)
        #expect(error?.endpoint == dead.joined(separator: ", "))
        #expect(error?.message == dead.map { "\($0): connection refused" }.joined(separator: "; "))
    }

    @Test func aURLThatIsNotAnEndpointIsRefused() {
        for endpoint in ["127.0.0.1:2379", "ftp://127.0.0.1", "http://127.0.0.1:2379/v3"] {
            let error = #expect(throws: EtcdError.self) { _ = try EtcdGatewayClient(endpoints: [endpoint]) }
            #expect(error?.kind == .configuration, "\(endpoint)")
        }
        #expect(throws: EtcdError.self) { _ = try EtcdGatewayClient(endpoints: []) }
    }
}
