import Foundation
import PackagePlugin

/// Gives the `enforcer` executable the git revision it was built from, for `enforcer
/// --version`: before each build, a shell writes `Revision.swift` (`let gitRevision = "…"`)
/// into the plugin's work directory, rewriting it only when the revision changed so that an
/// unchanged tree rebuilds nothing. Built outside a git checkout (a source tarball), the
/// revision reads "unknown".
@main
struct RevisionStamp: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "Revision")
        let script = """
            revision=$(git -C "$1" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
            mkdir -p "$2"
            text="let gitRevision = \\"$revision\\""
            [ "$(cat "$2/Revision.swift" 2>/dev/null)" = "$text" ] || printf '%s\\n' "$text" > "$2/Revision.swift"
            """
        return [.prebuildCommand(displayName: "git revision of enforcer", executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: ["-c", script, "sh", context.package.directoryURL.path, output.path],
                                 outputFilesDirectory: output)]
    }
}
