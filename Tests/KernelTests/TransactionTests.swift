import Compiler
import Foundation
import Glibc
import GRDB
import Testing
@testable import Kernel

/// A throwaway network namespace, and netlink connections opened inside it: a thread joins
/// the namespace with setns(2) and creates the socket, which stays bound to that namespace.
final class TestNamespace {
    let name: String

    init(_ prefix: String) throws {
        name = "\(prefix)-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try shell("ip", "netns", "add", name)
        try shell("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    }

    deinit { _ = try? shell("ip", "netns", "del", name) }

    func connection() throws -> NFTablesConnection { try inside { try NFTablesConnection() } }

    /// An nf_tables monitor listening inside the namespace.
    func monitor() throws -> NFTablesMonitor { try inside { try NFTablesMonitor() } }

    /// What `make` makes on a thread that joined the namespace (its sockets stay there).
    private func inside<T>(_ make: @escaping () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let path = "/run/netns/\(name)"
        nonisolated(unsafe) let make = make
        let thread = Thread {
            defer { done.signal() }
            let fd = open(path, O_RDONLY)
            guard fd >= 0, joinNamespace(fd, cloneNewNet) == 0 else {
                box.result = .failure(NetlinkError(operation: "setns \(path)", errno: errno))
                return
            }
            close(fd)
            box.result = Result { try make() }
        }
        thread.start()
        done.wait()
        return try box.result!.get()
    }

    func nft(_ arguments: String...) throws -> String {
        try shell(["ip", "netns", "exec", name, "nft"] + arguments)
    }
}

/// What a thread of `TestNamespace.inside` made, handed back.
private final class ResultBox<T>: @unchecked Sendable { var result: Result<T, Error>? }

/// setns(2); Glibc's module leaves it out (it needs _GNU_SOURCE).
@_silgen_name("setns") private func joinNamespace(_ fd: Int32, _ type: Int32) -> Int32
private let cloneNewNet: Int32 = 0x4000_0000

@discardableResult
func shell(_ arguments: String...) throws -> String { try shell(arguments) }

@discardableResult
func shell(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ShellError(command: arguments.joined(separator: " "), status: process.terminationStatus,
                         stderr: String(decoding: errors, as: UTF8.self))
    }
    return String(decoding: output, as: UTF8.self)
}

struct ShellError: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var stderr: String
    var description: String { "`\(command)` exited \(status): \(stderr)" }
}

func exampleRuleset(_ example: String, system: String) throws -> Ruleset {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let result = PolicyLoader.load(directory: root.path + "/examples/" + example)
    let set = try #require(result.policySet)
    let graph = AccessGraph(set)
    let host = try #require(set.system(named: system))
    return try HostCompiler(graph: graph, system: host, at: Date(timeIntervalSince1970: 1_795_442_400)).compile().ruleset
}

@Suite(.serialized)
struct TransactionTests {
    init() {
        precondition(getuid() == 0, "TransactionTests load rulesets into network namespaces and must run as root (CI does)")
    }

