import Compiler
import Foundation

/// One applied generation as recorded in the state directory.
public struct GenerationInfo: Codable, Sendable, Equatable {
    public var number: Int
    public var appliedAt: Date
    public var system: String
    public var policyDirectory: String
    /// The kernel's handle of enforcer's table after the apply: a delta is only computed
    /// against a table that is still the one enforcer left (not deleted and re-created).
    public var tableHandle: UInt64?
    /// The network namespace (inode of /proc/self/ns/net) the table lives in.
    public var networkNamespace: UInt64?
    public var summary: String

    /// The inode of this process's network namespace.
    public static func currentNetworkNamespace() -> UInt64? {
        // The link reads "net:[4026531840]".
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net") else { return nil }
        return UInt64(link.filter(\.isNumber))
    }
}

public struct StateError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Applied generations under the state directory (default /var/lib/enforcer):
///
///     current                      number of the generation live now
///     generations/000042/info.json GenerationInfo
///     generations/000042/table.json the table without set elements
///     generations/000042/elements.bin the elements of every set (binary)
///     generations/000042/recent.json  sender elements it left in <table>_recent, if any
///     generations/000042/policy/   the policy directory as it was applied
///
/// Files are written to a temporary name and renamed into place, so a crash leaves either
/// the old or the new generation, never half of one.
public struct GenerationStore: Sendable {
    public let directory: String
    public var keep = 20

    public init(directory: String) { self.directory = directory }

    private var generationsDirectory: String { directory + "/generations" }
    private func path(of number: Int) -> String { generationsDirectory + "/" + "\(number, width: 6)" }

    /// Policy name → mark id as recorded by earlier applies (empty before the first).
    public func policyIDs() -> PolicyIDs {
        guard let data = FileManager.default.contents(atPath: directory + "/policy-ids.json"),
              let ids = try? Self.decoder.decode(PolicyIDs.self, from: data) else { return PolicyIDs() }
        return ids
    }

