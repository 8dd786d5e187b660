import Compiler
import Foundation

/// The records of enrolment in the store, as JSON (see `FleetLayout` for their keys).
public enum Enrolment {
    /// What administrators wrote about one enrolled system (`desired/enrolled/<slot>`): the
    /// tags of the key it was enrolled with, as `fleet tag` changed them since.
    public struct Grant: Codable, Sendable, Equatable {
        public var slot: String
        public var key: String
        public var tags: [String]
        /// When the system stops being one (nil: never): the key's `--system-expires`.
        public var expires: String?
        public var createdBy: String
    }

    /// What a host says of itself (`desired/members/<slot>`, under its lease): its name and
    /// the addresses of its interfaces. Everything in it is the host's word, and checked as such.
    public struct Member: Codable, Sendable, Equatable {
        public var name: String
        public var addresses: [String]
        public var updatedAt: String
    }

    /// An enrolment key (`keys/<id>`), for `fleet key list`.
    public struct Key: Codable, Sendable, Equatable {
        public var id: String
        public var tags: [String]
        public var uses: Int
        public var expires: String?
        public var createdBy: String
        public var createdAt: String
        /// When the systems it enrols stop being systems (`--system-expires`), nil: never.
        public var systemsExpire: String?
    }

    /// An enrolment not yet used (`slots/<id>/<n>`): the etcd user the host that claims it
    /// will be. Readable only with the key's own credentials.
    public struct Slot: Codable, Sendable, Equatable {
        public var slot: String
        public var user: String
        public var password: String
    }

    /// What an enrolled host keeps in its state directory (mode 0600): who it is in the store.
    public struct Credentials: Codable, Sendable, Equatable {
        public var fleet: String
        public var slot: String
        public var user: String
        public var password: String
        public var name: String
    }

