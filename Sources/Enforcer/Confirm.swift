import ArgumentParser
import Compiler
import Foundation
import Kernel

/// `apply --confirm`: a detached watchdog restores the previous generation at the deadline
/// unless `enforcer confirm` removed the pending record first. Being its own session, it
/// outlives the `apply` that started it (and an SSH session that just got cut).
enum Watchdog {
    struct Pending: Codable {
        var generation: Int
        /// nil: there was no enforcer table before; restoring means flushing.
        var previous: Int?
        var deadline: Date
    }

    static func path(_ store: GenerationStore) -> String { store.directory + "/pending-confirm.json" }

    static func arm(store: GenerationStore, generation: Int, previous: Int?, seconds: Int) throws {
        let pending = Pending(generation: generation, previous: previous, deadline: Date().addingTimeInterval(TimeInterval(seconds)))
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970  // fractions too: never restore early
        try encoder.encode(pending).write(to: URL(fileURLWithPath: path(store)), options: .atomic)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let pid = spawnDetached([executable, "confirm-watchdog", "--state-dir", store.directory, "--generation", String(generation)],
                                log: store.directory + "/watchdog.log")
        guard pid > 0 else {
            try? FileManager.default.removeItem(atPath: path(store))
            throw ValidationError("cannot start the confirm watchdog: \(String(cString: strerror(-pid)))")
        }
    }

    static func read(_ store: GenerationStore) -> Pending? {
        guard let data = FileManager.default.contents(atPath: path(store)) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(Pending.self, from: data)
    }
}

struct Confirm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Keep the generation applied with `apply --confirm`.")
    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption

    func run() throws {
        let store = GenerationStore(directory: state.stateDir ?? stateDirectory(directory))
        guard let pending = Watchdog.read(store) else {
            print("nothing to confirm")
            return
        }
        try FileManager.default.removeItem(atPath: Watchdog.path(store))
        print("confirmed generation \(pending.generation)")
    }
}

struct ConfirmWatchdog: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "confirm-watchdog", abstract: "(internal) restore on a missed confirm.",
                                                    shouldDisplay: false)
    @Option var stateDir: String
    @Option var generation: Int

    func run() throws {
        let store = GenerationStore(directory: stateDir)
        guard let pending = Watchdog.read(store), pending.generation == generation else { return }
        let wait = pending.deadline.timeIntervalSinceNow
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        // Confirmed meanwhile, or superseded by a newer apply --confirm.
        guard let still = Watchdog.read(store), still.generation == generation else { return }
        do {
            let applier = try Applier(stateDirectory: stateDir)
            if let previous = still.previous {
                let outcome = try applier.rollback(to: previous)
                print("\(Date()): generation \(generation) was not confirmed; restored generation \(previous) as generation \(outcome.generation)")
            } else {
                let table = try store.ruleset(generation).table
                try applier.flush(family: table.family, name: table.name)
                print("\(Date()): generation \(generation) was not confirmed; removed table \(table.name) (there was none before)")
            }
            try? FileManager.default.removeItem(atPath: Watchdog.path(store))
        } catch {
            print("\(Date()): generation \(generation) was not confirmed, and restoring failed: \(error)")
            throw ExitCode(1)
        }
    }
}

struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make an earlier applied generation live again.",
        discussion: "Without GEN, the generation before the current one. The restored state is recorded as a new generation.")
    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption
    @Argument(help: ArgumentHelp("Generation number (see the state directory's generations/).", valueName: "GEN")) var generation: Int?

    func run() throws {
        let store = GenerationStore(directory: state.stateDir ?? stateDirectory(directory))
        let numbers = store.numbers()
        guard let target = generation ?? store.currentNumber().flatMap({ current in numbers.last { $0 < current } }) else {
            Output.error("enforcer: no earlier generation in \(store.directory)")
            throw ExitCode(1)
        }
        guard numbers.contains(target) else {
            Output.error("enforcer: generation \(target) is not kept in \(store.directory) (kept: \(numbers.map(String.init).joined(separator: ", ")))")
            throw ExitCode(1)
        }
        do {
            let outcome = try Applier(stateDirectory: store.directory).rollback(to: target)
            try? FileManager.default.removeItem(atPath: Watchdog.path(store))
            print("restored generation \(target) as generation \(outcome.generation): \(outcome.summary)")
        } catch {
            Output.error("enforcer: \(error)")
            Output.error("enforcer: nothing was changed; the previous ruleset stays live")
            throw ExitCode(1)
        }
    }
}

/// `[state] directory` of enforcer.conf in the policy directory, read without the policy files.
func stateDirectory(_ directory: PolicyDirectoryOption) -> String {
    let path = directory.dir + "/enforcer.conf"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return Config().stateDirectory }
    return Config.parse(file: path, text: text).0.stateDirectory
}

/// The SSH session this process runs in, from SSH_CONNECTION ("client port server port").
struct SSHSession: CustomStringConvertible {
    var client: IPAddress
    var server: IPAddress
    var port: UInt16

    static func current() -> SSHSession? {
        guard let value = ProcessInfo.processInfo.environment["SSH_CONNECTION"] else { return nil }
        let parts = value.split(separator: " ")
        guard parts.count == 4, let client = try? IPAddress.parse(parts[0]), let server = try? IPAddress.parse(parts[2]),
              let port = UInt16(parts[3]) else { return nil }
        return SSHSession(client: client, server: server, port: port)
    }

    /// Whether the ruleset compiled for `system` would refuse this session's packets. Loopback
    /// and flows this host began pass any ruleset; others need a policy that grants them.
    func wouldBeCut(graph: AccessGraph, system: SystemDefinition, at instant: Date) -> Bool {
        let loopback = ["127.0.0.0/8", "::1"].compactMap { try? AddressBlock.parse($0) }
        if client == server || loopback.contains(where: { $0.contains(client) }) { return false }
        let query = FlowQuery(from: client, to: server, proto: .tcp, port: port, at: instant)
        return !FlowEvaluator(graph: graph, system: system).decide(query).allowed
    }

    var description: String { "from \(client) to \(server) port \(port)" }
}