    public func recordPolicyIDs(_ ids: PolicyIDs) throws(StateError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Self.encoder.encode(ids).write(to: URL(fileURLWithPath: directory + "/policy-ids.json"), options: .atomic)
        } catch {
            throw StateError(description: "cannot write \(directory)/policy-ids.json: \(SystemErrno.describe(error))")
        }
    }

    public func currentNumber() -> Int? {
        guard let text = try? String(contentsOfFile: directory + "/current", encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    public func numbers() -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: generationsDirectory)) ?? []).compactMap(Int.init).sorted()
    }

    public func info(_ number: Int) throws(StateError) -> GenerationInfo {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path(of: number) + "/info.json"))
            return try Self.decoder.decode(GenerationInfo.self, from: data)
        } catch {
            throw StateError(description: "generation \(number): cannot read \(path(of: number))/info.json: \(SystemErrno.describe(error))")
        }
    }

    /// The generation this process recorded last, per state directory: `enforcer run`
    /// applies again and again, and reading a large generation back from disk costs time
    /// and a copy of memory that the daemon already holds.
    private struct Recorded {
        var info: GenerationInfo
        var ruleset: Ruleset
    }
    nonisolated(unsafe) private static var recorded: [String: Recorded] = [:]
    private static let recordedLock = NSLock()

    /// The ruleset a generation put into the kernel.
    public func ruleset(_ number: Int) throws(StateError) -> Ruleset {
        let base = path(of: number)
        let memo = Self.recordedLock.withLock { Self.recorded[directory] }
        // Only while the generation on disk is the one recorded (a state directory wiped and
        // used again would reuse its numbers).
        if let memo, memo.info.number == number, let info = try? self.info(number), info.system == memo.info.system,
           info.summary == memo.info.summary, info.tableHandle == memo.info.tableHandle,
           abs(info.appliedAt.timeIntervalSince(memo.info.appliedAt)) < 1 {
            return memo.ruleset
        }
        var table = try self.table(number)
        do {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: base + "/elements.bin")))
            guard let elements = ElementCodec.decode(bytes) else {
                throw StateError(description: "generation \(number): \(base)/elements.bin is damaged")
            }
            for index in table.sets.indices { table.sets[index].elements = elements[table.sets[index].name] ?? [] }
            return Ruleset(table: table)
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError(description: "generation \(number): cannot read \(base)/elements.bin: \(SystemErrno.describe(error))")
        }
    }

    /// The table a generation put into the kernel without its set elements: its sets and
    /// chains by name and role, read without the elements a large generation holds.
    public func table(_ number: Int) throws(StateError) -> Table {
        let base = path(of: number)
        do {
            return try Self.decoder.decode(Table.self, from: Data(contentsOf: URL(fileURLWithPath: base + "/table.json")))
        } catch {
            throw StateError(description: "generation \(number): cannot read \(base)/table.json: \(SystemErrno.describe(error))")
        }
    }

    /// The sender elements that generation `number` left in the recent table (see
    /// `RecentTable`), by map name; empty when it left none.
    public func recent(_ number: Int) -> [String: [SetElement]] {
        let file = path(of: number) + "/recent.json"
        guard let data = FileManager.default.contents(atPath: file),
              let recent = try? Self.decoder.decode([String: [SetElement]].self, from: data) else { return [:] }
        return recent
    }

    /// A generation written to a staging directory, not yet in place: `record(_:info:)`
    /// puts it there and makes it current, `discard` removes it. Staging needs only the
    /// ruleset, so it runs while the kernel works through the transaction that loads it.
    public struct Staged: Sendable {
        public let number: Int
        fileprivate let directory: String
        fileprivate let ruleset: Ruleset
        fileprivate let failure: StateError?
    }

    /// Writes everything of generation `number` but its info and recent senders to a
    /// staging directory (so it can start before a delta says what goes to the recent table).
    public func stage(_ ruleset: Ruleset, number: Int, policySource: String?) -> Staged {
        var skeleton = ruleset.table
        var elements: [String: SetElements] = [:]
        for index in skeleton.sets.indices {
            elements[skeleton.sets[index].name] = skeleton.sets[index].elements
            skeleton.sets[index].elements = []
        }
        let fm = FileManager.default
        let staging = generationsDirectory + "/.staging-\(number)-\(getpid())-\(UUID().uuidString.prefix(8))"
        do {
            try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
            try Self.encoder.encode(skeleton).write(to: URL(fileURLWithPath: staging + "/table.json"))
            try Data(ElementCodec.encode(elements)).write(to: URL(fileURLWithPath: staging + "/elements.bin"))
            if let policySource, fm.fileExists(atPath: policySource) {
                try Self.copyPrivately(from: policySource, to: staging + "/policy")
            }
            return Staged(number: number, directory: staging, ruleset: ruleset, failure: nil)
        } catch {
            try? fm.removeItem(atPath: staging)
            let failure = StateError(description: "cannot record generation \(number) in \(directory): \(SystemErrno.describe(error))")
            return Staged(number: number, directory: staging, ruleset: ruleset, failure: failure)
        }
    }

    /// Puts a staged generation in place with its info and the senders it leaves in the
    /// recent table, and makes it current.
    public func record(_ staged: Staged, info: GenerationInfo, recent: [String: [SetElement]] = [:]) throws(StateError) {
        precondition(staged.number == info.number, "generation \(info.number) recorded from the staging of \(staged.number)")
        if let failure = staged.failure { throw failure }
        let fm = FileManager.default
        let final = path(of: info.number)
        do {
            if recent.values.contains(where: { !$0.isEmpty }) {
                try Self.encoder.encode(recent).write(to: URL(fileURLWithPath: staged.directory + "/recent.json"))
            }
            try Self.encoder.encode(info).write(to: URL(fileURLWithPath: staged.directory + "/info.json"))
            if fm.fileExists(atPath: final) { try fm.removeItem(atPath: final) }
            try fm.moveItem(atPath: staged.directory, toPath: final)
            try setCurrent(info.number)
            Self.recordedLock.withLock { Self.recorded[directory] = Recorded(info: info, ruleset: staged.ruleset) }
        } catch let error as StateError {
            discard(staged)
            throw error
        } catch {
            discard(staged)
            throw StateError(description: "cannot record generation \(info.number) in \(directory): \(SystemErrno.describe(error))")
        }
        prune()
    }

    /// Removes a staged generation that will not be recorded (its transaction was refused).
    public func discard(_ staged: Staged) {
        try? FileManager.default.removeItem(atPath: staged.directory)
    }

    /// Records a generation and makes it current.
    public func record(_ ruleset: Ruleset, info: GenerationInfo, policySource: String?, recent: [String: [SetElement]] = [:]) throws(StateError) {
        try record(stage(ruleset, number: info.number, policySource: policySource), info: info, recent: recent)
    }

    public func setCurrent(_ number: Int?) throws(StateError) {
        let target = directory + "/current"
        do {
            guard let number else {
                if FileManager.default.fileExists(atPath: target) { try FileManager.default.removeItem(atPath: target) }
                return
            }
            let temporary = directory + "/.current-\(getpid())"
            try "\(number)\n".write(toFile: temporary, atomically: false, encoding: .utf8)
            guard rename(temporary, target) == 0 else { throw StateError(description: "cannot replace \(target): \(SystemErrno(errno))") }
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError(description: "cannot write \(target): \(SystemErrno.describe(error))")
        }
    }

    /// Oldest generations beyond `keep` go, never the current one; so does the staging of
    /// processes that are gone.
    private func prune() {
        // Staging left by a process that died before it recorded (".staging-NUMBER-PID-…").
        for name in (try? FileManager.default.contentsOfDirectory(atPath: generationsDirectory)) ?? [] where name.hasPrefix(".staging-") {
            let fields = name.split(separator: "-")
            if fields.count >= 3, let pid = Int32(fields[2]), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(atPath: generationsDirectory + "/" + name)
            }
        }
        let current = currentNumber()
        let all = numbers()
        guard all.count > keep else { return }
        for number in all.prefix(all.count - keep) where number != current {
            try? FileManager.default.removeItem(atPath: path(of: number))
        }
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601Text()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601Text
        return decoder
    }
}

