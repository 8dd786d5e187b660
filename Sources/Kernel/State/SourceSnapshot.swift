import Compiler
import Foundation
import Glibc

/// The policy source as a generation was applied from it: every regular file under the
/// policy directory (symbolic links are not followed), by path relative to it, and one
/// SHA-256 over all of them, so `enforcer history` can say whether two generations came
/// from the same source and `sqlite3` can print a file as it was.
///
/// The digest covers, for each file in path order, its path, a NUL, its length in decimal, a
/// NUL and its bytes: a file renamed or moved between two files changes it.
public struct SourceSnapshot: Sendable {
    public var files: [(path: String, content: Data)]
    public var digest: String

    public init(directory: String) throws(StateError) {
        var found: [(String, Data)] = []
        func walk(_ relative: String) throws(StateError) {
            let absolute = relative.isEmpty ? directory : directory + "/" + relative
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: absolute) } catch {
                throw StateError(description: "cannot read \(absolute): \(SystemErrno.describe(error))")
            }
            for name in names.sorted() {
                let path = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard lstat(directory + "/" + path, &info) == 0 else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: try walk(path)
                case S_IFREG:
                    guard let data = FileManager.default.contents(atPath: directory + "/" + path) else {
                        throw StateError(description: "cannot read \(directory)/\(path): \(SystemErrno(errno))")
                    }
                    found.append((path, data))
                default: continue
                }
            }
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            self.init(files: [])
            return
        }
        try walk("")
        self.init(files: found.map { (path: $0.0, content: $0.1) })
    }

    /// The same files held in memory (a fleet's bundle as the store has it).
    public init(files: [(path: String, content: Data)]) {
        self.files = files.sorted { $0.path < $1.path }
        var hash = SHA256()
        for file in self.files {
            hash.update(Array(file.path.utf8) + [0] + Array(String(file.content.count).utf8) + [0])
            hash.update(file.content)
        }
        digest = hash.hex()
    }
}
