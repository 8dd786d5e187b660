import Foundation

/// Runs the `expect` blocks: each failure is an error at the expectation, naming the flow
/// and the policy that decided it.
public struct ExpectationRunner: Sendable {
    public let graph: AccessGraph
    public let now: Date

    public init(graph: AccessGraph, now: Date) {
        self.graph = graph
        self.now = now
    }

    public func run() -> [Diagnostic] {
        graph.policySet.expectations.flatMap(check)
    }

    /// Every expectation with its failures (none: it passed), for `check --json`.
    public func results() -> [(expectation: Expectation, failures: [Diagnostic])] {
        graph.policySet.expectations.map { ($0, check($0)) }
    }

    func check(_ expectation: Expectation) -> [Diagnostic] {
        let at = expectation.at ?? now
        let set = graph.policySet
        switch expectation.check {
        case let .flow(fromEndpoint, toEndpoint, allow, deny):
            guard let from = address(fromEndpoint, in: set), let to = address(toEndpoint, in: set) else {
                return [.error(expectation.location, "expectation '\(expectation.name)': \(fromEndpoint) or \(toEndpoint) has no address")]
            }
            let evaluator = FlowEvaluator(graph: graph)
            var failures: [Diagnostic] = []
            for (service, wanted) in allow.map({ ($0, true) }) + deny.map({ ($0, false) }) {
                for query in queries(for: service, from: from, to: to, at: at, evaluator: evaluator) {
                    let decision = evaluator.decide(query)
                    guard decision.allowed != wanted else { continue }
                    let verdict = decision.allowed ? "allowed" : "denied"
                    failures.append(.error(expectation.location,
                        "expectation '\(expectation.name)' failed: \(fromEndpoint) → \(toEndpoint) \(query.serviceText) is \(verdict), expected \(wanted ? "allow" : "deny"); decided by \(decision.policy.map { "policy '\($0)'" } ?? "default deny"): \(decision.reason)"))
                    break
                }
            }
            return failures
        case let .web(url, verdict, from):
            let request: WebRequest
            do { request = try WebRequest.fromURL(url, source: from).request } catch {
                return [.error(expectation.location, "expectation '\(expectation.name)': \(error.message)")]
            }
            let decision = WebMatcher(rules: set.webRules, defaultAction: set.config.defaultAction, fail: set.config.webFail).decide(request, at: at)
            guard decision.action != verdict else { return [] }
            return [.error(expectation.location,
                "expectation '\(expectation.name)' failed: \(url) gets \(decision.action.rawValue), expected \(verdict.rawValue); decided by \(decision.rule.map { "rule '\($0)'" } ?? "default_action")\(decision.pattern.map { " (\($0))" } ?? "")")]
        }
    }

    private func address(_ endpoint: Expectation.Endpoint, in set: PolicySet) -> IPAddress? {
        switch endpoint {
        case .address(let address): address
        case .system(let name): set.system(named: name)?.addresses.first?.address
        }
    }

    /// The flows that together cover `service`: every port where a decision could change.
    private func queries(for service: Service, from: IPAddress, to: IPAddress, at: Date, evaluator: FlowEvaluator) -> [FlowQuery] {
        func ports(_ proto: FlowProtocol, _ range: PortRange?) -> [FlowQuery] {
            evaluator.probePorts(proto, in: range ?? PortRange(first: 1, last: .max)).map {
                FlowQuery(from: from, to: to, proto: proto, port: $0, at: at)
            }
        }
        switch service {
        case .any: return ports(.tcp, nil) + ports(.udp, nil) + [FlowQuery(from: from, to: to, proto: .icmp, port: nil, at: at)]
        case .icmp: return [FlowQuery(from: from, to: to, proto: .icmp, port: nil, at: at)]
        case .tcp(let range): return ports(.tcp, range)
        case .udp(let range): return ports(.udp, range)
        }
    }
}
