import Foundation
import Glibc
import Synchronization

/// A change the kernel announces to nf_tables listeners (`nft monitor` reads the same): an
/// object added or removed, or the end of a transaction with who committed it. Parsed from
/// the messages' bytes, so a test feeds it bytes.
public enum NFTEvent: Equatable, Sendable {
    public enum Object: Equatable, Sendable {
        case table
        /// `policy`: the base chain's verdict for packets no rule decides (accept 1, drop 0).
        case chain(String, policy: UInt32?)
        case rule(chain: String)
        case set(String)
        case elements(set: String)
        case object(String)
        case flowtable(String)
    }

    /// An object of table `table` (family number `family`) added (or changed) or removed.
    case changed(family: UInt8, table: String, object: Object, added: Bool)
    /// A transaction ended: the ruleset's new generation, and the process that committed it.
    case committed(generation: UInt32, pid: UInt32, process: String)

    /// What changed, in words: "rule added to chain input", "table removed".
    public var words: String {
        switch self {
        case .committed(let generation, let pid, let process): return "ruleset generation \(generation) committed by \(process) (pid \(pid))"
        case .changed(_, _, let object, let added):
            let verb = added ? "added" : "removed"
            switch object {
            case .table: return "table \(added ? "added" : "deleted")"
            case .chain(let name, let policy):
                if added, let policy { return "chain \(name) set with policy \(policy == 1 ? "accept" : policy == 0 ? "drop" : String(policy))" }
                return "chain \(name) \(verb)"
            case .rule(let chain): return "rule \(verb) \(added ? "to" : "from") chain \(chain)"
            case .set(let name): return "set \(name) \(verb)"
            case .elements(let set): return "element\(added ? "s added to" : "s removed from") set \(set)"
            case .object(let name): return "object \(name) \(verb)"
            case .flowtable(let name): return "flowtable \(name) \(verb)"
            }
        }
    }

    /// The events in one datagram of the nf_tables multicast group; messages of other kinds
    /// are skipped.
    public static func parse(_ bytes: [UInt8]) -> [NFTEvent] {
        var events: [NFTEvent] = []
        var offset = 0
        while offset + 20 <= bytes.count {
            let length = Int(NetlinkReply.u32(bytes, offset))
            guard length >= 20, offset + length <= bytes.count else { break }
            let type = NetlinkReply.u16(bytes, offset + 4)
            // The nfgenmsg after the header: family, version, resource id.
            let family = bytes[offset + 16]
            let attributes = NetlinkReply.attributes(bytes, from: offset + 20, to: offset + length)
            if type >> 8 == subsystem, let event = event(message: UInt8(type & 0xff), family: family, attributes) {
                events.append(event)
            }
            offset += (length + 3) & ~3
        }
        return events
    }

    /// NFNL_SUBSYS_NFTABLES.
    static let subsystem: UInt16 = 10

    private static func event(message: UInt8, family: UInt8, _ attributes: [(UInt16, [UInt8])]) -> NFTEvent? {
        func string(_ number: UInt16) -> String? {
            attributes.first { $0.0 == number }.map { String(decoding: $0.1.prefix { $0 != 0 }, as: UTF8.self) }
        }
        // Netlink attributes of nf_tables are big-endian.
        func u32(_ number: UInt16) -> UInt32? {
            attributes.first { $0.0 == number && $0.1.count == 4 }.map { $0.1.reduce(0) { $0 << 8 | UInt32($1) } }
        }
        // Message numbers of enum nf_tables_msg_types; in every kind, attribute 1 is the table.
        switch message {
        case 15:  // NEWGEN: NFTA_GEN_ID 1, NFTA_GEN_PROC_PID 2, NFTA_GEN_PROC_NAME 3
            return .committed(generation: u32(1) ?? 0, pid: u32(2) ?? 0, process: string(3) ?? "?")
        case 0, 2:  // NEWTABLE, DELTABLE: NFTA_TABLE_NAME 1
            return string(1).map { .changed(family: family, table: $0, object: .table, added: message == 0) }
        case 3, 5:  // NEWCHAIN, DELCHAIN: NFTA_CHAIN_NAME 3, NFTA_CHAIN_POLICY 5
            guard let table = string(1) else { return nil }
            return .changed(family: family, table: table, object: .chain(string(3) ?? "?", policy: u32(5)), added: message == 3)
        case 6, 8:  // NEWRULE, DELRULE: NFTA_RULE_CHAIN 2
            guard let table = string(1) else { return nil }
            return .changed(family: family, table: table, object: .rule(chain: string(2) ?? "?"), added: message == 6)
        case 9, 11:  // NEWSET, DELSET: NFTA_SET_NAME 2
            guard let table = string(1) else { return nil }
            return .changed(family: family, table: table, object: .set(string(2) ?? "?"), added: message == 9)
        case 12, 14:  // NEWSETELEM, DELSETELEM: NFTA_SET_ELEM_LIST_SET 2
            guard let table = string(1) else { return nil }
            return .changed(family: family, table: table, object: .elements(set: string(2) ?? "?"), added: message == 12)
        case 18, 20:  // NEWOBJ, DELOBJ: NFTA_OBJ_NAME 2
            guard let table = string(1) else { return nil }
            return .changed(family: family, table: table, object: .object(string(2) ?? "?"), added: message == 18)
        case 22, 24:  // NEWFLOWTABLE, DELFLOWTABLE: NFTA_FLOWTABLE_NAME 2
            guard let table = string(1) else { return nil }
            return .changed(family: family, table: table, object: .flowtable(string(2) ?? "?"), added: message == 22)
        default:
            return nil
        }
    }
}