/// A compact binary form of set elements (a generation can hold millions of them).
///
/// `ENFS2` (written): per set its name and either a list of elements or, for elements stored
/// by column (`HostColumns`), the family, the distinct verdicts, then every address and
/// every verdict number end to end. `ENFS1` (read only, from older generations): a list for
/// every set. Integers are little-endian.
enum ElementCodec {
    static let magic = Array("ENFS2".utf8)
    static let listMagic = Array("ENFS1".utf8)

    static func encode(_ sets: [String: SetElements]) -> [UInt8] {
        var out = magic
        func u8(_ v: UInt8) { out.append(v) }
        func u16(_ v: UInt16) { out.append(UInt8(truncatingIfNeeded: v)); out.append(UInt8(truncatingIfNeeded: v >> 8)) }
        func u32(_ v: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> shift)) } }
        func u128(_ v: UInt128) { for shift in stride(from: 0, to: 128, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> shift)) } }
        func string(_ s: String?) {
            guard let s else { u32(.max); return }
            u32(UInt32(s.utf8.count))
            out += s.utf8
        }
        func verdict(_ verdict: Verdict?) {
            switch verdict {
            case nil: u8(0)
            case .accept?: u8(1)
            case .drop?: u8(2)
            case .return?: u8(3)
            case .jump(let chain)?: u8(4); string(chain)
            case .goto(let chain)?: u8(5); string(chain)
            }
        }
        u32(UInt32(sets.count))
        for (name, elements) in sets.sorted(by: { $0.key < $1.key }) {
            string(name)
            if let hosts = elements.hostColumns {
                u8(1)
                u8(hosts.family == .v4 ? 4 : 6)
                u32(UInt32(hosts.verdicts.count))
                for each in hosts.verdicts { verdict(each) }
                u32(UInt32(hosts.count))
                out.reserveCapacity(out.count + hosts.words.count * 4 + hosts.count * 2)
                for word in hosts.words { u32(word) }
                for number in hosts.verdictIndex { u16(number) }
                continue
            }
            u8(0)
            u32(UInt32(elements.count))
            for element in elements {
                u8(UInt8(element.key.count))
                for part in element.key {
                    switch part {
                    case .addresses(let range):
                        u8(range.family == .v4 ? 4 : 6)
                        u128(range.first.value)
                        u128(range.last.value)
                    case .proto(let proto): u8(1); u8(proto.rawValue)
                    case .ports(let ports): u8(2); u16(ports.first); u16(ports.last)
                    case .mark(let mark): u8(3); u32(mark)
                    }
                }
                verdict(element.verdict)
                u32(element.timeout.map { UInt32(clamping: $0) } ?? .max)
                string(element.comment)
            }
        }
        return out
    }

    static func decode(_ input: [UInt8]) -> [String: SetElements]? {
        guard input.count >= magic.count else { return nil }
        let head = Array(input[0..<magic.count])
        guard head == magic || head == listMagic else { return nil }
        let columns = head == magic
        var offset = magic.count
        func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, offset + n <= input.count else { return nil }
            defer { offset += n }
            return input[offset..<(offset + n)]
        }
        func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
            take(MemoryLayout<T>.size).map { bytes in bytes.reversed().reduce(T(0)) { $0 << 8 | T($1) } }
        }
        func string() -> String?? {
            guard let count = integer(UInt32.self) else { return nil }
            if count == .max { return .some(nil) }
            guard let bytes = take(Int(count)) else { return nil }
            return .some(String(decoding: bytes, as: UTF8.self))
        }
        func verdict() -> Verdict?? {
            switch integer(UInt8.self) {
            case 0?: return .some(nil)
            case 1?: return .accept
            case 2?: return .drop
            case 3?: return .return
            case 4?: guard let chain = string(), let chain else { return nil }; return .jump(chain)
            case 5?: guard let chain = string(), let chain else { return nil }; return .goto(chain)
            default: return nil
            }
        }
        func hosts() -> SetElements? {
            guard let familyByte = integer(UInt8.self), familyByte == 4 || familyByte == 6,
                  let verdictCount = integer(UInt32.self), verdictCount <= 65536 else { return nil }
            var verdicts: [Verdict?] = []
            for _ in 0..<verdictCount {
                guard let each = verdict() else { return nil }
                verdicts.append(each)
            }
            guard let count = integer(UInt32.self).map(Int.init) else { return nil }
            let perAddress = familyByte == 4 ? 1 : 4
            guard let wordBytes = take(count * perAddress * 4), let indexBytes = take(count * 2) else { return nil }
            var words = [UInt32](repeating: 0, count: count * perAddress)
            var at = wordBytes.startIndex
            for i in words.indices {
                words[i] = UInt32(wordBytes[at]) | UInt32(wordBytes[at + 1]) << 8 | UInt32(wordBytes[at + 2]) << 16 | UInt32(wordBytes[at + 3]) << 24
                at += 4
            }
            var index = [UInt16](repeating: 0, count: count)
            at = indexBytes.startIndex
            for i in index.indices {
                index[i] = UInt16(indexBytes[at]) | UInt16(indexBytes[at + 1]) << 8
                at += 2
            }
            return SetElements(family: familyByte == 4 ? .v4 : .v6, words: words, verdicts: verdicts, verdictIndex: index)
        }
        guard let setCount = integer(UInt32.self) else { return nil }
        var sets: [String: SetElements] = [:]
        for _ in 0..<setCount {
            guard let name = string(), let name else { return nil }
            if columns {
                switch integer(UInt8.self) {
                case 1?:
                    guard let elements = hosts() else { return nil }
                    sets[name] = elements
                    continue
                case 0?: break
                default: return nil
                }
            }
            guard let count = integer(UInt32.self) else { return nil }
            var elements = SetElements()
            for _ in 0..<count {
                guard let parts = integer(UInt8.self) else { return nil }
                var key: [KeyPart] = []
                for _ in 0..<parts {
                    switch integer(UInt8.self) {
                    case 4?, 6?:
                        let v4 = input[offset - 1] == 4
                        guard let first = integer(UInt128.self), let last = integer(UInt128.self), first <= last,
                              !v4 || last <= UInt128(UInt32.max) else { return nil }
                        func address(_ value: UInt128) -> IPAddress { v4 ? IPAddress(v4: UInt32(value)) : IPAddress(v6: value) }
                        key.append(.addresses(AddressRange(first: address(first), last: address(last))))
                    case 1?:
                        guard let raw = integer(UInt8.self), let proto = IPProtocol(rawValue: raw) else { return nil }
                        key.append(.proto(proto))
                    case 2?:
                        guard let first = integer(UInt16.self), let last = integer(UInt16.self), first <= last else { return nil }
                        key.append(.ports(PortRange(first: first, last: last)))
                    case 3?:
                        guard let mark = integer(UInt32.self) else { return nil }
                        key.append(.mark(mark))
                    default: return nil
                    }
                }
                guard let verdict = verdict(), let timeout = integer(UInt32.self), let comment = string() else { return nil }
                elements.append(SetElement(key, verdict: verdict, timeout: timeout == .max ? nil : Int(timeout), comment: comment))
            }
            sets[name] = elements
        }
        return offset == input.count ? sets : nil
    }
}
