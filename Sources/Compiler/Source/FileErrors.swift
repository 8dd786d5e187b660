import Foundation

/// An errno in the words an operator reads and can search for: the C library's text and
/// the constant's name, `Permission denied (EACCES)`. Every file failure (policy files,
/// lists, the state directory) is told this way, after the path, rather than in
/// Foundation's sentences, which leave out both the path and the errno.
public struct SystemErrno: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Int32

    public init(_ code: Int32) { self.code = code }

    /// The errno behind an error thrown by a system call wrapper or by Foundation's file
    /// calls (`Data(contentsOf:)`, `write(to:)`, `FileManager`), which keep it as the
    /// underlying error of their own; nil when the error carries none (a JSON error).
    public init?(_ error: any Error) {
        if let known = error as? SystemErrno { self = known; return }
        if let posix = error as? POSIXError { self.init(posix.code.rawValue); return }
        let bridged = error as NSError
        if bridged.domain == NSPOSIXErrorDomain { self.init(Int32(truncatingIfNeeded: bridged.code)); return }
        if let underlying = bridged.userInfo[NSUnderlyingErrorKey] as? any Error, let found = SystemErrno(underlying) {
            self = found
            return
        }
        // A file error made without one: its code says which errno Foundation made it from.
        guard bridged.domain == NSCocoaErrorDomain, let code = Self.byCocoaCode[bridged.code] else { return nil }
        self.init(code)
    }

    /// The constant's name, `EACCES`; `errno 200` for one this table does not know.
    public var name: String { Self.names[code] ?? "errno \(code)" }

    /// The C library's text, `Permission denied`.
    public var text: String { unsafe String(cString: strerror(code)) }

    public var description: String { "\(text) (\(name))" }

    /// Why `error` happened, to put after "cannot read PATH: ": the errno in words when it
    /// carries one, else what it says itself.
    public static func describe(_ error: any Error) -> String {
        if let errno = SystemErrno(error) { return errno.description }
        if let decoding = error as? DecodingError {
            switch decoding {
            case .dataCorrupted(let context), .keyNotFound(_, let context), .typeMismatch(_, let context), .valueNotFound(_, let context):
                return "unreadable content: \(context.debugDescription)"
            @unknown default:
                return "unreadable content"
            }
        }
        // Foundation's own errors describe themselves in their localized text; a Swift
        // error in its description.
        if type(of: error) is NSError.Type || error is CocoaError { return error.localizedDescription }
        return String(describing: error)
    }

    /// The errnos a file operation can end in, by the names their constants have (Linux's
    /// aliases, such as ENOTSUP for EOPNOTSUPP, share a number and appear once).
    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO", EBADF: "EBADF",
        EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY",
        EEXIST: "EEXIST", EXDEV: "EXDEV", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
        EINVAL: "EINVAL", ENFILE: "ENFILE", EMFILE: "EMFILE", ETXTBSY: "ETXTBSY", EFBIG: "EFBIG",
        ENOSPC: "ENOSPC", ESPIPE: "ESPIPE", EROFS: "EROFS", EMLINK: "EMLINK", EPIPE: "EPIPE",
        ENAMETOOLONG: "ENAMETOOLONG", ENOLCK: "ENOLCK", ENOSYS: "ENOSYS", ENOTEMPTY: "ENOTEMPTY",
        ELOOP: "ELOOP", EOVERFLOW: "EOVERFLOW", EOPNOTSUPP: "EOPNOTSUPP", ESTALE: "ESTALE",
        EDQUOT: "EDQUOT", ECANCELED: "ECANCELED",
    ]

    /// Foundation's file error codes, by the errno it makes each of (its own mapping read
    /// backwards; where two errnos share a code, the usual one).
    private static let byCocoaCode: [Int: Int32] = [
        CocoaError.Code.fileNoSuchFile.rawValue: ENOENT,
        CocoaError.Code.fileReadNoSuchFile.rawValue: ENOENT,
        CocoaError.Code.fileReadNoPermission.rawValue: EACCES,
        CocoaError.Code.fileWriteNoPermission.rawValue: EACCES,
        CocoaError.Code.fileReadInvalidFileName.rawValue: ENAMETOOLONG,
        CocoaError.Code.fileWriteInvalidFileName.rawValue: ENAMETOOLONG,
        CocoaError.Code.fileReadTooLarge.rawValue: EFBIG,
        CocoaError.Code.fileWriteOutOfSpace.rawValue: ENOSPC,
        CocoaError.Code.fileWriteVolumeReadOnly.rawValue: EROFS,
        CocoaError.Code.fileWriteFileExists.rawValue: EEXIST,
    ]
}