/// Listens to every nf_tables change in this network namespace (the multicast group
/// `nft monitor` joins). The caller polls `fileDescriptor` and reads with `events()`.
///
/// While a listener is there, the kernel writes a notice for every element a transaction
/// adds or removes: a million-element replacement by enforcer itself then took its kernel
/// several times as long (bench/README.md, "Nobody listening to enforcer's own large
/// transactions"). So this process's large commits (`NFTablesConnection.commit`) leave the
/// group while the kernel takes them, and count the commits made meanwhile: any but their
/// own are reported (`takeMissed`), as an overflow of notices is.
public final class NFTablesMonitor {
    private let socket: NetlinkSocket
    private let namespace: UInt64?
    /// NFNLGRP_NFTABLES.
    private static let group: Int32 = 7

    public init() throws(KernelError) {
        // Bit 6 of the bind mask is group 7.
        do { socket = try NetlinkSocket(groups: 1 << (Self.group - 1)) } catch { throw .socket(error) }
        // Room for the notices of a large transaction (one per element added): when it
        // overflows anyway, `events` says so and the caller must assume the worst.
        socket.setBuffers(send: 1 << 16, receive: 32 << 20)
        namespace = socket.namespace
        Self.registryLock.withLock {
            Self.registry.removeAll { $0.monitor == nil }
            Self.registry.append(Weak(monitor: self))
        }
    }

    private struct Weak { weak var monitor: NFTablesMonitor? }
    /// Every monitor of this process, under `registryLock`.
    nonisolated(unsafe) private static var registry: [Weak] = []
    private static let registryLock = NSLock()

    /// This process's monitor of network namespace `namespace` (a socket's), if any.
    static func listening(in namespace: UInt64?) -> NFTablesMonitor? {
        guard let namespace else { return nil }
        return registryLock.withLock { registry.lazy.compactMap(\.monitor).first { $0.namespace == namespace } }
    }

    /// Commits by other processes that a pause may have hidden: "from → to" generations.
    private let missed = Mutex<(from: UInt32, to: UInt32)?>(nil)

    /// Stops listening, for one of this process's own large commits.
    func pause() { try? socket.membership(of: Self.group, joined: false) }

    /// Listens again after a pause, from which the ruleset went from generation `from` to
    /// `to` while `own` of those commits were this process's.
    func resume(from: UInt32?, to: UInt32?, own: UInt32) {
        let rejoined = (try? socket.membership(of: Self.group, joined: true)) != nil
        if let from, let to, rejoined, to &- from == own { return }
        missed.withLock { $0 = (from ?? 0, to ?? 0) }
    }

    /// Whether commits by other processes may have gone unseen during a pause (their
    /// generations), once: the caller must then assume the worst, as for an overflow.
    public func takeMissed() -> (from: UInt32, to: UInt32)? {
        missed.withLock { value in defer { value = nil }; return value }
    }

    /// Whether `takeMissed` has something to say.
    public var hasMissed: Bool { missed.withLock { $0 != nil } }

    public var fileDescriptor: Int32 { socket.fileDescriptor }

    /// Everything waiting now. `overflowed`: the kernel dropped notices (ENOBUFS), so
    /// changes may have gone unseen.
    public func events() -> (events: [NFTEvent], overflowed: Bool) {
        var events: [NFTEvent] = []
        var overflowed = false
        while true {
            do {
                guard let datagram = try socket.receiveNow() else { break }
                events += NFTEvent.parse(datagram)
            } catch {
                if error.errno == ENOBUFS { overflowed = true; continue }
                break
            }
        }
        return (events, overflowed)
    }
}
