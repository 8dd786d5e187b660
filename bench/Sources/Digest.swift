import Compiler
import Foundation

/// `enforcer-bench digest [FILE]`: the speed of the SHA-256 that puts every applied policy
/// source on record (and names a fleet's chunks), beside coreutils' `sha256sum` of the same
/// file in the same run. Information for bench/README.md, not a goal of its own.
enum DigestBenchmark {
    static func main(_ arguments: [String]) -> Int32 {
        let path = arguments.dropFirst().first ?? "/tmp/enforcer-bench-policy/rules.d/10-systems.policy"
        guard let data = FileManager.default.contents(atPath: path) else {
            print("digest: cannot read \(path) (run enforcer-bench first to make the policy)")
            return 1
        }
        let bytes = [UInt8](data)
        var ours: [Double] = [], theirs: [Double] = []
        var digest = "", expected = ""
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            digest = SHA256.hex(bytes)
            ours.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
            process.arguments = [path]
            let pipe = Pipe()
            process.standardOutput = pipe
            let begin = DispatchTime.now().uptimeNanoseconds
            guard (try? process.run()) != nil else { print("digest: cannot run sha256sum"); return 1 }
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            theirs.append(Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9)
            expected = String(decoding: output.prefix(64), as: UTF8.self)
        }
        guard digest == expected else { print("digest: SHA256 gives \(digest), sha256sum \(expected)"); return 1 }
        let megabytes = Double(bytes.count) / 1_000_000
        let a = ours.sorted()[2], b = theirs.sorted()[2]
        print(String(format: "digest of %.1f MB (medians of 5): enforcer's SHA256 %.1f ms (%.0f MB/s), sha256sum %.1f ms with its process start (%.0f MB/s); ratio %.2fx",
                     megabytes, a * 1000, megabytes / a, b * 1000, megabytes / b, a / b))
        return 0
    }
}
