import Foundation

/// The service names of a services file (`/etc/services`: `ssh  22/tcp`), so a policy may
/// write `allow: ssh` for `tcp/22`. A name listed for tcp and udp (`domain`) means both;
/// entries of other protocols (sctp, ddp) are left out, as `allow` has no word for them.
public struct ServiceNames: Sendable {
    /// Where the names were read, for messages.
    public let path: String
    private var byName: [String: [Service]] = [:]

    /// The file every host has; read when a policy first uses a name.
    public static let systemPath = "/etc/services"

    /// `text` in the services file format: `name port/protocol [aliases…] [# comment]`, one
    /// entry a line. A line that does not read so is skipped, as the C library does.
    public init(parsing text: String, path: String = ServiceNames.systemPath) {
        self.path = path
        for line in text.split(whereSeparator: \.isNewline) {
            let entry = line.prefix { $0 != "#" }
            let words = entry.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2 else { continue }
            let pair = words[1].split(separator: "/")
            guard pair.count == 2, let port = UInt16(pair[0]), port > 0 else { continue }
            let range = PortRange(first: port, last: port)
            let service: Service
            switch pair[1].lowercased() {
            case "tcp": service = .tcp(range)
            case "udp": service = .udp(range)
            default: continue
            }
            for name in [words[0]] + words.dropFirst(2) {
                let key = name.lowercased()
                if !(byName[key]?.contains(service) ?? false) { byName[key, default: []].append(service) }
            }
        }
    }

    /// The file at `path`; one that cannot be read has no names (each use of one is then an
    /// error naming the file).
    public static func read(_ path: String = systemPath) -> ServiceNames {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return ServiceNames(parsing: text, path: path)
    }

    /// What `name` stands for, in the order the file lists it, or nil.
    public func services(named name: String) -> [Service]? {
        byName[name.lowercased()]
    }

    /// Every name and alias, for "did you mean".
    public var names: [String] { Array(byName.keys) }
}
