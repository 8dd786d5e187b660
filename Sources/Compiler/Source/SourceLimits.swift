/// How large the files enforcer reads may be. A file over its limit is refused from its size
/// alone (the file system's, before a byte is read) with a diagnostic that says the size, the
/// limit and what to do; nothing of it is loaded and nothing live changes. Without limits a
/// file written by mistake (a log, a disk image, a generator gone wrong) would be read whole
/// and take the host's memory with it: the loader holds a policy file in memory, and what it
/// builds from the text grows with it.
public enum SourceLimits {
    /// One policy file: `enforcer.conf` or a `rules.d/*.policy`. The compiler is built for a
    /// million sender addresses; written out they take about 15 bytes each in IPv4 and up to
    /// 41 in IPv6, so this holds such a policy in one file, IPv6 included, with room to spare.
    public static let policyFileBytes = 64 << 20

    /// `enforcer.conf` and every `rules.d/*.policy` together: the loader holds all of their
    /// blocks at once (names are unique across files), so the directory's total is what its
    /// memory follows. Twice one file: splitting a policy into files gives no more room than
    /// a large policy needs.
    public static let policyDirectoryBytes = 128 << 20

    /// One `match-domain-list` file. It is read in chunks, so what stays in memory is the set
    /// of domains, not the text; a list of a million domains is some 20 to 30 MB, and this
    /// leaves room for the largest public block lists.
    public static let listFileBytes = 256 << 20

    /// One line of any of these files. A policy line is a `key: value`, a list line a domain
    /// (at most 253 characters); a longer line is a file that is not what it claims to be, or
    /// a list meant to be split over several lines (`address:`, `tags:` and the `match-` keys
    /// may be repeated). Diagnostics quote the line they point into, which stays readable.
    public static let lineBytes = 64 << 10

    /// `bytes` in the units a limit is given in: "64 MiB", "100.3 MiB", "12 bytes". Tenths are
    /// rounded up, so that a size one byte over a limit never reads as the limit itself.
    public static func text(bytes: Int) -> String {
        func scaled(_ unit: Int, _ name: String) -> String {
            if bytes % unit == 0 { return "\(bytes / unit) \(name)" }
            let tenths = (bytes * 10 + unit - 1) / unit
            return "\(tenths / 10).\(tenths % 10) \(name)"
        }
        if bytes >= 1 << 30 { return scaled(1 << 30, "GiB") }
        if bytes >= 1 << 20 { return scaled(1 << 20, "MiB") }
        if bytes >= 1 << 10 { return scaled(1 << 10, "KiB") }
        return bytes == 1 ? "1 byte" : "\(bytes) bytes"
    }
}