    /// A transaction the kernel refuses changes nothing, and the error names the rule.
    @Test func rejectedTransactionLeavesThePreviousRulesetLive() throws {
        let namespace = try TestNamespace("enfk-reject")
        let connection = try namespace.connection()
        let queue = try KernelTable.probeQueueEncoding(connection: connection)
        let good = try exampleRuleset("enclave", system: "db-1")
        let table = KernelTable(name: good.table.name, connection: connection)
        try table.replace(with: good, comment: "generation 1", encoder: RulesetEncoder(queue: queue))
        let before = try namespace.nft("-a", "list", "ruleset")
        #expect(before.contains("chain input"))

        var broken = good
        let input = try #require(broken.table.chains.firstIndex { $0.name == "input" })
        broken.table.chains[input].rules.insert(Rule([.verdict(.goto("no_such_chain"))], comment: "provoked"), at: 2)
        broken.table.sets.removeAll { $0.name == "in_senders_v4" }  // and a second problem further on
        let error = try #require(throws: KernelError.self, "the kernel accepted a goto to a chain that does not exist") {
            try table.replace(with: broken, comment: "generation 2", encoder: RulesetEncoder(queue: queue))
        }
        guard case .rejected(let rejection) = error else {
            Issue.record("expected a kernel rejection, got \(error)")
            return
        }
        let text = rejection.description
        #expect(text.contains("rule 3 of chain input: goto no_such_chain comment \"provoked\""), "\(text)")
        #expect(rejection.refusals.contains { $0.errno == ENOENT })
        #expect(rejection.refusals.contains { $0.origin.contains("ip saddr vmap @in_senders_v4") }, "\(text)")
        #expect(try namespace.nft("-a", "list", "ruleset") == before)
    }

    /// A ruleset that cannot be put into messages is an encoding error, not a refusal by the
    /// kernel: nothing is sent.
    @Test func anUnknownInterfaceIsAnEncodingError() throws {
        let namespace = try TestNamespace("enfk-encode")
        let connection = try namespace.connection()
        var ruleset = try exampleRuleset("enclave", system: "db-1")
        let input = try #require(ruleset.table.chains.firstIndex { $0.name == "input" })
        ruleset.table.chains[input].rules.insert(Rule([.compare(.inputInterface, .equal, .interface("no-such-if")), .verdict(.accept)]), at: 0)
        let error = try #require(throws: KernelError.self) {
            try KernelTable(name: ruleset.table.name, connection: connection).replace(with: ruleset, comment: nil, encoder: RulesetEncoder(queue: .native))
        }
        guard case .encoding(.unknownInterface("no-such-if")) = error else {
            Issue.record("expected an encoding error, got \(error)")
            return
        }
        #expect(error.description == "cannot encode the ruleset for the kernel: interface 'no-such-if' does not exist in this network namespace")
        #expect(try namespace.nft("list", "ruleset") == "")
    }

    /// An apply the kernel refuses records nothing: the generation written while the kernel
    /// took the transaction is discarded, the previous one stays current and live.
    @Test func aRefusedApplyRecordsNoGeneration() throws {
        let namespace = try TestNamespace("enfk-refused")
        let state = NSTemporaryDirectory() + "enforcer-refused-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applier = Applier(stateDirectory: state, connection: try namespace.connection())
        let good = try exampleRuleset("enclave", system: "db-1")
        #expect(try applier.apply(good, system: "db-1", policyDirectory: nil).generation == 1)
        let before = try namespace.nft("list", "ruleset")

        var broken = good
        let input = try #require(broken.table.chains.firstIndex { $0.name == "input" })
        broken.table.chains[input].rules.insert(Rule([.verdict(.goto("no_such_chain"))], comment: "provoked"), at: 2)
        #expect(throws: ApplyError.self) { try applier.apply(broken, system: "db-1", policyDirectory: nil) }
        #expect(applier.store.currentNumber() == 1)
        #expect(applier.store.numbers() == [1])
        let left = try applier.store.database().read { db in try Int.fetchAll(db, sql: "SELECT number FROM generation") }
        #expect(left == [1], "staging left behind: \(left)")
        #expect(try namespace.nft("list", "ruleset") == before)
        #expect(try applier.store.ruleset(1) == good)
    }

    /// The probe leaves nothing behind, and picks the compat target where nft_queue is missing.
    @Test func queueProbeIsANoOp() throws {
        let namespace = try TestNamespace("enfk-probe")
        let connection = try namespace.connection()
        let generation = try connection.followGeneration()
        let encoding = try KernelTable.probeQueueEncoding(connection: connection)
        #expect(try namespace.nft("list", "ruleset") == "")
        // Never committed: the ruleset's generation did not move.
        #expect(try connection.followGeneration() == generation)
        let nativeAvailable = (try? shell("modprobe", "-n", "nft_queue")) != nil
            && FileManager.default.fileExists(atPath: "/sys/module/nft_queue")
        if !nativeAvailable { #expect(encoding == .xtablesTarget) }
    }

    /// A table created anew starts with an empty timed_policies set: the transaction that
    /// creates it carries the timed grants, so a flow enabled for a while is never without
    /// its grant in between (nothing else puts them in here).
    @Test func aReplacedTableGetsItsTimedGrantsInItsOwnTransaction() throws {
        let namespace = try TestNamespace("enfk-timed")
        let state = NSTemporaryDirectory() + "enforcer-timed-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applier = Applier(stateDirectory: state, connection: try namespace.connection())
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        let mark = MarkLayout(mask: 0x00ff_ffff).policyMark(3)
        for replace in [false, true] {
            let outcome = try applier.apply(ruleset, system: "db-1", policyDirectory: nil, forceReplace: replace,
                                            timedGrants: [(mark: mark, until: Date().addingTimeInterval(600)), (mark: mark + 1, until: Date().addingTimeInterval(-1))])
            #expect(outcome.mode == .replaced)
            let listed = try namespace.nft("list", "set", "inet", "enforcer", "timed_policies")
            #expect(listed.contains(String(format: "0x%08x timeout", mark)) && listed.contains("expires"), "\(listed)")
            #expect(!listed.contains(String(format: "0x%08x", mark + 1)), "a grant that ran out is left out: \(listed)")
        }
        #expect(try KernelTable.queueEncoding(connection: namespace.connection()) == KernelTable.probeQueueEncoding(connection: namespace.connection()))
    }

    /// Applying the same ruleset through a delta sends nothing; changing one system's
    /// address sends only element changes.
    @Test func deltasTouchOnlyWhatChanged() throws {
        let namespace = try TestNamespace("enfk-delta")
        let connection = try namespace.connection()
        let encoder = RulesetEncoder(queue: try KernelTable.probeQueueEncoding(connection: connection))
        let first = try exampleRuleset("enclave", system: "db-1")
        let table = KernelTable(name: first.table.name, connection: connection)
        try table.replace(with: first, comment: nil, encoder: encoder)

        let same = try #require(try Delta.between(Snapshot(first), first, encoder: encoder))
        #expect(same.messages.isEmpty)
        #expect(same.summary.isEmpty)

        // ws-1 moves from 10.10.2.11 to 10.10.2.51: the sender maps change, nothing else.
        var moved = first
        // ws-1 and ws-2 are adjacent, so they are one range in the interval map.
        for index in moved.table.sets.indices where moved.table.sets[index].name == "in_senders_v4" {
            moved.table.sets[index].elements = SetElements(moved.table.sets[index].elements.flatMap { element -> [SetElement] in
                guard case .addresses(let range) = element.key[0], range.contains(try! IPAddress.parse("10.10.2.11")) else { return [element] }
                return [SetElement([.addresses(AddressRange(first: try! IPAddress.parse("10.10.2.12"), last: try! IPAddress.parse("10.10.2.12")))], verdict: element.verdict)]
            })
        }
        for index in moved.table.sets.indices where moved.table.sets[index].name == "in_hosts_v4" {
            let class12 = first.table.set(named: "in_senders_v4")?.elements.first { element in
                if case .addresses(let range) = element.key[0] { return range.contains(try! IPAddress.parse("10.10.2.12")) }
                return false
            }
            moved.table.sets[index].elements.append(SetElement([.addresses(AddressRange(first: try! IPAddress.parse("10.10.2.51"), last: try! IPAddress.parse("10.10.2.51")))],
                                                               verdict: class12?.verdict))
        }
        let delta = try #require(try Delta.between(Snapshot(first), moved, encoder: encoder))
        #expect(delta.summary.chainsRewritten == 0 && delta.summary.setsAdded == 0 && delta.summary.setsRemoved == 0)
        #expect(delta.summary.elementsAdded > 0 && delta.summary.elementsRemoved > 0)
        #expect(delta.messages.allSatisfy { if case .newElements = $0.message { true } else if case .deleteElements = $0.message { true } else { false } })
        try table.update(delta)
        let hosts = try namespace.nft("list", "map", "inet", "enforcer", "in_hosts_v4")
        let ranges = try namespace.nft("list", "map", "inet", "enforcer", "in_senders_v4")
        #expect(hosts.contains("10.10.2.51 : jump"), "\(hosts)")
        #expect(ranges.contains("10.10.2.12 : jump"), "\(ranges)")
        #expect(!ranges.contains("10.10.2.11-"))
    }
}

