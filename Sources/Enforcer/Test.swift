import ArgumentParser
import Compiler
import Enforcement
import Foundation

struct TestFlow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "The verdict for one flow and the policy that decides it.",
        discussion: "Prints 'allow' or 'deny' first, then what decided it. Exit 0 allow; 1 deny, a policy error or a name that names nothing; 2 usage error.")

    @OptionGroup var directory: PolicyDirectoryOption
    @Option(help: ArgumentHelp("Source address or system name.", valueName: "ADDR")) var from: String
    @Option(help: ArgumentHelp("Destination address or system name.", valueName: "ADDR")) var to: String
    @Option(help: ArgumentHelp("tcp, udp or icmp.", valueName: "P")) var proto: String
    @Option(help: ArgumentHelp("Destination port (tcp and udp).", valueName: "N")) var port: UInt16?
    @Option(help: ArgumentHelp("Judge as this system's ruleset would.", valueName: "NAME")) var system: String?
    @OptionGroup var time: InstantOption
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard let p = FlowProtocol(rawValue: proto.lowercased()) else {
            throw ValidationError("--proto must be tcp, udp or icmp, not '\(proto)'")
        }
        if p == .icmp && port != nil { throw ValidationError("--port does not apply to icmp") }
        if p != .icmp && port == nil { throw ValidationError("--port is required for \(p.rawValue)") }
        if port == 0 { throw ValidationError("--port must be 1 to 65535") }
    }

    func run() throws {
        let pipeline = pipeline(directory)
        let set = try loadForQuery(pipeline)
        let instant = try time.instant()
        let source = try endpoint(from, "--from", in: set)
        let destination = try endpoint(to, "--to", in: set)
        let host: SystemDefinition?
        do { host = try system.map { name throws(EnforcementError) in try pipeline.host(name, in: set) } } catch { throw Output.report(error) }
        let query = FlowQuery(from: source, to: destination, proto: FlowProtocol(rawValue: proto.lowercased())!, port: port, at: instant)
        let decision = PolicyQueries.decide(query, in: set, system: host)
        if json {
            print(JSONText.document(["verdict": decision.allowed ? "allow" : "deny", "policy": decision.policy, "reason": decision.reason,
                               "from": source.description, "to": destination.description, "proto": query.proto.rawValue,
                               "port": port.map { Int($0) }, "at": ISO8601.string(instant)]))
        } else {
            print(decision.description)
        }
        if !decision.allowed { throw ExitCode(1) }
    }

    private func endpoint(_ text: String, _ flag: String, in set: PolicySet) throws -> IPAddress {
        do { return try PolicyQueries.endpoint(text, in: set) } catch {
            throw CommandFailure("\(flag) '\(text)' is neither an address nor a system: \(error.message)")
        }
    }
}

struct TestURI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test-uri",
        abstract: "The web verdict for a URL, with the rule and pattern that decide it.",
        discussion: "Prints permit, deny, warn or aup first. For https only the host is visible (SNI), so the path is not matched. Exit 0 permit; 1 deny/warn/aup, a policy error or a name that names nothing; 2 usage error.")

    @OptionGroup var directory: PolicyDirectoryOption
    @Argument(help: ArgumentHelp("http:// or https:// URL.", valueName: "URL")) var url: String
    @Option(help: ArgumentHelp("Client address or system name (for match-source).", valueName: "ADDR")) var from: String?
    @OptionGroup var time: InstantOption
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let set = try loadForQuery(pipeline(directory))
        let instant = try time.instant()
        var source: IPAddress?
        if let from {
            do { source = try PolicyQueries.endpoint(from, in: set) } catch { throw CommandFailure("--from '\(from)': \(error.message)") }
        }
        let parsed: (request: WebRequest, droppedPath: Bool)
        do { parsed = try WebRequest.fromURL(url, source: source) } catch { throw CommandFailure(error.message) }
        let decision = PolicyQueries.decide(parsed.request, in: set, at: instant)
        if json {
            print(JSONText.document(["verdict": decision.action.rawValue, "rule": decision.rule, "pattern": decision.pattern,
                               "description": decision.ruleDescription, "matched_url": parsed.request.url,
                               "tls": parsed.request.isTLS, "at": ISO8601.string(instant)]))
        } else {
            print(decision.description + (decision.ruleDescription.map { ": \($0)" } ?? ""))
            if parsed.droppedPath {
                print("note: TLS shows only the host, so this was matched as \(parsed.request.url)")
            }
        }
        if decision.action != .permit { throw ExitCode(1) }
    }
}

/// The policy a question is asked of; one that does not load prints its errors and exits
/// with `status` (2 for `test` and `test-uri`, whose 1 means "deny").
func loadForQuery(_ pipeline: Pipeline, status: Int32 = 1) throws -> PolicySet {
    do { return try pipeline.load().policy } catch {
        _ = Output.report(error)
        throw ExitCode(status)
    }
}
