import Compiler
import Foundation
import Kernel

/// The one path from a policy to a plan: load the source → run its expectations → apply
/// the runtime overrides (`policy enable|disable`, `trust`) → build the access graph →
/// compile this host. Every command and the daemon go through it; what they do with the
/// plan (print it, make it live through a `Dataplane`) is theirs.
public struct Pipeline: Sendable {
    public let source: any PolicySource
    /// `--state-dir`; nil: `[state] directory` of the policy's enforcer.conf.
    public let stateOption: String?

    public init(source: any PolicySource, stateDirectory: String? = nil) {
        self.source = source
        stateOption = stateDirectory
    }

    /// A policy directory, and the state directory that goes with it; `cache` for a
    /// process that loads it again and again (the daemon).
    public init(directory: String, stateDirectory: String? = nil, cache: ParseCache? = nil) {
        self.init(source: PolicyDirectory(path: directory, cache: cache), stateDirectory: stateDirectory)
    }

    /// The policy, checked, and its warnings; the diagnostics when it does not load.
    public func load() throws(EnforcementError) -> (policy: PolicySet, warnings: [Diagnostic]) {
        let result = source.load()
        guard let policy = result.policySet else { throw .policy(diagnostics: result.diagnostics, location: source.location) }
        return (policy, result.diagnostics)
    }

    public func state(for policy: PolicySet) -> StateDirectory {
        StateDirectory(option: stateOption, config: policy.config)
    }

    /// The state directory read from enforcer.conf alone, for what must work while the
    /// policy files have errors.
    public func state() -> StateDirectory {
        if let stateOption { return StateDirectory(path: stateOption) }
        return StateDirectory(option: nil, config: source.configuration().0)
    }

    /// enforcer.conf alone, or its errors.
    public func configuration() throws(EnforcementError) -> Config {
        let (config, diagnostics) = source.configuration()
        if diagnostics.contains(where: { $0.severity == .error }) { throw .policy(diagnostics: diagnostics, location: source.location) }
        return config
    }

    /// The system this host is: `name`, else the one owning one of the host's addresses.
    public func host(_ name: String?, in policy: PolicySet) throws(EnforcementError) -> SystemDefinition {
        if let name {
            guard let system = policy.system(named: name) else {
                throw .notFound("--system '\(name)' is not a system in \(policy.directory) (systems: \(policy.systems.map(\.name).joined(separator: ", ")))")
            }
            return system
        }
        let own = HostAddresses.current()
        if let system = policy.systems.first(where: { system in own.contains { address in system.addresses.contains { $0.contains(address) } } }) {
            return system
        }
        throw .notFound("this host's addresses (\(own.map(\.description).joined(separator: ", "))) belong to no system in \(policy.directory); pass --system NAME")
    }

    /// The expectations that fail against the policy files (runtime overrides do not count:
    /// expectations test what is written).
    public func failedExpectations(_ policy: PolicySet, ids: PolicyIDs = PolicyIDs(), at instant: Date) -> [Diagnostic] {
        // The graph of a fleet's 10,000 systems takes 15–30 ms to build: not for no expectation.
        guard !policy.expectations.isEmpty else { return [] }
        return ExpectationRunner(graph: AccessGraph(policy, ids: ids), now: instant).run()
    }

    /// The access graph in force at `instant`: the files with the overrides applied.
    public static func graph(_ policy: PolicySet, overrides: RuntimeOverrides, at instant: Date, ids: PolicyIDs) -> AccessGraph {
        let overrides = overrides.pruned(at: instant)
        return AccessGraph(overrides.applied(to: policy), trust: overrides.trustGrants(at: instant),
                           revoked: overrides.revokedTrust(at: instant), ids: ids)
    }

