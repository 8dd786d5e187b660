import Foundation
import Testing

/// `enforcer policy list|show|new|edit|remove` on a copy of examples/enclave, with $EDITOR
/// replaced by a command that writes prepared text into the draft.
struct PolicyCommandTests {
    final class Copy {
        let path = NSTemporaryDirectory() + "enforcer-policycmd-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        init() throws { try FileManager.default.copyItem(atPath: Paths.example("enclave"), toPath: path) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func rules(_ name: String) -> String { path + "/rules.d/" + name }

        /// `enforcer policy ARGS` with an editor that replaces the draft by `text` (nil: leaves it).
        func policy(_ arguments: [String], editing text: String? = nil) throws -> CommandResult {
            var environment = ["TZ": "UTC", "VISUAL": "true"]
            if let text {
                let prepared = path + "-prepared"
                try text.write(toFile: prepared, atomically: true, encoding: .utf8)
                environment["VISUAL"] = "cp '\(prepared)'"
            }
            return try run(Paths.enforcer, ["policy"] + arguments + ["--dir", path], environment: environment)
        }
    }

    @Test func listShowsEveryFileAndWhatIsInForce() throws {
        let copy = try Copy()
        let listed = try copy.policy(["list", "--at", "2026-11-24T03:00:00Z"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("30-databases.policy\n  policy 'Database Servers for Developers': "))
        #expect(listed.stdout.contains("inactive: outside active hours mon-fri 08:00-18:00 (America/New_York)"), "\(listed.stdout)")
        #expect(listed.stdout.contains("  policy 'Database Servers for SRE': 1 pair, active"), "\(listed.stdout)")
    }

    @Test(arguments: ["Database Servers for SRE", "30-databases", "30-databases.policy"])
    func showPrintsTheFileHoldingIt(name: String) throws {
        let copy = try Copy()
        let shown = try copy.policy(["show", name])
        #expect(shown.status == 0)
        #expect(shown.stdout.hasPrefix("# \(copy.rules("30-databases.policy"))\n"))
        #expect(shown.stdout.contains("[policy] \"Database Servers for SRE\": {"))
    }

    /// A name is looked for in rules.d/ only: a path out of it names nothing, so `show`
    /// cannot read, nor `remove` delete, a .policy file elsewhere.
    @Test func namesDoNotLeaveTheRulesDirectory() throws {
        let copy = try Copy()
        let outside = copy.path + "/outside.policy"
        try "[system] elsewhere: {\n    address: 10.9.9.9\n}\n".write(toFile: outside, atomically: true, encoding: .utf8)
        for arguments in [["show", "../outside"], ["show", "../outside.policy"], ["remove", "../outside"]] {
            let result = try copy.policy(arguments)
            #expect(result.status == 1 && result.stderr.contains("no file or block named"), "\(arguments): \(result.stdout)\(result.stderr)")
        }
        #expect(FileManager.default.fileExists(atPath: outside), "remove must not reach outside rules.d/")
    }

    /// A file over the policy file size limit is neither read whole by show nor opened for
    /// edit: a clear refusal, as check gives, and nothing changes.
    @Test func showAndEditRefuseAFileOverTheSizeLimit() throws {
        let copy = try Copy()
        let huge = copy.rules("60-huge.policy")
        // Sparse: 65 MiB on paper, nothing on disk.
        #expect(FileManager.default.createFile(atPath: huge, contents: nil) && truncate(huge, 65 << 20) == 0)
        for command in [["show", "60-huge"], ["edit", "60-huge"]] {
            let result = try copy.policy(command)
            #expect(result.status == 1, "\(command): \(result.stdout)")
            #expect(result.stderr.contains("\(huge) is 65 MiB, over the limit of 64 MiB for a policy file"), "\(command): \(result.stderr)")
        }
        #expect(try FileManager.default.attributesOfItem(atPath: huge)[.size] as? Int == 65 << 20)
        #expect(!FileManager.default.fileExists(atPath: huge + ".rejected"))
    }

    @Test func newChecksTheDraftAndSavesIt() throws {
        let copy = try Copy()
        let text = "[policy] \"Web for Contractors\": {\n    senders: contractors\n    receivers: servers\n    allow: tcp/443\n}\n"
        let created = try copy.policy(["new", "60-contractor-printing"], editing: text)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout.contains("checked and saved \(copy.rules("60-contractor-printing.policy"))"))
        #expect(try String(contentsOfFile: copy.rules("60-contractor-printing.policy"), encoding: .utf8) == text)
        #expect(try copy.policy(["new", "60-contractor-printing"]).status == 1, "an existing file is edited, not created")
        #expect(try copy.policy(["new", "contractors"]).status == 2, "NN-name only")
    }

    @Test func theTemplateAllowsAnyAndNamesItsTags() throws {
        let copy = try Copy()
        // The editor leaves the template as written: TAG is no tag, so it is kept aside.
        let created = try copy.policy(["new", "70-scratch"])
        #expect(created.status == 1)
        #expect(created.stderr.contains("\(copy.rules("70-scratch.policy")):3:"), "diagnostics name the file it would be: \(created.stderr)")
        let rejected = try String(contentsOfFile: copy.rules("70-scratch.policy.rejected"), encoding: .utf8)
        #expect(rejected.contains("allow: any"))
        #expect(!FileManager.default.fileExists(atPath: copy.rules("70-scratch.policy")))
    }

    @Test func anEditThatBreaksAnExpectationIsKeptAside() throws {
        let copy = try Copy()
        let original = try String(contentsOfFile: copy.rules("30-databases.policy"), encoding: .utf8)
        let broken = original.replacingOccurrences(of: "allow: tcp/5432, tcp/22, icmp", with: "allow: tcp/22")
        let edited = try copy.policy(["edit", "Database Servers for SRE"], editing: broken)
        #expect(edited.status == 1)
        #expect(edited.stderr.contains("expectation"), "\(edited.stderr)")
        #expect(try String(contentsOfFile: copy.rules("30-databases.policy"), encoding: .utf8) == original, "the live file is untouched")
        #expect(FileManager.default.fileExists(atPath: copy.rules("30-databases.policy.rejected")))
        // A good edit replaces the file and clears the rejected draft.
        let good = original.replacingOccurrences(of: "allow: tcp/5432, tcp/22, icmp", with: "allow: tcp/5432, tcp/22, tcp/2222, icmp")
        #expect(try copy.policy(["edit", "30-databases"], editing: good).status == 0)
        #expect(try String(contentsOfFile: copy.rules("30-databases.policy"), encoding: .utf8) == good)
        #expect(!FileManager.default.fileExists(atPath: copy.rules("30-databases.policy.rejected")))
    }

    @Test func removeRefusesWhatTheRestStillNeeds() throws {
        let copy = try Copy()
        let refused = try copy.policy(["remove", "00-systems"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("nothing was removed"), "\(refused.stderr)")
        #expect(FileManager.default.fileExists(atPath: copy.rules("00-systems.policy")))
        let removed = try copy.policy(["remove", "90-expectations"])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: copy.rules("90-expectations.policy")))
        #expect(try copy.policy(["show", "no-such-thing"]).status == 1)
    }
}
