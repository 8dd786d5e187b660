import Compiler
import Foundation

/// A certificate authority for a fleet's etcd, in a directory: its key and certificate, the
/// certificate etcd serves (and dials its own gateway with), and one client certificate per
/// host or administrator. Made with Debian's `openssl` command, so enforcer carries no
/// cryptography of its own for it.
///
/// ```
/// D/ca.pem, D/ca-key.pem           the CA (its key never leaves D)
/// D/server.pem, D/server-key.pem   etcd's: --cert-file, --key-file
/// D/NAME.pem, D/NAME-key.pem       a client's: --store-cert, --store-key
/// ```
///
/// Keys are mode 0600 from their first byte (the command runs under umask 077), and D is 0700.
public struct FleetCA: Sendable {
    public let directory: String
    public var caCertificate: String { directory + "/ca.pem" }
    var caKey: String { directory + "/ca-key.pem" }
    public func certificate(_ name: String) -> String { directory + "/\(name).pem" }
    public func key(_ name: String) -> String { directory + "/\(name)-key.pem" }

    public static let openssl = "/usr/bin/openssl"

    public init(directory: String) { self.directory = directory }

    /// Makes the CA in `directory` and the certificate etcd serves, naming the server by
    /// `names` (DNS) and `addresses` (IP), as clients write it in their `--store` URLs.
    public static func create(in directory: String, names: [String], addresses: [String], days: Int) throws(FleetError) -> FleetCA {
        guard !names.isEmpty || !addresses.isEmpty else { throw .usage("give the names clients reach etcd by: --server-name NAME and/or --server-ip ADDRESS") }
        for name in names where !Enrolment.isPlainName(name) { throw .usage("--server-name '\(name)': a DNS name (letters, digits, '.', '-')") }
        for address in addresses where (try? IPAddress.parse(address)) == nil { throw .usage("--server-ip '\(address)': not an IP address") }
        guard (1...3650).contains(days) else { throw .usage("--days: from 1 to 3650") }
        let ca = FleetCA(directory: directory)
        if FileManager.default.fileExists(atPath: ca.caCertificate) { throw .usage("\(ca.caCertificate) exists: a CA is already made in \(directory)") }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch { throw .usage("cannot make \(directory): \(SystemErrno.describe(error))") }
        try ca.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca.caKey, "-out", ca.caCertificate,
                        "-days", String(days), "-subj", "/CN=enforcer fleet CA",
                        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        let alternatives: [String] = names.map { "DNS:\($0)" } + addresses.map { "IP:\($0)" }
        // etcd's HTTP gateway dials etcd's own gRPC port with this certificate as its client's.
        let subjectAlternatives = "subjectAltName = \(alternatives.joined(separator: ", "))"
        try ca.issue("server", extensions: [subjectAlternatives, "extendedKeyUsage = serverAuth, clientAuth"], days: days)
        return ca
    }

    /// A client certificate `NAME` (its common name too) for `--store-cert`/`--store-key`.
    public func issueClient(_ name: String, days: Int) throws(FleetError) {
        guard Enrolment.isPlainName(name), name != "server", name != "ca" else {
            throw .usage("certificate name '\(name)': letters, digits, '.', '_', '-' (not 'ca' or 'server')")
        }
        guard (1...3650).contains(days) else { throw .usage("--days: from 1 to 3650") }
        guard FileManager.default.fileExists(atPath: caCertificate) else { throw .usage("no CA in \(directory): make it with `fleet ca init --dir \(directory)`") }
        try issue(name, extensions: ["extendedKeyUsage = clientAuth"], days: days)
    }

    private func issue(_ name: String, extensions: [String], days: Int) throws(FleetError) {
        if FileManager.default.fileExists(atPath: certificate(name)) { throw .usage("\(certificate(name)) exists: choose another name") }
        let request = directory + "/\(name).csr", extensionFile = directory + "/\(name).ext"
        defer {
            unlink(request)
            unlink(extensionFile)
        }
        let text = extensions.map { "\($0)\n" }.joined()
        guard FileManager.default.createFile(atPath: extensionFile, contents: Data(text.utf8)) else {
            throw .store("cannot write \(extensionFile): \(SystemErrno(errno))")
        }
        try openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key(name), "-out", request,
                     "-subj", "/CN=\(name)"])
        try openssl(["x509", "-req", "-in", request, "-CA", caCertificate, "-CAkey", caKey, "-CAcreateserial", "-days", String(days),
                     "-extfile", extensionFile, "-out", certificate(name)])
    }

    /// Runs openssl under umask 077, so the keys it writes are never readable by others,
    /// not even for a moment; its error output becomes the error.
    private func openssl(_ arguments: [String]) throws(FleetError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.openssl)
        process.arguments = arguments
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        let previous = umask(0o077)
        defer { _ = umask(previous) }
        do { try process.run() } catch { throw .usage("cannot run \(Self.openssl): \(SystemErrno.describe(error)) (install the openssl package)") }
        let said = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let reason = String(decoding: said, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw .store("openssl \(arguments.first ?? "") failed: \(reason)")
        }
    }
}
