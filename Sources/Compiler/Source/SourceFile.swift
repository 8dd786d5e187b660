// Reading policy files and lists with plain system calls: a failure keeps its errno (which
// Foundation's readers turn into sentences without it), a file's size is known before any
// of it is read, and a file is read into one buffer of its size, not copied on the way.
// The module's only file system calls.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a file could not be read.
enum SourceFileFailure: Error, Equatable {
    /// `open`, `fstat` or `read` failed (a directory where a file belongs: EISDIR).
    case system(SystemErrno)
    /// A FIFO, a socket or a device: not a file with a size, so not a policy or a list.
    case notRegularFile(kind: String)
    /// Larger than the caller's limit: `size` bytes, or at least that many for a file that
    /// grew while it was read.
    case tooLarge(size: Int)

    /// What follows "cannot read PATH: ".
    var reason: String {
        switch self {
        case .system(let errno): errno.description
        case .notRegularFile(let kind): "it is \(kind), not a regular file"
        case .tooLarge(let size): "it is \(SourceLimits.text(bytes: size))"
        }
    }
}

/// What the file system says of a file that changes whenever its bytes may have: device,
/// inode, size, and the modification and change times to the nanosecond (the change time
/// cannot be set from user space, so even a rewrite that puts the modification time back
/// moves it). `settled`: both times were 50 ms older than the moment the file was opened,
/// so a write after the file was read cannot carry them (the kernel's file clock runs a
/// few milliseconds behind); only a settled stamp may stand for the bytes read.
public struct FileStamp: Sendable {
    var device: UInt64, inode: UInt64, size: Int64
    var modified: (Int, Int), changed: (Int, Int)
    public var settled: Bool

    public init(_ status: stat, openedAt now: timespec) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        size = Int64(status.st_size)
        modified = (Int(status.st_mtim.tv_sec), Int(status.st_mtim.tv_nsec))
        changed = (Int(status.st_ctim.tv_sec), Int(status.st_ctim.tv_nsec))
        func seconds(_ time: (Int, Int)) -> Double { Double(time.0) + Double(time.1) / 1e9 }
        let limit = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 - 0.05
        settled = seconds(modified) < limit && seconds(changed) < limit
    }

    /// The same file, unchanged since `self` was taken (settled).
    public func stillDescribes(_ now: FileStamp) -> Bool {
        settled && device == now.device && inode == now.inode && size == now.size
            && modified == now.modified && changed == now.changed
    }
}

/// An open regular file, closed when the value goes away.
struct SourceFile: ~Copyable {
    private let descriptor: Int32
    /// The size the file system gave when the file was opened.
    let size: Int
    /// Its stamp when it was opened.
    let stamp: FileStamp

    init(path: String) throws(SourceFileFailure) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        // Non-blocking, so that a FIFO without a writer is refused rather than waited on.
        descriptor = unsafe open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        if descriptor < 0 { throw .system(SystemErrno(errno)) }
        var status = stat()
        guard unsafe fstat(descriptor, &status) == 0 else {
            let failure = SystemErrno(errno)
            close(descriptor)
            throw .system(failure)
        }
        if let refused = Self.refusal(mode: status.st_mode) {
            close(descriptor)
            throw refused
        }
        size = Int(status.st_size)
        stamp = FileStamp(status, openedAt: now)
    }

    deinit { close(descriptor) }

    /// The size of the file at `path` from the file system, without opening it (the
    /// directory's total is added up before any file is read).
    static func size(of path: String) throws(SourceFileFailure) -> Int {
        var status = stat()
        guard unsafe stat(path, &status) == 0 else { throw .system(SystemErrno(errno)) }
        if let refused = refusal(mode: status.st_mode) { throw refused }
        return Int(status.st_size)
    }

    private static func refusal(mode: mode_t) -> SourceFileFailure? {
        switch mode & S_IFMT {
        case S_IFREG: nil
        case S_IFDIR: .system(SystemErrno(EISDIR))
        case S_IFIFO: .notRegularFile(kind: "a FIFO")
        case S_IFSOCK: .notRegularFile(kind: "a socket")
        case S_IFCHR, S_IFBLK: .notRegularFile(kind: "a device")
        default: .notRegularFile(kind: "a special file")
        }
    }

    /// The whole file, refused unread when the file system says it is over `limit`. The
    /// buffer is allocated once at the file's size; a file that grows meanwhile is read on
    /// to its end, or until it is over the limit.
    /// `reusing`: a buffer whose memory the bytes may go into (see `ParseCache.takeSpare(for:)`):
    /// the pages of a buffer that was used before are in place already, where a fresh one
    /// of tens of megabytes costs the kernel a page fault and a cleared page per 4 KiB.
    func readAll(limit: Int, reusing spare: consuming [UInt8]? = nil) throws(SourceFileFailure) -> [UInt8] {
        if size > limit { throw .tooLarge(size: size) }
        var failure: SystemErrno?
        let descriptor = descriptor
        // One byte more than the size, to see a file that grew without a second read.
        func fill(_ buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
            var initialized = 0
            while initialized < buffer.count {
                let count = unsafe read(descriptor, buffer.baseAddress! + initialized, buffer.count - initialized)
                if count > 0 { initialized += count; continue }
                if count == 0 { break }
                if errno == EINTR { continue }
                failure = SystemErrno(errno)
                break
            }
            return initialized
        }
        var bytes: [UInt8]
        // Taken out of the parameter, so that it is the buffer's only owner and is changed in place.
        if var spare = spare.take(), spare.capacity > size {
            // Brought to the length the read fills, without writing its old bytes over first.
            if spare.count > size + 1 { spare.removeLast(spare.count - size - 1) } else { spare.append(contentsOf: repeatElement(0, count: size + 1 - spare.count)) }
            let initialized = unsafe spare.withUnsafeMutableBufferPointer { unsafe fill($0) }
            spare.removeLast(size + 1 - initialized)
            bytes = spare
        } else {
            bytes = unsafe [UInt8](unsafeUninitializedCapacity: size + 1) { buffer, initialized in initialized = unsafe fill(buffer) }
        }
        if let failure { throw .system(failure) }
        guard bytes.count > size else { return bytes }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if bytes.count > limit { throw .tooLarge(size: bytes.count) }
            let count: Int
            do { count = try readChunk(into: &chunk) } catch { throw .system(error) }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }

    /// Fills the front of `buffer`; returns how many bytes were read, 0 at the end.
    func readChunk(into buffer: inout [UInt8]) throws(SystemErrno) -> Int {
        while true {
            let count = unsafe read(descriptor, &buffer, buffer.count)  // writes at most buffer.count bytes
            if count >= 0 { return count }
            if errno != EINTR { throw SystemErrno(errno) }
        }
    }
}

extension Span<UInt8> {
    /// The first line longer than `limit` bytes (without its newline): its number from 1,
    /// where it starts and how long it is; nil when every line fits.
    func firstLine(longerThan limit: Int) -> (number: Int, start: Int, length: Int)? {
        var number = 1, start = 0
        for index in indices where self[index] == UInt8(ascii: "\n") {
            if index - start > limit { return (number, start, index - start) }
            number += 1
            start = index + 1
        }
        return count - start > limit ? (number, start, count - start) : nil
    }
}
