import Foundation

/// Whether this process may change the kernel's firewall: it needs CAP_NET_ADMIN in its
/// effective capabilities, which root has, and which a service can be given without root.
public enum Privilege {
    /// CAP_NET_ADMIN's bit in the capability sets (linux/capability.h).
    static let netAdminBit: UInt64 = 1 << 12

    public static func mayAdministerNetwork() -> Bool {
        if let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8), let effective = effectiveCapabilities(status: text) {
            return effective & netAdminBit != 0
        }
        // No /proc to ask: root is the best guess there is.
        return geteuid() == 0
    }

    /// The `CapEff:` line of /proc/PID/status, a hexadecimal mask.
    static func effectiveCapabilities(status text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("CapEff:") {
            return UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        }
        return nil
    }
}
