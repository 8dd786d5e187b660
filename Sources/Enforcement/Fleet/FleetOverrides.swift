import Compiler
import Etcd
import Foundation

/// The fleet's runtime overrides in the store: `policy enable|disable` and `trust
/// grant|revoke` given `--store` write one key each, under `desired/overrides/` (which only
/// the fleet's administrators may write):
///
///     desired/overrides/policy/NAME                  {"enabled": …, "from": …, "until": …}
///     desired/overrides/trust/SYSTEM/REQUIREMENT     {"granted": …, "until": …}
///
/// One key per override, so two administrators changing two overrides never race. Names are
/// free text (a quoted name may hold a `/`), so `%` and `/` in them are written `%25` and
/// `%2F`. Every agent watches `desired/`; what it holds here replaces the overrides file in its
/// state directory, so the daemon plans with them exactly as with overrides made on the host,
/// and a trust revoke cuts that sender's connections on every receiver at once.
public struct FleetOverrides: Sendable, Equatable {
    public private(set) var overrides = RuntimeOverrides()

    public init() {}

    public static func prefix(_ layout: FleetLayout) -> String { layout.desiredPrefix + "overrides/" }

    public static func key(policy name: String, layout: FleetLayout) -> String {
        prefix(layout) + "policy/" + escaped(name)
    }

    public static func key(system: String, requirement: String, layout: FleetLayout) -> String {
        prefix(layout) + "trust/" + escaped(system) + "/" + escaped(requirement)
    }

    static func escaped(_ name: String) -> String {
        name.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "/", with: "%2F")
    }

    static func unescaped(_ part: Substring) -> String {
        part.replacingOccurrences(of: "%2F", with: "/").replacingOccurrences(of: "%25", with: "%")
    }

    /// A put or delete of a key under `desired/overrides/`; other keys are ignored. Returns
    /// whether the key was one of these. A value that does not decode counts as no override
    /// (an agent never acts on half of one).
    @discardableResult
    public mutating func take(key: String, value: Data?, layout: FleetLayout) -> Bool {
        let prefix = Self.prefix(layout)
        guard key.hasPrefix(prefix) else { return false }
        let parts = key.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        switch (parts.first, parts.count) {
        case ("policy", 2):
            overrides.policies[Self.unescaped(parts[1])] = value.flatMap { try? Self.decoder.decode(EnabledOverride.self, from: $0) }
        case ("trust", 3):
            let system = Self.unescaped(parts[1]), requirement = Self.unescaped(parts[2])
            var records = overrides.trust[system] ?? [:]
            records[requirement] = value.flatMap { try? Self.decoder.decode(TrustRecord.self, from: $0) }
            overrides.trust[system] = records.isEmpty ? nil : records
        default:
            break
        }
        return true
    }

    /// ISO 8601 times, so that `etcdctl get` shows when a grant runs out.
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

/// Every key under `desired/` read at one revision, sorted by what it is: the pushed bundle,
/// the runtime overrides, the enrolled systems. The agent's start and its fresh reads, and the
/// override commands' checks, all read `desired/` so.
struct DesiredKeys {
    var pushed: KeyValue?
    var enrolled = EnrolledSystems()
    var overrides = FleetOverrides()

    init(_ kvs: [KeyValue], layout: FleetLayout) {
        for kv in kvs {
            if kv.keyString == layout.pushKey {
                pushed = kv
            } else if !overrides.take(key: kv.keyString, value: kv.value, layout: layout) {
                enrolled.take(key: kv.keyString, value: kv.value, layout: layout)
            }
        }
    }
}

/// `policy enable|disable --store` and `trust grant|revoke --store`: checked against what
/// the store holds (the pushed policy, the enrolled systems), then written as one key.
extension FleetAdmin {
    /// Switches policy `name` on or off in the whole fleet; returns the lines to print.
    public func override(policy name: String, _ make: (Date) -> EnabledOverride) throws -> [String] {
        let known = try storePolicy()
        guard known.policies.contains(name) else {
            throw EnforcementError.notFound("no policy named '\(name)' in fleet \(store.layout.fleet)'s policy (policies: \(known.policies.sorted().map { "'\($0)'" }.joined(separator: ", ")))")
        }
        let change = make(Date())
        let revision = try write(FleetOverrides.key(policy: name, layout: store.layout), change)
        return ["\(change.summary(of: name)) in fleet \(store.layout.fleet) (store revision \(revision)); every agent applies it as it sees it"]
    }

    /// Records in the whole fleet whether `system` meets `requirement`; returns the lines to print.
    public func trust(_ system: String, _ requirement: String, _ make: (Date) -> TrustRecord) throws -> [String] {
        let known = try storePolicy()
        guard known.systems.contains(system) else {
            throw EnforcementError.notFound("no system named '\(system)' in fleet \(store.layout.fleet) (neither in its policy nor enrolled)")
        }
        let change = make(Date())
        let revision = try write(FleetOverrides.key(system: system, requirement: requirement, layout: store.layout), change)
        let what = change.summary
        let needing = known.trust[requirement].map { " (required by \($0.sorted().map { "'\($0)'" }.joined(separator: ", ")))" } ?? " (no policy requires it)"
        return ["\(system) \(requirement): \(what)\(needing) in fleet \(store.layout.fleet) (store revision \(revision))"]
    }

    /// The fleet's trust records, a line each.
    public func trustRecords(at instant: Date) throws -> [String] {
        let store = store
        let response = try waitFor { try await store.client.range(.prefix(FleetOverrides.prefix(store.layout))) }
        var held = FleetOverrides()
        for kv in response.kvs { held.take(key: kv.keyString, value: kv.value, layout: store.layout) }
        let lines = held.overrides.trustLines(at: instant)
        return lines.isEmpty ? ["no trust records in fleet \(store.layout.fleet)"] : lines
    }

    private func write(_ key: String, _ value: some Encodable) throws -> Int64 {
        let data: Data
        do { data = try FleetOverrides.encoder.encode(value) } catch { throw FleetError.store("cannot encode the override: \(error)") }
        let store = store
        return try waitFor { try await store.client.put(key, data).header.revision }
    }

    /// The names an override may name: the pushed policy's policies and systems, the enrolled
    /// systems, and which policies need which trust requirement.
    private func storePolicy() throws -> (policies: Set<String>, systems: Set<String>, trust: [String: Set<String>]) {
        let store = store
        let response = try waitFor { try await store.client.range(.prefix(store.layout.desiredPrefix)) }
        let desired = DesiredKeys(response.kvs, layout: store.layout)
        guard let pushed = desired.pushed else { throw FleetError.store("fleet \(store.layout.fleet) has no policy yet: push one with `enforcer fleet push`") }
        let files = try waitFor { try await store.files(of: try await store.resolve(pushed.value).bundle).files }
        let directory = NSTemporaryDirectory() + "enforcer-fleet-override-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for file in files {
            let path = directory + "/" + file.path
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try file.content.write(to: URL(fileURLWithPath: path))
        }
        guard let policy = PolicyLoader.load(directory: directory).policySet else {
            throw FleetError.store("fleet \(store.layout.fleet)'s policy at revision \(pushed.modRevision) does not load; fix it with a push first")
        }
        var trust: [String: Set<String>] = [:]
        for each in policy.policies { for requirement in each.trust { trust[requirement, default: []].insert(each.name) } }
        let enrolledNames = Set(desired.enrolled.members.values.map(\.name))
        return (Set(policy.policies.map(\.name)), Set(policy.systems.map(\.name)).union(enrolledNames), trust)
    }
}
