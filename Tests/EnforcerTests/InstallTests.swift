import Foundation
import Testing

/// `make install` into a staging root (DESTDIR): what lands where, a binary that runs with
/// the Swift toolchain out of sight, a man page `man` renders, and `make uninstall` taking
/// back what install added and nothing else. `make test` builds the release first, so the
/// install here copies and generates only.
@Suite(.serialized)
struct InstallTests {
    static let prefix = "/usr/local"

    static func make(_ arguments: [String]) throws -> CommandResult {
        try run("/usr/bin/make", ["--no-print-directory", "-C", Paths.packageRoot.path, "SKIP_BUILD=1"] + arguments)
    }

    static let installed = [
        "usr/local/bin/enforcer",
        "usr/local/share/man/man8/enforcer.8",
        "usr/local/share/bash-completion/completions/enforcer",
        "usr/local/share/zsh/site-functions/_enforcer",
        "usr/local/share/fish/vendor_completions.d/enforcer.fish",
        "usr/local/lib/systemd/system/enforcer.service",
        "etc/enforcer/enforcer.conf",
    ]

    /// Every file and directory under `root`, relative to it.
    static func tree(_ root: String) -> Set<String> {
        Set(FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? [])
    }

    @Test("make install puts the binary, man page, completions, unit and a default configuration in DESTDIR; uninstall removes them and nothing else")
    func installAndUninstall() throws {
        let root = NSTemporaryDirectory() + "enforcer-install-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Something of somebody else's in the same directories, which uninstall must leave.
        try FileManager.default.createDirectory(atPath: root + "/usr/local/bin", withIntermediateDirectories: true)
        try "#!/bin/sh\n".write(toFile: root + "/usr/local/bin/other-tool", atomically: true, encoding: .utf8)
        let before = Self.tree(root)
        try #require(FileManager.default.isExecutableFile(atPath: Paths.packageRoot.path + "/.build/release/enforcer"),
                     "make test builds the release binary first (make release)")

        let installed = try Self.make(["install", "DESTDIR=\(root)", "PREFIX=\(Self.prefix)"])
        try #require(installed.status == 0, "\(installed.stdout)\(installed.stderr)")
        for path in Self.installed {
            #expect(FileManager.default.fileExists(atPath: root + "/" + path), "\(path) not installed")
        }
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: root + "/etc/enforcer/rules.d", isDirectory: &isDirectory) && isDirectory.boolValue)

        // The unit starts the binary where this PREFIX put it.
        let unit = try String(contentsOfFile: root + "/usr/local/lib/systemd/system/enforcer.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=/usr/local/bin/enforcer run --dir /etc/enforcer\n"), "\(unit)")
        #expect(unit.contains("\nType=notify\n"))

        // The binary needs no Swift runtime from the toolchain: none linked, and it runs with
        // LD_LIBRARY_PATH cleared and /opt/swift hidden under an empty mount.
        let binary = root + "/usr/local/bin/enforcer"
        let linked = try run("/usr/bin/ldd", [binary])
        #expect(!linked.stdout.contains("libswift") && !linked.stdout.contains("/opt/swift") && !linked.stdout.contains("libFoundation"), "\(linked.stdout)")
        let hidden = try run("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", """
            mount -t tmpfs none /opt/swift && test ! -e /opt/swift/usr/bin/swift && \
            env -u LD_LIBRARY_PATH PATH=/usr/sbin:/usr/bin:/sbin:/bin "$0" --version && \
            env -u LD_LIBRARY_PATH PATH=/usr/sbin:/usr/bin:/sbin:/bin "$0" check --dir "$1"
            """, binary, Paths.example("enclave")])
        #expect(hidden.status == 0, "\(hidden.stdout)\(hidden.stderr)")
        let revision = try run("/usr/bin/git", ["-C", Paths.packageRoot.path, "rev-parse", "--short=12", "HEAD"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(hidden.stdout.hasPrefix("enforcer 0.") && hidden.stdout.contains("(git \(revision)"), "\(hidden.stdout)")
        #expect(hidden.stdout.contains("enclave: ok") || hidden.stdout.contains("ok"), "\(hidden.stdout)")

        // man renders the page: the commands from their definitions, the hand-written sections.
        let page = try run("/usr/bin/man", ["-l", root + "/usr/local/share/man/man8/enforcer.8"], environment: ["MANPAGER": "cat", "MANWIDTH": "100", "MAN_KEEP_FORMATTING": ""])
        #expect(page.status == 0, "\(page.stderr)")
        for text in ["ENFORCER(8)", "NAME", "enforcer - Compile who-may-reach-what", "enforcer apply", "--dry-run", "enforcer fleet key create",
                     "EXIT STATUS", "FILES", "/etc/enforcer/rules.d/*.policy", "EXAMPLES", "enforcer apply --confirm 2m"] {
            #expect(page.stdout.contains(text), "the man page lacks '\(text)'")
        }
        #expect(!page.stderr.contains("warning"), "\(page.stderr)")
        let bash = try run("/bin/bash", ["-n", root + "/usr/local/share/bash-completion/completions/enforcer"])
        #expect(bash.status == 0, "\(bash.stderr)")
        let completes = try run("/bin/bash", ["-c", "source \"$0\" && complete -p enforcer", root + "/usr/local/share/bash-completion/completions/enforcer"])
        #expect(completes.stdout.contains("enforcer"), "\(completes.stdout)\(completes.stderr)")

        // A second install keeps the operator's configuration.
        try "[log]\nlevel = \"debug\"\n".write(toFile: root + "/etc/enforcer/enforcer.conf", atomically: true, encoding: .utf8)
        try "[system] mine: {\n    address: 10.0.0.1\n}\n".write(toFile: root + "/etc/enforcer/rules.d/10-mine.policy", atomically: true, encoding: .utf8)
        let again = try Self.make(["install", "DESTDIR=\(root)", "PREFIX=\(Self.prefix)"])
        #expect(again.status == 0 && again.stdout.contains("kept /etc/enforcer/enforcer.conf"), "\(again.stdout)\(again.stderr)")
        #expect(try String(contentsOfFile: root + "/etc/enforcer/enforcer.conf", encoding: .utf8).contains("debug"))

        // Uninstall: what install added goes; the changed configuration, the policy and the
        // other tool stay.
        let removed = try Self.make(["uninstall", "DESTDIR=\(root)", "PREFIX=\(Self.prefix)"])
        #expect(removed.status == 0, "\(removed.stdout)\(removed.stderr)")
        let after = Self.tree(root)
        let left = after.subtracting(before).filter { !["usr/local/share", "usr/local/lib", "usr/local/lib/systemd", "etc"].contains($0) }
        #expect(left == ["etc/enforcer", "etc/enforcer/enforcer.conf", "etc/enforcer/rules.d", "etc/enforcer/rules.d/10-mine.policy"], "\(left.sorted())")
        #expect(before.isSubset(of: after), "uninstall removed something it did not install")
        #expect(!FileManager.default.fileExists(atPath: root + "/usr/local/bin/enforcer"))
    }
}
