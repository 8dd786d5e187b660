import Foundation
import Glibc

extension GenerationStore {
    /// Copies a policy directory into the state directory as root's alone: the copy keeps
    /// the files' contents but not their modes (a 0644 policy file becomes 0600, a
    /// directory 0700), like everything else in the state directory.
    static func copyPrivately(from source: String, to destination: String) throws {
        let fm = FileManager.default
        try fm.copyItem(atPath: source, toPath: destination)
        var paths = [destination]
        if let enumerator = fm.enumerator(atPath: destination) {
            while let relative = enumerator.nextObject() as? String { paths.append(destination + "/" + relative) }
        }
        for path in paths {
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT != S_IFLNK else { continue }
            _ = chmod(path, info.st_mode & S_IFMT == S_IFDIR ? 0o700 : 0o600)
        }
    }
}
