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
///     generations/000042/elements.bin the kernel elements of every set
///     generations/000042/policy/   the policy directory as it was applied
///
/// Files are written to a temporary name and renamed into place, so a crash leaves either
/// the old or the new generation, never half of one.
public struct GenerationStore: Sendable {
    public let directory: String
    public var keep = 20

    public init(directory: String) { self.directory = directory }

    private var generationsDirectory: String { directory + "/generations" }
    private func path(of number: Int) -> String { generationsDirectory + "/" + String(format: "%06d", number) }

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
            throw StateError(description: "cannot write \(directory)/policy-ids.json: \(error.localizedDescription)")
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
            throw StateError(description: "generation \(number): cannot read \(path(of: number))/info.json: \(error.localizedDescription)")
        }
    }

    public func snapshot(_ number: Int) throws(StateError) -> Snapshot {
        let base = path(of: number)
        do {
            let table = try Self.decoder.decode(Table.self, from: Data(contentsOf: URL(fileURLWithPath: base + "/table.json")))
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: base + "/elements.bin")))
            guard let elements = ElementCodec.decode(bytes) else {
                throw StateError(description: "generation \(number): \(base)/elements.bin is damaged")
            }
            return Snapshot(table: table, elements: elements)
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError(description: "generation \(number): cannot read \(base): \(error.localizedDescription)")
        }
    }

    /// Records a generation and makes it current.
    public func record(_ snapshot: Snapshot, info: GenerationInfo, policySource: String?) throws(StateError) {
        let fm = FileManager.default
        let final = path(of: info.number)
        let staging = generationsDirectory + "/.staging-\(info.number)-\(getpid())"
        do {
            try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
            try Self.encoder.encode(info).write(to: URL(fileURLWithPath: staging + "/info.json"))
            try Self.encoder.encode(snapshot.table).write(to: URL(fileURLWithPath: staging + "/table.json"))
            try Data(ElementCodec.encode(snapshot.elements)).write(to: URL(fileURLWithPath: staging + "/elements.bin"))
            if let policySource, fm.fileExists(atPath: policySource) {
                try fm.copyItem(atPath: policySource, toPath: staging + "/policy")
            }
            if fm.fileExists(atPath: final) { try fm.removeItem(atPath: final) }
            try fm.moveItem(atPath: staging, toPath: final)
            try setCurrent(info.number)
        } catch let error as StateError {
            try? fm.removeItem(atPath: staging)
            throw error
        } catch {
            try? fm.removeItem(atPath: staging)
            throw StateError(description: "cannot record generation \(info.number) in \(directory): \(error.localizedDescription)")
        }
        prune()
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
            guard rename(temporary, target) == 0 else { throw StateError(description: "cannot replace \(target): \(String(cString: strerror(errno)))") }
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError(description: "cannot write \(target): \(error.localizedDescription)")
        }
    }

    /// Oldest generations beyond `keep` go, never the current one.
    private func prune() {
        let current = currentNumber()
        let all = numbers()
        guard all.count > keep else { return }
        for number in all.prefix(all.count - keep) where number != current {
            try? FileManager.default.removeItem(atPath: path(of: number))
        }
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

/// A compact binary form of the kernel elements of every set (millions of them).
enum ElementCodec {
    static func encode(_ sets: [String: [NFTElement]]) -> [UInt8] {
        var out: [UInt8] = Array("ENFE1".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func bytes(_ b: [UInt8]) { u32(UInt32(b.count)); out += b }
        u32(UInt32(sets.count))
        for (name, elements) in sets.sorted(by: { $0.key < $1.key }) {
            bytes(Array(name.utf8))
            u32(UInt32(elements.count))
            for element in elements {
                bytes(element.key)
                if let end = element.keyEnd { out.append(1); bytes(end) } else { out.append(0) }
                u32(element.flags)
                if let verdict = element.verdict {
                    out.append(1)
                    u32(UInt32(bitPattern: verdict.code))
                    bytes(Array((verdict.chain ?? "").utf8))
                } else { out.append(0) }
                if let timeout = element.timeoutMilliseconds { out.append(1); u64(timeout) } else { out.append(0) }
                bytes(element.userData)
            }
        }
        return out
    }

    static func decode(_ input: [UInt8]) -> [String: [NFTElement]]? {
        var offset = 5
        guard input.count >= 5, Array(input[0..<5]) == Array("ENFE1".utf8) else { return nil }
        func u8() -> UInt8? {
            guard offset < input.count else { return nil }
            defer { offset += 1 }
            return input[offset]
        }
        func u32() -> UInt32? {
            guard offset + 4 <= input.count else { return nil }
            defer { offset += 4 }
            return (0..<4).reduce(UInt32(0)) { $0 | UInt32(input[offset + $1]) << (8 * $1) }
        }
        func u64() -> UInt64? {
            guard let low = u32(), let high = u32() else { return nil }
            return UInt64(low) | UInt64(high) << 32
        }
        func bytes() -> [UInt8]? {
            guard let count = u32().map(Int.init), offset + count <= input.count else { return nil }
            defer { offset += count }
            return Array(input[offset..<(offset + count)])
        }
        guard let setCount = u32() else { return nil }
        var sets: [String: [NFTElement]] = [:]
        for _ in 0..<setCount {
            guard let name = bytes(), let count = u32() else { return nil }
            var elements: [NFTElement] = []
            elements.reserveCapacity(Int(count))
            for _ in 0..<count {
                guard let key = bytes(), let hasEnd = u8() else { return nil }
                var element = NFTElement(key: key)
                if hasEnd == 1 { guard let end = bytes() else { return nil }; element.keyEnd = end }
                guard let flags = u32(), let hasVerdict = u8() else { return nil }
                element.flags = flags
                if hasVerdict == 1 {
                    guard let code = u32(), let chain = bytes() else { return nil }
                    element.verdict = NFTVerdict(code: Int32(bitPattern: code), chain: chain.isEmpty ? nil : String(decoding: chain, as: UTF8.self))
                }
                guard let hasTimeout = u8() else { return nil }
                if hasTimeout == 1 { guard let timeout = u64() else { return nil }; element.timeoutMilliseconds = timeout }
                guard let userData = bytes() else { return nil }
                element.userData = userData
                elements.append(element)
            }
            sets[String(decoding: name, as: UTF8.self)] = elements
        }
        return offset == input.count ? sets : nil
    }
}
