import Foundation
import Testing
@testable import Compiler

/// File failures are told as "strerror text (ENAME)", whichever call failed: a system call,
/// or Foundation's readers and writers, which keep the errno inside errors of their own.
struct FileErrorTests {
    @Test(arguments: [
        (EACCES, "Permission denied (EACCES)"),
        (EPERM, "Operation not permitted (EPERM)"),
        (ENOENT, "No such file or directory (ENOENT)"),
        (ENOSPC, "No space left on device (ENOSPC)"),
        (EISDIR, "Is a directory (EISDIR)"),
        (ENOTDIR, "Not a directory (ENOTDIR)"),
        (EROFS, "Read-only file system (EROFS)"),
        (EDQUOT, "Disk quota exceeded (EDQUOT)"),
        (ELOOP, "Too many levels of symbolic links (ELOOP)"),
        (EIO, "Input/output error (EIO)"),
        (EMFILE, "Too many open files (EMFILE)"),
        (ENAMETOOLONG, "File name too long (ENAMETOOLONG)"),
        (4000, "Unknown error 4000 (errno 4000)"),
    ] as [(Int32, String)])
    func errnoInWords(code: Int32, words: String) {
        #expect(SystemErrno(code).description == words)
    }

    /// Errors as Foundation and the standard library build them: the errno found directly, as
    /// the underlying error, or from the file error code Foundation made from it.
    @Test(arguments: [
        ("a POSIXError", POSIXError(.EACCES), EACCES),
        ("an NSError in the POSIX domain", NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC)), ENOSPC),
        ("a CocoaError over a POSIX NSError", CocoaError(.fileWriteUnknown, userInfo: [NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(EROFS))]), EROFS),
        ("a CocoaError over a POSIXError", CocoaError(.fileReadUnknown, userInfo: [NSUnderlyingErrorKey: POSIXError(.ELOOP)]), ELOOP),
        ("a CocoaError read without permission", CocoaError(.fileReadNoPermission), EACCES),
        ("a CocoaError write without permission", CocoaError(.fileWriteNoPermission), EACCES),
        ("a CocoaError out of space", CocoaError(.fileWriteOutOfSpace), ENOSPC),
        ("a CocoaError no such file", CocoaError(.fileReadNoSuchFile), ENOENT),
        ("a CocoaError on a read-only volume", CocoaError(.fileWriteVolumeReadOnly), EROFS),
        ("an errno already", SystemErrno(EISDIR), EISDIR),
    ] as [(String, any Error, Int32)])
    func errnoOfAThrownError(label: String, error: any Error, code: Int32) {
        #expect(SystemErrno(error)?.code == code, "\(label)")
        #expect(SystemErrno.describe(error) == SystemErrno(code).description, "\(label)")
    }

    /// What Foundation's file calls really throw on this system.
    @Test func errnoOfFoundationsOwnFailures() throws {
        let directory = NSTemporaryDirectory() + "enforcer-errno-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func code(_ work: () throws -> Void) -> Int32? {
            do { try work() } catch { return SystemErrno(error)?.code }
            return nil
        }
        #expect(code { _ = try Data(contentsOf: URL(fileURLWithPath: directory + "/missing")) } == ENOENT)
        #expect(code { _ = try String(contentsOfFile: directory + "/missing", encoding: .utf8) } == ENOENT)
        #expect(code { _ = try Data(contentsOf: URL(fileURLWithPath: directory)) } == EISDIR)
        #expect(code { try Data([1]).write(to: URL(fileURLWithPath: "/dev/full")) } == ENOSPC)
        #expect(code { try Data([1]).write(to: URL(fileURLWithPath: directory + "/no/such/dir/file")) } == ENOENT)
        try Data().write(to: URL(fileURLWithPath: directory + "/file"))
        #expect(code { try FileManager.default.createDirectory(atPath: directory + "/file/sub", withIntermediateDirectories: false) } == ENOTDIR)
    }

    @Test func errorsWithoutAnErrnoKeepTheirOwnWords() {
        struct Refusal: Error, CustomStringConvertible { var description: String { "refused for a reason" } }
        #expect(SystemErrno(Refusal()) == nil)
        #expect(SystemErrno.describe(Refusal()) == "refused for a reason")
        let decoding = #expect(throws: DecodingError.self) { try JSONDecoder().decode([Int].self, from: Data("{".utf8)) }
        #expect(decoding.map { SystemErrno.describe($0).hasPrefix("unreadable content: ") } == true)
    }
}
