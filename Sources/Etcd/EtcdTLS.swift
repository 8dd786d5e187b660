import Foundation
import NIOSSL

/// TLS to etcd's client port (`https://` endpoints): the CA that signed the server's
/// certificate, and, when etcd runs with `--client-cert-auth`, this host's certificate and key.
///
/// Files are PEM. They are read when the client is made, so a missing or unreadable file is
/// reported at start, not at the first request.
public struct EtcdTLS: Sendable, Equatable {
    /// The CA certificate(s) to verify the server with; nil for the system's trust store.
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?

    public init(caFile: String?, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// NIOSSL's configuration: the server's certificate must chain to the CA and name the
    /// host of the URL (an IP address must be among its subject alternative names).
    func configuration() throws(EtcdError) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .fullVerification
        if let caFile {
            tls.trustRoots = .certificates(try Self.certificates(caFile, what: "CA"))
        }
        switch (certificateFile, keyFile) {
        case (nil, nil):
            break
        case let (certificateFile?, keyFile?):
            tls.certificateChain = try Self.certificates(certificateFile, what: "client certificate").map { .certificate($0) }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw EtcdError(.configuration, "cannot read the client key \(keyFile): \(Self.reason(error, file: keyFile))")
            }
        default:
            throw EtcdError(.configuration, "a client certificate needs its key, and a key its certificate")
        }
        return tls
    }

    private static func certificates(_ file: String, what: String) throws(EtcdError) -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(file)
        } catch {
            throw EtcdError(.configuration, "cannot read the \(what) file \(file): \(reason(error, file: file))")
        }
        guard !certificates.isEmpty else { throw EtcdError(.configuration, "the \(what) file \(file) holds no PEM certificate") }
        return certificates
    }

    /// NIOSSL says "failedToLoadCertificate" for a missing file too; tell the two apart.
    private static func reason(_ error: any Error, file: String) -> String {
        FileManager.default.isReadableFile(atPath: file) ? "not a PEM file NIOSSL can read (\(error))" : "no such readable file"
    }
}
