import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

// The errors of the layers beneath (AsyncHTTPClient, NIO's sockets, NIOSSL) sorted into
// `EtcdError` kinds, in words: "connection refused", not `NIOConnectionError(...)`.
extension EtcdGatewayClient {
    /// The `EtcdError` for a request to `endpoint` that failed below HTTP.
    static func transportError(_ error: any Error, endpoint: String, timeout: Duration? = nil) -> EtcdError {
        if let error = error as? EtcdError { return error }
        if error is CancellationError { return EtcdError(.cancelled, "the call was cancelled", endpoint: endpoint) }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                let limit = timeout.map { " within \($0)" } ?? ""
                return EtcdError(.timeout, "no answer\(limit)", endpoint: endpoint)
            case .connectTimeout, .getConnectionFromPoolTimeout:
                return EtcdError(.connection, "connecting timed out", endpoint: endpoint)
            case .tlsHandshakeTimeout:
                return EtcdError(.tls, "the TLS handshake timed out", endpoint: endpoint)
            case .remoteConnectionClosed:
                return EtcdError(.connection, "etcd closed the connection", endpoint: endpoint)
            case .cancelled:
                return EtcdError(.cancelled, "the call was cancelled", endpoint: endpoint)
            case .alreadyShutdown:
                return EtcdError(.configuration, "the client has been shut down", endpoint: endpoint)
            default:
                return EtcdError(.connection, error.shortDescription, endpoint: endpoint)
            }
        }
        if let error = error as? NIOConnectionError {
            let reasons = error.connectionErrors.map { plainWords($0.error) }
            let reason = (error.dnsAError ?? error.dnsAAAAError).map { "cannot resolve \(error.host): \($0)" }
                ?? (reasons.isEmpty ? "cannot connect" : Array(Set(reasons)).sorted().joined(separator: "; "))
            return EtcdError(.connection, reason, endpoint: endpoint)
        }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return EtcdError(.connection, "connecting timed out", endpoint: endpoint)
        }
        if let error = error as? NIOSSLError {
            if case .uncleanShutdown = error {
                return EtcdError(.tls, "the server closed the TLS connection abruptly (did it refuse this client's certificate?)", endpoint: endpoint)
            }
            return EtcdError(.tls, tlsReason(error), endpoint: endpoint)
        }
        // With TLS 1.3 the server judges the client's certificate after the handshake, so its
        // refusal comes as an alert on the first read.
        if let error = error as? BoringSSLError {
            return EtcdError(.tls, tlsReason(error), endpoint: endpoint)
        }
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return EtcdError(.tls, "the server's certificate does not name the host of \(endpoint)", endpoint: endpoint)
        }
        if error is HTTPParserError {
            return EtcdError(.connection, "the connection broke in the middle of the answer", endpoint: endpoint)
        }
        return EtcdError(.connection, plainWords(error), endpoint: endpoint)
    }

    /// The request cannot have reached etcd: no connection was made. Such a request may go to
    /// the next endpoint whatever it does.
    static func neverSent(_ error: any Error) -> Bool {
        switch error {
        case is NIOConnectionError: return true
        case let error as ChannelError: if case .connectTimeout = error { return true } else { return false }
        case let error as HTTPClientError: return error == .connectTimeout || error == .getConnectionFromPoolTimeout
        case let error as IOError: return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(error.errnoCode)
        default: return false
        }
    }

    /// A system error as the system words it ("Connection refused"), else the error's own text.
    private static func plainWords(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if let error = error as? ChannelError, case .connectTimeout = error { return "connecting timed out" }
        return String(describing: error)
    }

    /// BoringSSL's reasons for a failed handshake, the common ones said plainly, with
    /// BoringSSL's own names for them (its full text holds source paths and numbers).
    private static func tlsReason(_ error: any Error) -> String {
        let detail = String(describing: error)
        let names = detail.matches(of: /[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+/).map { String($0.output) }
        let known: [(String, String)] = [
            ("CERTIFICATE_VERIFY_FAILED", "the server's certificate is not signed by a trusted CA (or has expired)"),
            ("CERTIFICATE_REQUIRED", "the server requires a client certificate, and none was given"),
            ("UNKNOWN_CA", "the server does not trust the CA of this client's certificate"),
            ("BAD_CERTIFICATE", "the server refused this client's certificate, or its lack of one"),
            ("WRONG_VERSION_NUMBER", "the server does not speak TLS (is it an http:// endpoint?)"),
        ]
        guard let (_, plain) = known.first(where: { known in names.contains { $0.hasSuffix(known.0) } }) else { return detail }
        return "\(plain) (\(Array(Set(names)).sorted().joined(separator: ", ")))"
    }
}
