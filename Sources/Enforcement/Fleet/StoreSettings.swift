import Dispatch
import Etcd
import Foundation

/// How to reach a fleet's store: etcd's client URLs, the fleet's name, TLS and a user.
public struct StoreSettings: Sendable {
    public var endpoints: [String]
    public var layout: FleetLayout
    public var tls: EtcdTLS?
    public var credentials: EtcdCredentials?

    public init(endpoints: [String], fleet: String, tls: EtcdTLS? = nil, credentials: EtcdCredentials? = nil) throws(FleetError) {
        guard !endpoints.isEmpty else { throw .usage("--store needs at least one etcd client URL") }
        self.endpoints = endpoints
        layout = try FleetLayout(fleet: fleet)
        self.tls = tls
        self.credentials = credentials
    }

    /// A client for the store; shut it down when done (`FleetStore.close`).
    public func connect() throws(FleetError) -> FleetStore {
        do {
            let client = try EtcdGatewayClient(endpoints: endpoints, tls: tls, credentials: credentials)
            return FleetStore(client: client, layout: layout)
        } catch { throw .usage("cannot use the store \(endpoints.joined(separator: ",")): \(error)") }
    }

    /// "etcd at http://…, fleet NAME", for messages.
    public var summary: String { "\(endpoints.joined(separator: ",")) (fleet \(layout.fleet))" }
}

extension FleetStore {
    /// Closes the client's connections.
    public func close() async { await client.shutdown() }
}

/// Waits for `body`, run on the concurrency runtime's threads. enforcer's commands and its
/// daemon's event loop are synchronous; the etcd client is not.
public func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Written by one task, read after its semaphore: never at the same time.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