extension TransactionTests {
    /// The ruleset generation: read with GETGEN, advanced by one by every commit; a batch
    /// sent on the condition of a generation that moved is refused and changes nothing; a
    /// batch refused for any other reason leaves the generation where it was.
    @Test func batchesFollowTheRulesetGeneration() throws {
        let namespace = try TestNamespace("enfk-genid")
        let connection = try namespace.connection()
        let encoder = RulesetEncoder(queue: try KernelTable.probeQueueEncoding(connection: connection))
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        let table = KernelTable(name: ruleset.table.name, connection: connection)

        let first = try connection.followGeneration()
        try table.replace(with: ruleset, comment: nil, encoder: encoder)
        #expect(connection.knownGeneration == first &+ 1)
        #expect(try connection.followGeneration() == first &+ 1)

        // A refused batch: aborted, the generation stays and is still known.
        var broken = ruleset
        let input = try #require(broken.table.chains.firstIndex { $0.name == "input" })
        broken.table.chains[input].rules.insert(Rule([.verdict(.goto("no_such_chain"))]), at: 0)
        #expect(throws: KernelError.self) { try table.replace(with: broken, comment: nil, encoder: encoder) }
        #expect(connection.knownGeneration == first &+ 1)
        #expect(try KernelTable.queueEncoding(connection: try namespace.connection()) == encoder.queue)
        let probe = try namespace.connection()
        #expect(try probe.followGeneration() == first &+ 1)

        // Another process commits: the next conditional batch is refused, nothing changes.
        _ = try namespace.nft("add", "table", "inet", "someone_else")
        let before = try namespace.nft("list", "table", "inet", "enforcer")
        let error = try #require(throws: KernelError.self) { try table.replace(with: ruleset, comment: "moved", encoder: encoder) }
        guard case .rejected(let rejection) = error else { Issue.record("expected a refusal, got \(error)"); return }
        #expect(rejection.isGenerationMoved)
        #expect(rejection.description == "the kernel refused the transaction: another process changed the ruleset since enforcer read it")
        #expect(connection.knownGeneration == nil)
        #expect(try namespace.nft("list", "table", "inet", "enforcer") == before)
        // Unknown generation: batches go unconditionally.
        try table.replace(with: ruleset, comment: nil, encoder: encoder)
        #expect(connection.knownGeneration == nil)
        #expect(try connection.followGeneration() == first &+ 3)
    }
}

