import Compiler
import Foundation

/// `overrides.json` in the state directory: what `enforcer policy enable|disable` and
/// `enforcer trust grant|revoke` changed. Instants are written with milliseconds: a
/// deadline must not be cut short by rounding to the second.
public struct OverridesFile: Sendable {
    public let directory: String
    public var path: String { directory + "/overrides.json" }

    /// What is recorded (nothing when the file is missing or unreadable).
    public func read() -> RuntimeOverrides {
        guard let data = FileManager.default.contents(atPath: path),
              let overrides = try? StateJSON.decoder().decode(RuntimeOverrides.self, from: data) else { return RuntimeOverrides() }
        return overrides
    }

    public func write(_ overrides: RuntimeOverrides) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try StateJSON.encoder(precision: .milliseconds).encode(overrides).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
