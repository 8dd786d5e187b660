import Etcd
import Foundation
import Testing

/// TLS against a real etcd that verifies its clients' certificates (`--client-cert-auth`).
@Suite struct TLSTests {
    static func withTLSServer(_ body: (EtcdServer, TLSFiles) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "enforcer-etcd-pki-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let files = try TLSFiles.make(in: directory)
        var options = EtcdServer.Options()
        options.tls = files
        try await EtcdServer.with(options) { server in try await body(server, files) }
    }

    @Test func theRightCAAndClientCertificateWork() async throws {
        try await Self.withTLSServer { server, files in
            #expect(server.clientURL.hasPrefix("https://127.0.0.1:"))
            try await server.withClient(tls: files.clientTLS) { etcd in
                try await etcd.put("/f/policy/a", "over TLS")
                #expect(try await etcd.get("/f/policy/a")?.valueString == "over TLS")
                let watch = try await etcd.watch(.key("/f/policy/a"), from: 1)
                var iterator = watch.makeAsyncIterator()
                #expect(try await iterator.next()?.events.first?.kv.valueString == "over TLS")
            }
        }
    }

    @Test func aServerSignedByAnotherCAIsRefused() async throws {
        try await Self.withTLSServer { server, files in
            let tls = EtcdTLS(caFile: files.otherCACertificate, certificateFile: files.clientCertificate, keyFile: files.clientKey)
            try await server.withClient(tls: tls) { etcd in
                let error = await #expect(throws: EtcdError.self) { try await etcd.put("/f/policy/a", "x") }
                #expect(error?.kind == .tls)
                #expect(error?.message.contains("not signed by a trusted CA") == true, "\(String(describing: error))")
                #expect(error?.message.contains("CERTIFICATE_VERIFY_FAILED") == true)
                #expect(error?.endpoint == server.clientURL)
            }
        }
    }

    @Test func aClientWithoutACertificateIsRefused() async throws {
        try await Self.withTLSServer { server, files in
            try await server.withClient(tls: EtcdTLS(caFile: files.caCertificate)) { etcd in
                let error = await #expect(throws: EtcdError.self) { try await etcd.put("/f/policy/a", "x") }
                #expect(error?.kind == .tls, "\(String(describing: error))")
                #expect(error?.message.contains("refused this client's certificate, or its lack of one") == true, "\(String(describing: error))")
                #expect(error?.endpoint == server.clientURL)
            }
        }
    }

    @Test func unreadableFilesAreReportedWhenTheClientIsMade() throws {
        let error = #expect(throws: EtcdError.self) {
            _ = try EtcdGatewayClient(endpoints: ["https://127.0.0.1:2379"], tls: EtcdTLS(caFile: "/nonexistent/ca.pem"))
        }
        #expect(error?.kind == .configuration)
        #expect(error?.message == "cannot read the CA file /nonexistent/ca.pem: no such readable file")
        let plain = #expect(throws: EtcdError.self) {
            _ = try EtcdGatewayClient(endpoints: ["http://127.0.0.1:2379"], tls: EtcdTLS(caFile: nil))
        }
        #expect(plain?.kind == .configuration)
    }
}
