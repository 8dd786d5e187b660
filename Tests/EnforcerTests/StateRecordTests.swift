import Compiler
import Foundation
import Testing

/// The state database as an operator meets it: `enforcer history` tells every apply, refusal,
/// override, rollback, confirm and flush with who and why; `sqlite3` answers the documented
/// questions; and a writer killed at any moment of a large apply leaves a database that opens,
/// passes SQLite's integrity check and still holds everything committed before.
@Suite(.serialized) struct StateRecordTests {
    typealias Sandbox = ApplyLifecycleTests.Sandbox

    static func require(_ result: CommandResult, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> CommandResult {
        try ApplyLifecycleTests.require(result, sourceLocation: sourceLocation)
    }

    static func sqlite(_ box: Sandbox, _ query: String) throws -> [String] {
        try require(run("/usr/bin/sqlite3", ["-readonly", box.state + "/state.sqlite", query])).stdout.split(separator: "\n").map(String.init)
    }

    /// A copy of the enclave example to edit.
    static func policyCopy() throws -> String {
        let copy = NSTemporaryDirectory() + "enforcer-policy-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: Paths.example("enclave"), toPath: copy)
        return copy
    }

    struct Event: Decodable {
        var kind: String
        var generation: Int?
        var actor: String?
        var reason: String?
        var summary: String
        var detail: String?
    }

    @Test("history tells every apply, refusal, override, rollback, confirm and flush, with who and why")
    func historyTellsWhatHappened() throws {
        let box = try Sandbox("history")
        let policy = try Self.policyCopy()
        defer { try? FileManager.default.removeItem(atPath: policy) }
        func enforcer(_ arguments: [String]) throws -> CommandResult { try box.enforcer(arguments + ["--dir", policy]) }
        _ = try Self.require(enforcer(["apply", "--system", "db-1", "--reason", "first rollout (CHG-1)"]))
        _ = try Self.require(enforcer(["apply", "--system", "srv-1"]))
        // A policy that does not check is refused, with its diagnostic in the record.
        let file = policy + "/rules.d/20-servers.policy"
        let original = try String(contentsOfFile: file, encoding: .utf8)
        try (original + "\n[policy] broken: {\n    allow: tcp/99999\n}\n").write(toFile: file, atomically: true, encoding: .utf8)
        let refused = try enforcer(["apply", "--system", "srv-1", "--reason", "try a typo"])
        #expect(refused.status == 1)
        try original.write(toFile: file, atomically: true, encoding: .utf8)
        _ = try Self.require(enforcer(["policy", "disable", "Servers full mesh"]))
        _ = try Self.require(enforcer(["rollback", "1", "--reason", "back to db-1's view"]))
        _ = try Self.require(enforcer(["apply", "--system", "srv-1", "--confirm", "30"]))
        _ = try Self.require(enforcer(["confirm"]))
        _ = try Self.require(enforcer(["flush", "--reason", "maintenance"]))

        let json = try Self.require(enforcer(["history", "--json"])).stdout
        struct Form: Decodable { var schema: Int; var events: [Event] }
        let form = try JSONDecoder().decode(Form.self, from: Data(json.utf8))
        let top = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(form.schema == 1 && top?["generations"] is NSNull && top?["live"] != nil, "\(json.prefix(200))")
        let events = form.events
        #expect(events.map(\.kind) == ["apply", "apply", "refusal", "override", "rollback", "apply", "confirm", "flush"], "\(json)")
        #expect(events.map(\.generation) == [1, 2, 2, 2, 3, 4, 4, 4], "\(json)")
        #expect(events[0].reason == "first rollout (CHG-1)")
        #expect(events[0].summary.hasPrefix("applied generation 1 for db-1: table replaced"), "\(events[0].summary)")
        #expect(events.allSatisfy { $0.actor?.hasPrefix("root") == true && $0.actor?.contains("pid ") == true }, "\(events.map(\.actor))")
        #expect(events[2].reason == "try a typo")
        #expect(events[2].detail?.contains("20-servers.policy:") == true && events[2].detail?.contains("error:") == true, "\(events[2])")
        #expect(events[3].summary == "policy 'Servers full mesh' disabled")
        #expect(events[4].summary.hasPrefix("restored generation 1 as generation 3"), "\(events[4].summary)")
        #expect(events[4].reason == "back to db-1's view")
        #expect(events[5].summary.hasSuffix("(with --confirm 30)"), "\(events[5].summary)")
        #expect(events[7].reason == "maintenance")

        // The text form, and the filters.
        let text = try Self.require(enforcer(["history", "--kind", "refusal"])).stdout
        #expect(text.contains("refusal") && text.contains("apply refused: ") && !text.contains("rollback"), "\(text)")
        #expect(try Self.require(enforcer(["history", "--generation", "3"])).stdout.contains("restored generation 1 as generation 3"))
        let bad = try enforcer(["history", "--kind", "nonsense"])
        #expect(bad.status == 2 && bad.stderr.contains("unknown kind 'nonsense'"), "\(bad.stderr)")

        // Generations: who, why, and the digest of the source each came from.
        let generations = try Self.require(enforcer(["history", "--generations"])).stdout
        #expect(generations.contains("generation 1  ") && generations.contains("by root") && generations.contains(": first rollout (CHG-1)"), "\(generations)")
        let digests = try Self.sqlite(box, "SELECT number || ' ' || ifnull(source_digest, '-') FROM generation ORDER BY number")
        #expect(digests.count == 4, "\(digests)")
        // 1, 2 and 4 came from the same files (the typo was undone); 3 is a rollback, from no source.
        let byNumber = Dictionary(uniqueKeysWithValues: digests.map { ($0.split(separator: " ")[0], String($0.split(separator: " ")[1])) })
        #expect(byNumber["1"] == byNumber["2"] && byNumber["2"] == byNumber["4"] && byNumber["3"] == "-", "\(digests)")
        // The digest is the documented one: sha256 over "path NUL length NUL sha256(bytes)" per file in path order.
        var framed: [UInt8] = []
        for path in try Self.sqlite(box, "SELECT path FROM source_file WHERE generation = 1 ORDER BY path") {
            let content = try Data(contentsOf: URL(fileURLWithPath: policy + "/" + path))
            framed += Array(path.utf8) + [0] + Array(String(content.count).utf8) + [0] + Array(SHA256.hex(content).utf8)
        }
        #expect(byNumber["1"] == SHA256.hex(framed))
        // Each file's bytes are stored once, however many generations hold them.
        let stored = try Self.sqlite(box, "SELECT (SELECT count(*) FROM source_blob) || ' ' || (SELECT count(DISTINCT digest) FROM generation_file)")
        let files = try Self.sqlite(box, "SELECT count(*) FROM generation_file")
        #expect(stored.count == 1 && stored[0].split(separator: " ")[0] == stored[0].split(separator: " ")[1] && Int(files[0])! > Int(stored[0].split(separator: " ")[0])!,
                "\(stored) \(files)")
        // A documented question: a file as generation 1 applied it.
        let kept = try Self.sqlite(box, "SELECT length(content) FROM source_file WHERE generation = 1 AND path = 'rules.d/20-servers.policy'")
        #expect(kept == [String(original.utf8.count)])
        #expect(try Self.sqlite(box, "SELECT value FROM setting WHERE name = 'current'").isEmpty, "flushed: nothing is live")
    }

