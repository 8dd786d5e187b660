import Foundation
import Testing

/// `make demo`'s live part as a test: the whole Enclave lab (router-1 with three segments,
/// 13 hosts, IPv4 and IPv6), every system applied with `enforcer apply`, 17 connection
/// attempts compared with the policy; then its fleet act (scripts/fleet-demo.sh). The script
/// exits 1 on any mismatch.
@Suite(.serialized)
struct DemoLabTests {
    @Test func everyAttemptInTheLabMatchesThePolicy() throws {
        precondition(getuid() == 0, "the demo lab builds network namespaces and must run as root (CI does)")
        let result = try run("/bin/bash", [Paths.packageRoot.path + "/scripts/demo.sh", Paths.enforcer])
        #expect(result.status == 0, "\(result.stdout.suffix(3000))\n\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("17 as the policy says, 0 mismatches"), "\(result.stdout.suffix(3000))")
        // The fleet act: a push, db-1 following the store, a trust revoke cutting a live
        // connection, a host enrolled and reached.
        #expect(result.stdout.contains("fleet act: all as it should be") && !result.stdout.contains("WRONG"), "\(result.stdout.suffix(3000))")
        let leftovers = try run("/bin/sh", ["-c", "ip netns list | grep -c '^enf-' || true"]).stdout
        #expect(leftovers.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "the lab was not torn down")
    }
}