    /// The plan for `host` at `instant` (on a gateway, with the default portal_url on its
    /// client-side address: `PolicySet.resolvingPortalURL(for:)`). With `expectations`, they
    /// run on another core while the ruleset compiles, and a failure stops everything before
    /// a compile error is reported or a dataplane is asked.
    public func plan(_ policy: PolicySet, host: SystemDefinition, at instant: Date, overrides: RuntimeOverrides, ids: PolicyIDs,
                     expectations: Bool = true) throws(EnforcementError) -> CheckedPlan {
        let policy = policy.resolvingPortalURL(for: host)
        let graph = Self.graph(policy.systemsInForce(at: instant, keeping: host.name), overrides: overrides, at: instant, ids: ids)
        Trace.phase("access graph")
        let failures = expectations ? Concurrently { failedExpectations(policy, ids: ids, at: instant) } : nil
        let compiled = Result { () throws(CompileError) in try HostCompiler(graph: graph, system: host, at: instant).compile() }
        Trace.phase("compiled")
        if let failures = failures?.value, !failures.isEmpty { throw .expectations(failures) }
        if failures != nil { Trace.phase("expectations") }
        switch compiled {
        case .success(let compiled):
            return CheckedPlan(loaded: policy, policy: graph.policySet, host: host, graph: graph, compiled: compiled, instant: instant, policyIDs: ids,
                               location: source.location)
        case .failure(let error): throw .compile(error)
        }
    }

    /// The plan the daemon keeps up to date edit by edit: `host` (nil at first, or after a
    /// failure) is compiled in full, else given the edits from `loaded` (the policy it was
    /// compiled from) to `policy`, and the overrides and instant; it is compiled in full where
    /// those edits cannot say the difference (see `PolicySet.edits(to:)`). The expectations
    /// run on another core meanwhile. `base`: the generation holding `host`'s ruleset before,
    /// whose changes the plan then carries. On any failure `host` is left nil.
    public func plan(_ policy: PolicySet, from loaded: PolicySet?, incremental host: inout IncrementalHost?, base: Int?, system: SystemDefinition,
                     at instant: Date, overrides: RuntimeOverrides, ids: PolicyIDs, expectations: Bool = true) throws(EnforcementError) -> CheckedPlan {
        // Resolved here as in the full plan, so the policy kept as `loaded` compares equal
        // with the next one resolved alike and an unchanged enforcer.conf stays incremental.
        let policy = policy.resolvingPortalURL(for: system)
        let failures = expectations ? Concurrently { failedExpectations(policy, ids: ids, at: instant) } : nil
        var current = host.take()
        var changes: RulesetChanges?
        // What is compiled is the policy without the systems expired by then: an expiry is an
        // edit between the policy at the last instant and at this one.
        let inForce = policy.systemsInForce(at: instant, keeping: system.name)
        do throws(CompileError) {
            if current != nil, current!.hostName == system.name,
               let edits = loaded?.resolvingPortalURL(for: system).systemsInForce(at: current!.instant, keeping: system.name).edits(to: inForce) {
                Trace.phase("\(edits.count) edits found")
                changes = try current!.apply(edits + [.overrides(overrides), .instant(instant)])
            } else {
                current = try IncrementalHost(policySet: inForce, host: system, overrides: overrides, ids: ids, at: instant)
            }
        } catch {
            _ = failures?.value
            throw .compile(error)
        }
        Trace.phase(changes == nil ? "compiled in full" : "compiled incrementally")
        if let failures = failures?.value, !failures.isEmpty { throw .expectations(failures) }
        if failures != nil { Trace.phase("expectations") }
        let compiled = current!
        host = compiled
        // The host keeps the definitions an edit left alone; what the compile does not read
        // (the files, the expectations) is the new policy's.
        var shown = compiled.graph.policySet
        shown.directory = policy.directory
        shown.files = policy.files
        shown.expectations = policy.expectations
        var plan = CheckedPlan(loaded: policy, policy: shown, host: system, graph: compiled.graph, compiled: compiled.compiled,
                               instant: instant, policyIDs: compiled.policyIDs, location: source.location)
        if let base, let changes { plan.changes = (base, changes) }
        return plan
    }

    /// Load, then plan for `system` with the state directory's overrides and ids.
    public func plan(system: String?, at instant: Date) throws(EnforcementError) -> (plan: CheckedPlan, state: StateDirectory) {
        let policy = try load().policy
        Trace.phase("policy loaded")
        let host = try host(system, in: policy)
        let state = state(for: policy)
        let plan = try plan(policy, host: host, at: instant, overrides: state.overrides.read(), ids: state.policyIDs(for: policy))
        return (plan, state)
    }
}
