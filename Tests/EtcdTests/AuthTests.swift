import Foundation
import Testing
@testable import Etcd

/// etcd's users and roles as the fleet uses them: each host may read the policy and write
/// only its own presence key.
@Suite struct AuthTests {
    static let root = EtcdCredentials(user: "root", password: "root secret")
    static let hostA = EtcdCredentials(user: "host-a", password: "host-a secret")

    /// Enables authentication with a root user, and a role for host a.
    static func setUp(_ etcd: EtcdGatewayClient) async throws {
        try await etcd.addUser("root", password: root.password)
        try await etcd.addRole("root")
        try await etcd.grantRole("root", toUser: "root")
        try await etcd.enableAuth()
        try await etcd.authenticate(root)
        try await etcd.put("/enforcer/f/policy/main", "allow ssh")
        try await etcd.addRole("host-a")
        try await etcd.grant(.prefix("/enforcer/f/policy/", .read), toRole: "host-a")
        try await etcd.grant(.key("/enforcer/f/presence/a", .readWrite), toRole: "host-a")
        try await etcd.addUser("host-a", password: hostA.password)
        try await etcd.grantRole("host-a", toUser: "host-a")
    }

    @Test func aHostReadsThePolicyAndWritesOnlyItsOwnPresence() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { try await Self.setUp($0) }
            try await server.withClient(credentials: Self.hostA) { host in
                #expect(try await host.range(.prefix("/enforcer/f/policy/")).kvs.map(\.valueString) == ["allow ssh"])
                try await host.put("/enforcer/f/presence/a", "up")
                #expect(try await host.get("/enforcer/f/presence/a")?.valueString == "up")
                for key in ["/enforcer/f/presence/b", "/enforcer/f/policy/x", "/enforcer/f/systems/a"] {
                    let error = await #expect(throws: EtcdError.self, "writing \(key)") { try await host.put(key, "mine") }
                    #expect(error?.kind == .permissionDenied, "writing \(key)")
                    #expect(error?.grpcCode == .permissionDenied && error?.httpStatus == 403)
                }
                let read = await #expect(throws: EtcdError.self) { try await host.get("/enforcer/f/systems/a") }
                #expect(read?.kind == .permissionDenied)
                // A watch beyond the role's keys is refused when it is created.
                let watch = await #expect(throws: EtcdError.self) { _ = try await host.watch(.prefix("/enforcer/f/")) }
                #expect(watch?.kind == .permissionDenied)
                _ = try await host.watch(.prefix("/enforcer/f/policy/"))
            }
        }
    }

    @Test func aWrongPasswordAndNoUserFailClearly() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { try await Self.setUp($0) }
            try await server.withClient { etcd in
                let wrong = await #expect(throws: EtcdError.self) { try await etcd.authenticate(user: "host-a", password: "guess") }
                #expect(wrong?.kind == .authenticationFailed)
                #expect(wrong?.description.contains("wrong user name or password") == true)
                let anonymous = await #expect(throws: EtcdError.self) { try await etcd.get("/enforcer/f/policy/main") }
                #expect(anonymous?.kind == .authenticationRequired)
            }
            try await server.withClient(credentials: EtcdCredentials(user: "host-a", password: "guess")) { etcd in
                let wrong = await #expect(throws: EtcdError.self) { try await etcd.get("/enforcer/f/policy/main") }
                #expect(wrong?.kind == .authenticationFailed)
            }
            // Only root may turn authentication off; then anyone reads again.
            try await server.withClient(credentials: Self.hostA) { host in
                let refused = await #expect(throws: EtcdError.self) { try await host.disableAuth() }
                #expect(refused?.kind == .permissionDenied)
            }
            try await server.withClient(credentials: Self.root) { try await $0.disableAuth() }
            try await server.withClient { anonymous in
                let policy = try await anonymous.get("/enforcer/f/policy/main")
                #expect(policy?.valueString == "allow ssh")
            }
        }
    }

    /// A deleted user's password no longer logs in and the token it held stops working; a
    /// deleted role stops granting; other users keep theirs.
    @Test func aDeletedUserNoLongerLogsInAndADeletedRoleNoLongerGrants() async throws {
        try await EtcdServer.with { server in
            try await server.withClient { try await Self.setUp($0) }
            let hostB = EtcdCredentials(user: "host-b", password: "host-b secret")
            try await server.withClient(credentials: Self.root) { root in
                try await root.addUser(hostB.user, password: hostB.password)
                try await root.grantRole("host-a", toUser: hostB.user)
            }
            try await server.withClient(credentials: Self.hostA) { host in
                try await host.put("/enforcer/f/presence/a", "up")
                try await server.withClient(credentials: Self.root) { try await $0.deleteUser(Self.hostA.user) }
                // The token host a logged in with before is refused, and so is its password.
                let stale = await #expect(throws: EtcdError.self) { try await host.put("/enforcer/f/presence/a", "still here") }
                #expect(stale?.kind == .authenticationFailed || stale?.kind == .invalidAuthToken, "\(String(describing: stale))")
            }
            try await server.withClient { etcd in
                let gone = await #expect(throws: EtcdError.self) { try await etcd.authenticate(Self.hostA) }
                #expect(gone?.kind == .authenticationFailed)
            }
            // host b held the same role: it works until the role is deleted, then reads nothing.
            try await server.withClient(credentials: hostB) { host in
                #expect(try await host.get("/enforcer/f/policy/main")?.valueString == "allow ssh")
                try await server.withClient(credentials: Self.root) { try await $0.deleteRole("host-a") }
                let denied = await #expect(throws: EtcdError.self) { try await host.get("/enforcer/f/policy/main") }
                #expect(denied?.kind == .permissionDenied)
            }
            // Deleting what is not there says so.
            try await server.withClient(credentials: Self.root) { root in
                let missing = await #expect(throws: EtcdError.self) { try await root.deleteUser("nobody") }
                #expect(missing?.description.contains("not found") == true, "\(String(describing: missing))")
            }
        }
    }

    /// A token unused for longer than `--auth-token-ttl` is refused; the client logs in
    /// again by itself, once, and the request goes through.
    @Test func anExpiredTokenIsReplacedByLoggingInAgain() async throws {
        var options = EtcdServer.Options()
        options.authTokenTTL = 1
        try await EtcdServer.with(options) { server in
            try await server.withClient { try await Self.setUp($0) }
            try await server.withClient(credentials: Self.hostA) { host in
                try await host.authenticate(Self.hostA)
                let first = try #require(host.token)
                #expect(try await host.get("/enforcer/f/policy/main")?.valueString == "allow ssh")
                try await Task.sleep(for: .seconds(3))
                // The old token is refused now...
                let refused = try run("/usr/bin/curl", ["-sS", "--max-time", "5", "-H", "Authorization: \(first)",
                                                        server.clientURL + "/v3/kv/range", "-d", #"{"key":"Lw=="}"#])
                #expect(refused.contains("invalid auth token"))
                // ...and the client that can, does.
                #expect(try await host.get("/enforcer/f/policy/main")?.valueString == "allow ssh")
                #expect(host.token != first)
            }
        }
    }
}
