// swift-tools-version:6.0
// libFuzzer harness for the NFQueue parsers and flow inspector, kept out of the main
// package so its sanitizer flags never touch the normal build. Build and run: fuzz/run.sh.
import PackageDescription

let package = Package(
    name: "enforcer-fuzz",
    dependencies: [
        // The repository root; its identity is the directory name ("main" here), so the
        // products are named through the path-derived identity below.
        .package(path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "NFQueueFuzz",
            dependencies: [
                .product(name: "NFQueue", package: rootPackageIdentity),
                .product(name: "Compiler", package: rootPackageIdentity),
            ]
        ),
    ]
)

/// SwiftPM names a path dependency after its directory, not its manifest's `name:`.
var rootPackageIdentity: String {
    let path = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "main"
    return path.lowercased()
}
