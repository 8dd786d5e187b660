import Etcd
import Foundation

/// A throwaway PKI made with openssl for one test: a CA, a server certificate for 127.0.0.1
/// signed by it, a client certificate signed by it, and a second, unrelated CA.
struct TLSFiles: Sendable {
    let directory: String
    var caCertificate: String { directory + "/ca.pem" }
    var serverCertificate: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server-key.pem" }
    var clientCertificate: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client-key.pem" }
    /// A CA that signed nothing here: trusting it alone, a client must refuse the server.
    var otherCACertificate: String { directory + "/other-ca.pem" }

    /// What a client of the server made with these files needs.
    var clientTLS: EtcdTLS { EtcdTLS(caFile: caCertificate, certificateFile: clientCertificate, keyFile: clientKey) }

    static func make(in directory: String) throws -> TLSFiles {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let files = TLSFiles(directory: directory)
        try files.makeCA("ca", name: "enforcer test CA")
        try files.makeCA("other-ca", name: "some other CA")
        // etcd's gateway dials etcd's own gRPC port with the server certificate as its client
        // certificate, so the server certificate serves both purposes.
        try files.issue("server", name: "etcd", extensions: """
            subjectAltName = IP:127.0.0.1, DNS:localhost
            extendedKeyUsage = serverAuth, clientAuth
            """)
        try files.issue("client", name: "host-a", extensions: "extendedKeyUsage = clientAuth")
        return files
    }

    private func makeCA(_ file: String, name: String) throws {
        try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                     "-keyout", "\(directory)/\(file)-key.pem", "-out", "\(directory)/\(file).pem",
                                     "-days", "2", "-subj", "/CN=\(name)"])
    }

    private func issue(_ file: String, name: String, extensions: String) throws {
        let extFile = "\(directory)/\(file).ext"
        try extensions.write(toFile: extFile, atomically: true, encoding: .utf8)
        try run("/usr/bin/openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                     "-keyout", "\(directory)/\(file)-key.pem", "-out", "\(directory)/\(file).csr", "-subj", "/CN=\(name)"])
        try run("/usr/bin/openssl", ["x509", "-req", "-in", "\(directory)/\(file).csr", "-CA", caCertificate,
                                     "-CAkey", "\(directory)/ca-key.pem", "-CAcreateserial", "-days", "2",
                                     "-extfile", extFile, "-out", "\(directory)/\(file).pem"])
    }
}
