internal import CLinux

/// Large blocks (a compiled sender map, a big netlink batch) get their own mappings,
/// returned to the kernel when freed. glibc otherwise raises this threshold to the size of
/// the largest block freed so far and serves later ones from its heap, which keeps the
/// freed space resident at the peak of a large apply.
public enum MemoryTuning {
    public static func returnLargeBlocks() {
        _ = mallopt(M_MMAP_THRESHOLD, 256 << 10)
    }
}