extension TransactionTests {
    /// Without a daemon watching, the record is trusted only while nobody else committed: a
    /// rule inserted by hand (mark and handle unchanged) is no longer "unchanged" but replaced
    /// whole with the reason said; enforcer's own timed grants keep the trust.
    @Test func theRecordIsTrustedOnlyWhileNobodyElseCommitted() throws {
        let namespace = try TestNamespace("enfk-trust")
        let state = NSTemporaryDirectory() + "enforcer-trust-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applier = Applier(stateDirectory: state, connection: try namespace.connection())
        let ruleset = try exampleRuleset("enclave", system: "db-1")
        #expect(try applier.apply(ruleset, system: "db-1", policyDirectory: nil).mode == .replaced)
        #expect(try applier.apply(ruleset, system: "db-1", policyDirectory: nil).mode == .unchanged)

        _ = try namespace.nft("insert", "rule", "inet", "enforcer", "input", "accept")
        let repaired = try applier.apply(ruleset, system: "db-1", policyDirectory: nil)
        #expect(repaired.mode == .replaced)
        #expect(repaired.summary.hasPrefix("nftables changed since generation 1 was applied (another program committed"), "\(repaired.summary)")
        #expect(!(try namespace.nft("list", "chain", "inet", "enforcer", "input")).contains("\t\taccept\n"))
        #expect(try applier.apply(ruleset, system: "db-1", policyDirectory: nil).mode == .unchanged)

        // A commit elsewhere cannot be told apart from one here: replaced too.
        _ = try namespace.nft("add", "table", "inet", "someone_else")
        #expect(try applier.apply(ruleset, system: "db-1", policyDirectory: nil).mode == .replaced)

        // enforcer's own grant changes keep the table trusted.
        let mark = MarkLayout(mask: 0x00ff_ffff).policyMark(3)
        try applier.setTimedGrants([(mark: mark, until: Date().addingTimeInterval(600))], revoked: [mark + 1], ruleset: ruleset)
        #expect(try applier.apply(ruleset, system: "db-1", policyDirectory: nil).mode == .unchanged)
    }
}

