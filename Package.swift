// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "enforcer",
    products: [
        .executable(name: "enforcer", targets: ["Enforcer"]),
        .library(name: "Compiler", targets: ["Compiler"]),
        .library(name: "NFQueue", targets: ["NFQueue"]),
        .library(name: "Kernel", targets: ["Kernel"]),
        .library(name: "Enforcement", targets: ["Enforcement"]),
        .library(name: "Etcd", targets: ["Etcd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The state directory's record (generations, history) in SQLite: WAL, migrations,
        // typed rows, over the system's libsqlite3.
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // The fleet's policy store: etcd's HTTP/JSON gateway (streamed watches, TLS with client
        // certificates) over SwiftNIO, without a gRPC stack or generated code.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Named only because SwiftPM lets a target use products of the packages listed here:
        // the same versions async-http-client brings, nothing more to fetch or build.
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        // The daemon's metrics endpoint: swift-prometheus's registry writes the exposition
        // text (label values escaped); swift-metrics is the API it implements.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // One system-library module per C library; only the small wrapper file next to
        // each use site touches their pointers.
        .systemLibrary(name: "CNFTables", pkgConfig: "libnftnl",
                       providers: [.apt(["libnftnl-dev", "libmnl-dev"])]),
        .systemLibrary(name: "CNetfilterQueue", pkgConfig: "libnetfilter_queue",
                       providers: [.apt(["libnetfilter-queue-dev"])]),
        .systemLibrary(name: "CPCRE2", pkgConfig: "libpcre2-8",
                       providers: [.apt(["libpcre2-dev"])]),
        // SHA-256 of the policy source, with the processor's SHA instructions.
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        // libc's timerfd and signalfd, which the Glibc module leaves out (no library to link).
        .systemLibrary(name: "CLinux"),

        .target(name: "Compiler", dependencies: ["CPCRE2", "CCrypto"]),
        .target(name: "NFQueue", dependencies: ["Compiler", "CNetfilterQueue"]),
        // The ruleset model into the kernel: libnftnl messages, one netlink batch per change;
        // and the record of what was applied (the state database).
        .target(name: "Kernel", dependencies: ["Compiler", "CNFTables", .product(name: "GRDB", package: "GRDB.swift")]),
        // The application layer: policy source → checked plan → applied generation, written
        // once for the command line and the daemon (its event loop, sources and portal).
        // The fleet's store (Enforcement/Fleet) is etcd through the Etcd target.
        .target(name: "Enforcement", dependencies: ["Compiler", "NFQueue", "Kernel", "Etcd", "CLinux",
                                                   .product(name: "Prometheus", package: "swift-prometheus"),
                                                   // Brought by swift-prometheus; named so its version is this package's choice too.
                                                   .product(name: "CoreMetrics", package: "swift-metrics")]),
        // The command line only: parse flags, call Enforcement, print.
        .executableTarget(name: "Enforcer", dependencies: [
            "Compiler", "Enforcement", "Etcd",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], plugins: ["RevisionStamp"]),
        // `enforcer --version` names the git revision it was built from.
        .plugin(name: "RevisionStamp", capability: .buildTool()),
        // An etcd v3 client, a bottom layer: it imports none of enforcer's targets.
        .target(name: "Etcd", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // `enforcer-bench fleet` runs simulated agents on the fleet's own store code and etcd client.
        .executableTarget(name: "enforcer-bench", dependencies: ["Compiler", "NFQueue", "Kernel", "Enforcement", "Etcd"], path: "bench/Sources"),

        .testTarget(name: "CompilerTests", dependencies: ["Compiler", "CPCRE2"],
                    resources: [.copy("Fixtures")]),
        // Every module a test target imports is named here, so that a change to it rebuilds the tests.
        .testTarget(name: "NFQueueTests", dependencies: ["NFQueue", "Compiler"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "KernelTests", dependencies: ["Kernel", "Compiler", "CNFTables", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "EnforcementTests", dependencies: ["Compiler", "Enforcement", "NFQueue", "Kernel", "Etcd"]),
        .testTarget(name: "EnforcerTests", dependencies: ["Compiler", "Enforcer"]),
        .testTarget(name: "EtcdTests", dependencies: [
            "Etcd",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
    ]
)