    /// Names of systems and tags that enrolment writes into policy text: the characters of
    /// an unquoted name, starting with a letter or digit, at most 63 of them. A host's word
    /// is never written into a policy file unless it passes this.
    public static func isPlainName(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 63, isLetterOrDigit(first) else { return false }
        return name.utf8.allSatisfy { isLetterOrDigit($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// Whether an interface address can name a host to other hosts: not loopback,
    /// unspecified, link-local or multicast.
    public static func isReachable(_ address: IPAddress) -> Bool {
        let value = address.value
        switch address.family {
        case .v4:
            let first = value >> 24
            return value != 0 && first != 127 && value >> 16 != 0xA9FE && first < 224
        case .v6:
            return value != 0 && value != 1 && value >> 118 != 0x3FA && value >> 120 != 0xFF
        }
    }
}

/// The enrolled systems as an agent knows them from its watch of `desired/`, and the policy
/// file it writes from them into its mirror (`StoreMirror.enrolledFile`). The daemon then
/// loads that file with the pushed ones: an enrolled system is a `[system]` block like any
/// other, so it is checked, compiled and applied as a delta the same way.
///
/// A system is written when an administrator's grant and the host's member record are both
/// there, its name is plain and not taken (by a pushed system, or an earlier enrolment), it
/// has a reachable address, and it has not expired. When its member record goes (the host's
/// lease ran out), it stays for the grace, so a host that restarts does not flap.
public struct EnrolledSystems: Sendable, Equatable {
    public var grants: [String: Enrolment.Grant] = [:]
    public var members: [String: Enrolment.Member] = [:]
    /// Slots whose member record went away, and when.
    public var departed: [String: Departure] = [:]

    public struct Departure: Sendable, Equatable {
        public var member: Enrolment.Member
        public var at: Date
    }

    public init() {}

    /// A put or delete of a key under `desired/enrolled/` or `desired/members/`; other keys
    /// are ignored. Returns whether the key was one of these.
    @discardableResult
    public mutating func take(key: String, value: Data?, layout: FleetLayout, at instant: Date = Date()) -> Bool {
        if key.hasPrefix(layout.enrolledPrefix) {
            let slot = String(key.dropFirst(layout.enrolledPrefix.count))
            grants[slot] = value.flatMap { try? FleetStore.jsonDecoder.decode(Enrolment.Grant.self, from: $0) }
            return true
        }
        if key.hasPrefix(layout.memberPrefix) {
            let slot = String(key.dropFirst(layout.memberPrefix.count))
            if let value, let member = try? FleetStore.jsonDecoder.decode(Enrolment.Member.self, from: value) {
                members[slot] = member
                departed[slot] = nil
            } else if let gone = members.removeValue(forKey: slot) {
                departed[slot] = Departure(member: gone, at: instant)
            }
            return true
        }
        return false
    }

    /// What `render` wrote, and what it left out and why.
    public struct Rendering: Sendable, Equatable {
        public var text: String
        /// The systems written, by name: their addresses and tags, to tell what changed.
        public var systems: [String: String]
        public var problems: [String]
        /// The next instant at which the file changes by time alone (a grace or an expiry ends).
        public var next: Date?
    }

    /// The policy file of the enrolled systems at `now`. `taken`: the names of the systems
    /// the pushed policy defines.
    public func render(taken: Set<String>, now: Date, grace: TimeInterval) -> Rendering {
        var problems: [String] = []
        var next: Date?
        func later(_ instant: Date) { next = min(next ?? instant, instant) }
        var present: [(slot: String, member: Enrolment.Member)] = members.map { ($0.key, $0.value) }
        for (slot, departure) in departed {
            let end = departure.at.addingTimeInterval(grace)
            if end > now { present.append((slot, departure.member)); later(end) }
        }
        // Slots are "<key>-<n>", and the earlier enrolment keeps a contested name.
        present.sort { ($0.slot.count, $0.slot) < ($1.slot.count, $1.slot) }
        var written: [String: (addresses: [String], tags: [String], slot: String, expires: String?)] = [:]
        for (slot, member) in present {
            guard let grant = grants[slot] else { continue }
            // Written with the system: every receiver's daemon drops it at that instant by its
            // own clock and cuts the connections it opened, as for a `[system]` block's `expires:`.
            let expires = grant.expires.flatMap(ISO8601.date)
            if let expires, expires <= now { problems.append("enrolled system \(member.name) (slot \(slot)) expired at \(grant.expires!)") }
            guard Enrolment.isPlainName(member.name) else {
                problems.append("enrolled system of slot \(slot) left out: its name is not a plain name (letters, digits, '.', '_', '-')")
                continue
            }
            if taken.contains(member.name) || written[member.name] != nil {
                problems.append("enrolled system \(member.name) (slot \(slot)) left out: the name is taken by \(written[member.name].map { "slot \($0.slot)" } ?? "a system of the pushed policy")")
                continue
            }
            var seen = Set<IPAddress>()
            let addresses = member.addresses.compactMap { try? IPAddress.parse($0) }.filter { Enrolment.isReachable($0) && seen.insert($0).inserted }.sorted()
            guard !addresses.isEmpty else {
                problems.append("enrolled system \(member.name) (slot \(slot)) left out: it reported no address another host can reach")
                continue
            }
            let tags = grant.tags.filter(Enrolment.isPlainName)
            written[member.name] = (addresses.map(\.description), tags, slot, expires.map { ISO8601.string($0) })
        }
        var text = "# The fleet's enrolled systems, written by enforcer's agent from the store: not a file to edit.\n"
        var systems: [String: String] = [:]
        for name in written.keys.sorted() {
            let system = written[name]!
            let addresses = system.addresses.joined(separator: ", "), tags = system.tags.joined(separator: ", ")
            text += "[system] \(name): {\n    address: \(addresses)\n" + (tags.isEmpty ? "" : "    tags: \(tags)\n")
                + (system.expires.map { "    expires: \($0)\n" } ?? "") + "}\n"
            systems[name] = "addresses \(addresses); tags \(tags.isEmpty ? "none" : tags)" + (system.expires.map { "; expires \($0)" } ?? "")
        }
        return Rendering(text: text, systems: systems, problems: problems, next: next)
    }

    /// "app-1 added, web-2 removed, db-3 changed": what differs between two renderings.
    public static func changes(from old: [String: String], to new: [String: String]) -> String {
        var words: [String] = []
        for name in Set(old.keys).union(new.keys).sorted() {
            switch (old[name], new[name]) {
            case (nil, _?): words.append("\(name) added")
            case (_?, nil): words.append("\(name) removed")
            case (let a?, let b?) where a != b: words.append("\(name) changed")
            default: continue
            }
        }
        return words.isEmpty ? "no change" : words.joined(separator: ", ")
    }

    /// The names of the systems that policy files define (`[system] NAME:` at a line's
    /// start), without parsing them: what an enrolled system's name must not be.
    public static func definedNames(in files: [Data]) -> Set<String> {
        var names = Set<String>()
        let marker = Array("[system]".utf8)
        func blank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        for file in files {
            // Bytes, not strings: a pushed file of systems can be megabytes of addresses, and
            // only the few bytes of each name become a string.
            let bytes = [UInt8](file)
            var start = 0
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
                var at = start
                while at < end && blank(bytes[at]) { at += 1 }
                if end - at > marker.count && bytes[at..<at + marker.count].elementsEqual(marker) {
                    at += marker.count
                    while at < end && blank(bytes[at]) { at += 1 }
                    var name: ArraySlice<UInt8>
                    if at < end && bytes[at] == 0x22 {
                        // A quoted name runs to the next quote, ':' and all (`[system] "ops: on-call":`).
                        name = bytes[(at + 1)..<end]
                        name = name.prefix { $0 != 0x22 }
                    } else {
                        name = bytes[at..<end].prefix { $0 != 0x3A && $0 != 0x7B }
                        while let last = name.last, blank(last) || last == 0x0D { name = name.dropLast() }
                    }
                    if !name.isEmpty { names.insert(String(decoding: name, as: UTF8.self)) }
                }
                start = end + 1
            }
        }
        return names
    }
}