/// A refusal names its operation as nft says it./// A refusal names its operation as nft says it.
@Test(arguments: [(KernelOperation.addRule, "add rule"), (.deleteElements, "delete elements"), (.getTable, "get table"),
                  (.flushChain, "flush chain"), (.transaction, "the transaction")])
func operationWords(operation: KernelOperation, words: String) {
    #expect(operation.words == words)
}

/// A large commit of this process goes in while its nf_tables monitor is away (the kernel
/// then writes no notice per element); the monitor counts the commits made meanwhile and
/// reports any that were not this process's.
@Suite(.serialized)
struct QuietCommitTests {
    /// A ruleset whose transaction is over `NFTablesConnection.quietBytes`.
    static func largeRuleset() throws -> Ruleset {
        var ruleset = try exampleRuleset("enclave", system: "db-1")
        let index = try #require(ruleset.table.sets.firstIndex { $0.name == "in_hosts_v4" })
        let target = try #require(ruleset.table.sets[index].elements.first?.verdict)
        var elements = ruleset.table.sets[index].elements
        for n in 0..<40_000 { elements.appendHost(IPAddress(v4: 0x0B00_0000 + UInt32(n)), verdict: target) }
        ruleset.table.sets[index].elements = elements
        return ruleset
    }

    @Test func aLargeCommitIsNotHeardByItsOwnMonitorAndHidesNothing() throws {
        let namespace = try TestNamespace("enfk-quiet")
        let monitor = try namespace.monitor()
        let connection = try namespace.connection()
        let queue = try KernelTable.probeQueueEncoding(connection: connection)
        _ = monitor.events()
        let ruleset = try Self.largeRuleset()
        let table = KernelTable(name: ruleset.table.name, connection: connection)
        let report = try table.replace(with: ruleset, comment: "generation 1", encoder: RulesetEncoder(queue: queue))
        #expect(report.bytes >= NFTablesConnection.quietBytes)
        let (heard, overflowed) = monitor.events()
        #expect(!overflowed)
        #expect(!heard.contains { if case .committed = $0 { true } else { false } }, "the monitor was away: \(heard.prefix(3))")
        #expect(monitor.takeMissed() == nil, "only this process committed meanwhile")
        // Listening again: a small commit of another process is heard.
        try namespace.nft("add", "table", "inet", "other")
        #expect(monitor.events().events.contains { if case .committed = $0 { true } else { false } })
    }

    @Test func aCommitByAnotherProcessWhileAwayIsReported() throws {
        let namespace = try TestNamespace("enfk-quiet")
        let monitor = try namespace.monitor()
        let connection = try namespace.connection()
        let before = try connection.followGeneration()
        monitor.pause()
        try namespace.nft("add", "table", "inet", "other")
        let after = try connection.followGeneration()
        monitor.resume(from: before, to: after, own: 0)
        #expect(monitor.events().events.isEmpty, "nothing was heard while away")
        let missed = try #require(monitor.takeMissed())
        #expect(missed.from == before && missed.to == after)
        #expect(monitor.takeMissed() == nil, "said once")
    }
}