    /// A policy of `systems` systems of `addresses` addresses each, all of them senders to sys-0.
    static func largePolicy(systems: Int, addresses: Int) throws -> String {
        let root = NSTemporaryDirectory() + "enforcer-large-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/rules.d", withIntermediateDirectories: true)
        try "[policy]\ntime_window_tz = \"utc\"\n".write(toFile: root + "/enforcer.conf", atomically: true, encoding: .utf8)
        var text = ""
        for i in 0..<systems {
            let list = (0..<addresses).map { j -> String in
                let n = UInt32(0x0A00_0000) + UInt32(i * addresses + j) * 2
                return "\(n >> 24).\((n >> 16) & 255).\((n >> 8) & 255).\(n & 255)"
            }
            text += "[system] sys-\(i): {\n    address: \(list.joined(separator: ", "))\n    tags: team-\(i % 50)\(i == 0 ? ", core" : "")\n}\n"
        }
        try text.write(toFile: root + "/rules.d/10-systems.policy", atomically: true, encoding: .utf8)
        var rules = ""
        for k in 0..<50 { rules += "[policy] p-\(k): {\n    senders: team-\(k)\n    receivers: core\n    allow: tcp/\(1000 + k)\n}\n" }
        try rules.write(toFile: root + "/rules.d/20-policies.policy", atomically: true, encoding: .utf8)
        return root
    }

    @Test("a writer killed at any moment of a large apply: the database opens, passes its integrity check, and keeps all it committed")
    func killedWritersLoseNothing() throws {
        let large = try Self.largePolicy(systems: 2_000, addresses: 50)
        defer { try? FileManager.default.removeItem(atPath: large) }
        // How long an apply of it takes here, and when it writes its generation to the
        // database (its largest transaction), to aim the kills at all of it and at that.
        let probe = try Sandbox("dbkill-probe")
        let started = Date()
        let traced = try Self.require(probe.enforcer(["apply", "--dir", large, "--system", "sys-0", "--replace"], environment: ["ENFORCER_TRACE": "1"]))
        let duration = Date().timeIntervalSince(started)
        var elapsed = 0.0
        var phases: [String: Double] = [:]
        for line in traced.stderr.split(separator: "\n") where line.hasPrefix("trace: ") {
            let fields = line.dropFirst(7).components(separatedBy: " +")
            guard fields.count == 2, let ms = Double(fields[1].split(separator: " ").first ?? "") else { continue }
            elapsed += ms / 1000
            phases[fields[0].trimmingCharacters(in: .whitespaces)] = elapsed
        }
        let stageStart = try #require(phases["staging begins"]), stageEnd = try #require(phases["staging written"])
        // The traced phases start after the process does: the rest of the wall time came first.
        let offset = max(0, duration - elapsed)
        var outcomes: [String: Int] = [:]
        // The latest kill that left no trace of the large generation, and the earliest that
        // left some: the moment its transaction commits lies between them.
        var lastAbsent = -1.0, firstPresent = Double.infinity
        var round = 0
        func killRound(after delay: Double) throws {
            defer { round += 1 }
            let box = try Sandbox("dbkill\(round)")
            _ = try Self.require(box.apply("db-1", ["--reason", "before"]))
            _ = try Self.require(box.apply("srv-1"))
            let before = try Self.sqlite(box, "SELECT number || ' ' || applied_at || ' ' || source_digest FROM generation WHERE recorded ORDER BY number")
            let events = try Self.sqlite(box, "SELECT id || ' ' || kind || ' ' || summary FROM event ORDER BY id")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", box.namespace, Paths.enforcer, "apply", "--dir", large, "--system", "sys-0", "--replace",
                                 "--state-dir", box.state]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let killed = process.terminationReason == .uncaughtSignal
            // The database opens and is whole; what was committed before is there as it was.
            #expect(try Self.sqlite(box, "PRAGMA integrity_check") == ["ok"], "round \(round)")
            let after = try Self.sqlite(box, "SELECT number || ' ' || applied_at || ' ' || source_digest FROM generation WHERE recorded ORDER BY number")
            #expect(Array(after.prefix(2)) == before, "round \(round): \(after)")
            let eventsAfter = try Self.sqlite(box, "SELECT id || ' ' || kind || ' ' || summary FROM event ORDER BY id")
            #expect(Array(eventsAfter.prefix(events.count)) == events, "round \(round)")
            // The large generation is either wholly on record (with its apply event) or absent.
            let state = try Self.sqlite(box, "SELECT recorded FROM generation WHERE number = 3 AND element_count > 90000")
            let largeEvent = eventsAfter.count > events.count
            switch (state, largeEvent) {
            case ([], false):
                outcomes[killed ? "killed before its generation committed" : "finished?", default: 0] += 1
                if killed { lastAbsent = max(lastAbsent, delay) }
            case (["0"], false):
                outcomes["killed after its staging, before its record", default: 0] += 1
                firstPresent = min(firstPresent, delay)
            case (["1"], _):
                outcomes[largeEvent ? "recorded with its event" : "recorded, killed before its event", default: 0] += 1
                firstPresent = min(firstPresent, delay)
            default: Issue.record("round \(round): generation 3 is \(state), event \(largeEvent)")
            }
            // Status reads it, and the next apply goes on from it.
            _ = try box.status(Paths.example("enclave"))
            let next = try Self.require(box.apply("db-1"))
            #expect(next.stdout.contains("applied generation"), "round \(round): \(next.stdout)")
            #expect(try Self.sqlite(box, "PRAGMA integrity_check") == ["ok"], "round \(round)")
            _ = try Self.require(box.enforcer(["history", "--generations", "--dir", Paths.example("enclave")]))
        }
        // First spread the kills over the whole apply (the last well after it: a busy machine
        // may take longer than the probe did), then aim them at the commit itself by halving
        // the interval between the last kill that left nothing and the first that left the
        // generation. Aiming by what the kills left, not by the probe's clock, keeps the test
        // meaningful when this machine is slower or faster than during the probe.
        for k in 0...8 { try killRound(after: duration * (k == 8 ? 3 : Double(k) / 7)) }
        let span = max(0.02, (stageEnd - stageStart) / 8)
        var aimed = 0
        while aimed < 12, lastAbsent >= 0, firstPresent.isFinite, firstPresent - lastAbsent > span {
            try killRound(after: (lastAbsent + firstPresent) / 2)
            aimed += 1
        }
        print("killed writer outcomes (apply of \(String(format: "%.2f", duration)) s, staging \(String(format: "%.0f-%.0f", (offset + stageStart) * 1000, (offset + stageEnd) * 1000)) ms, \(aimed) aimed kills, commit between \(String(format: "%.0f", lastAbsent * 1000)) and \(String(format: "%.0f", firstPresent * 1000)) ms): \(outcomes)")
        // Kills fell before the commit, after it, and within an eighth of the staging write's
        // length of the moment it commits.
        #expect(lastAbsent >= 0 && firstPresent.isFinite && outcomes.keys.contains { $0.hasPrefix("recorded") }, "\(outcomes)")
        #expect(firstPresent - lastAbsent <= span, "the kills did not close in on the commit: \(lastAbsent) .. \(firstPresent) s")
    }
}
