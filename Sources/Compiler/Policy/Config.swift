import Foundation

/// `enforcer.conf`: the settings that are not policy.
public struct Config: Sendable, Equatable {
    public enum TimeZoneSetting: Sendable, Hashable {
        case local, utc, named(String)
    }
    public enum FailMode: String, Sendable, Hashable { case open, closed }

    // [policy]
    public var defaultAction: WebAction = .permit
    public var timeWindowZone: TimeZoneSetting = .local
    // [kernel]
    public var table: String = "enforcer"
    /// The bits of the conntrack mark enforcer may use; everything else is left alone.
    public var markMask: UInt32 = 0x00ff_ff00
    public var queue: UInt16 = 0
    /// What the kernel does while no worker listens on the queue.
    public var queueFail: FailMode = .open
    /// Packets the kernel holds for the worker before the queue counts as full.
    public var queueMaxLength: UInt32 = 4096
    /// What the kernel does with a packet for the worker while the queue is full: drop it
    /// (TCP sends it again; a flood cannot push flows past the worker), or accept it
    /// unjudged (the worker's decisions give way to load).
    public var queueFull: FailMode = .closed
    /// New web flows (SYNs) one source address may have queued per second, after a burst
    /// of `queueSynBurst`; its excess SYNs are dropped in the kernel before the queue, so one
    /// client's flood cannot fill the queue for the others. 0: no limit.
    public var queueSynRate: UInt32 = 100
    public var queueSynBurst: UInt32 = 200
    /// Sender addresses in the hash maps from which a delta puts added senders into the
    /// small `<table>_recent` table instead: an element that jumps to a chain makes the
    /// kernel re-validate every such element of its table, so each add costs as much as the
    /// table is long, whichever tool makes it.
    public var recentFrom: Int = 65_536
    public var webPorts: [UInt16] = [80, 443]
    // [web]
    /// Verdict for flows whose first bytes cannot be parsed.
    public var webFail: FailMode = .closed
    /// Where the worker sends a client for a warn/aup page or a block page. Unless
    /// enforcer.conf sets it, a gateway's plan puts its own client-side address here
    /// (`PolicySet.resolvingPortalURL(for:)`): 127.0.0.1 would send each client to itself.
    public var portalURL: String = "http://127.0.0.1:8088/"
    /// Where enforcer.conf sets `portal_url`; nil: it does not, and the default holds.
    public var portalURLLocation: SourceLocation?
    /// Where `enforcer run` serves the portal; nil: the host and port of `portalURL`.
    public var portalListen: String?
    /// How long a client that acknowledged a warn/aup page may reach the site.
    public var acknowledgeFor: TimeInterval = 3600
    /// Which judged web flows the worker logs: every one, only those it did not permit, or none.
    public enum FlowLogging: String, Sendable, Hashable, CaseIterable { case all, deny, none }
    public var logFlows: FlowLogging = .all
    /// How long the same client, protocol, host, outcome and rule is counted instead of
    /// logged again after a line of it (0: every flow gets its line).
    public var logRepeatWindow: TimeInterval = 10
    /// A denied plain-HTTP request is redirected to the portal's block page (the rule's
    /// name and description), so the visitor learns why; false: it is only reset.
    public var denyPage = true
    public var blockQUIC: Bool? = nil
    /// What `enforcer run` does when another process changes enforcer's tables: put the
    /// live generation back, or only log and count it.
    public enum DriftAction: String, Sendable, Hashable { case restore, report }
    public var onDrift: DriftAction = .restore
    // [state]
    public var stateDirectory: String = "/var/lib/enforcer"
    // [run]
    public enum StopAction: String, Sendable, Hashable { case keep, flush }
    /// What `enforcer run` leaves in the kernel when it is stopped.
    public var onStop: StopAction = .keep
    // [metrics]
    /// Where `enforcer run` serves `GET /metrics` (OpenMetrics text): ADDRESS:PORT, loopback by
    /// default so nothing is exposed until an operator says so; nil: not served.
    public var metricsListen: String? = "127.0.0.1:9469"
    // [log]
    public enum LogLevelSetting: String, Sendable, Hashable, CaseIterable { case error, warning, info, debug }
    /// The least important lines `enforcer run` writes (`--log-level` overrides it).
    public var logLevel: LogLevelSetting = .info

    public init() {}

    /// The zone web-rule windows and policies without `timezone:` are evaluated in.
    public var defaultTimeZone: TimeZone {
        switch timeWindowZone {
        case .local: TimeZone.current
        case .utc: TimeZone(identifier: "UTC")!
        case .named(let name): TimeZone(identifier: name) ?? TimeZone(identifier: "UTC")!
        }
    }

    /// The portal's listening address (nil: any) and port: `portal_listen`, else the host
    /// and port of `portal_url` when its host is an address.
    public var portalEndpoint: (address: IPAddress?, port: UInt16) {
        if let listen = portalListen, let endpoint = Self.endpoint(listen) { return endpoint }
        let scheme = portalURL.hasPrefix("https://") ? 8 : 7
        let authority = portalURL.dropFirst(scheme).prefix { $0 != "/" && $0 != "?" }
        let defaultPort: UInt16 = scheme == 8 ? 443 : 80
        if let endpoint = Self.endpoint(String(authority)) { return endpoint }
        if let address = try? IPAddress.parse(authority.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))) { return (address, defaultPort) }
        let port = authority.split(separator: ":").last.flatMap { UInt16($0) } ?? defaultPort
        return (nil, port)
    }

    /// The portal's block page, for denied plain-HTTP requests: `blocked` beside the page of
    /// `portal_url`, as a relative link on that page would resolve (`http://10.0.0.1:8088/`
    /// → `http://10.0.0.1:8088/blocked`), its query kept.
    public var blockPageURL: String { Self.blockPageURL(portalURL: portalURL) }

    public static func blockPageURL(portalURL: String) -> String {
        let queryStart = portalURL.firstIndex(of: "?") ?? portalURL.endIndex
        let page = portalURL[..<queryStart]
        let authorityStart = page.range(of: "://")?.upperBound ?? page.startIndex
        // Everything up to the path's last slash; a URL without a path gets one.
        let directory = page[authorityStart...].contains("/") ? String(page[...page.lastIndex(of: "/")!]) : String(page) + "/"
        return directory + blockPagePath.dropFirst() + portalURL[queryStart...]
    }

    /// The block page's path on the portal's own listener.
    public static let blockPagePath = "/blocked"

    /// `ADDRESS:PORT` or `[IPv6]:PORT`.
    /// Where `enforcer run` serves its metrics, nil when it does not.
    public var metricsEndpoint: (address: IPAddress, port: UInt16)? {
        guard let listen = metricsListen, let endpoint = Self.endpoint(listen), let address = endpoint.address else { return nil }
        return (address, endpoint.port)
    }

    static func endpoint(_ text: String) -> (address: IPAddress?, port: UInt16)? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "*" || host.isEmpty { return (nil, port) }
        guard let address = try? IPAddress.parse(host) else { return nil }
        return (address, port)
    }

    /// Whether `enforcer run` serves the portal for these web rules: for the page of warn and
    /// aup rules, and with `deny_page` for the block page of deny rules, or of a default
    /// action that denies (a request no rule matched).
    public func servesPortal(webRules: [WebRule]) -> Bool {
        webRules.contains { $0.action == .warn || $0.action == .aup || denyPage && $0.action == .deny }
            || denyPage && defaultAction == .deny && !webRules.isEmpty
            || (defaultAction == .warn || defaultAction == .aup) && !webRules.isEmpty
    }

    /// QUIC is blocked by default when web rules exist, so browsers fall back to TCP where SNI is visible.
    public func blocksQUIC(hasWebRules: Bool) -> Bool { blockQUIC ?? hasWebRules }

    /// Reads `enforcer.conf`; unknown sections and keys are errors, so typos do not pass silently.
    public static func parse(file: String, text: String) -> (Config, [Diagnostic]) {
        var config = Config()
        var diagnostics: [Diagnostic] = []
        let document = TOMLDocument(file: file, text: text)
        diagnostics += document.diagnostics
        let known: [String: [String]] = [
            "policy": ["default_action", "time_window_tz"],
            "kernel": ["table", "mark_mask", "queue", "queue_fail", "queue_full", "queue_maxlen", "queue_syn_rate", "queue_syn_burst", "recent_from", "web_ports", "on_drift"],
            "web": ["fail", "portal_url", "portal_listen", "acknowledge_for", "deny_page", "block_quic", "log_flows", "log_repeat_window"],
            "state": ["directory"],
            "run": ["on_stop"],
            "log": ["level"],
            "metrics": ["listen"],
        ]
        let sections = ["policy", "kernel", "web", "state", "run", "log", "metrics"]
        // An unknown section is reported once, at its header; its keys are not reported again.
        for (table, location) in document.tables where known[table] == nil {
            let meant = PolicyLoader.nearest(table, among: sections).map { ", did you mean [\($0)]?" } ?? ""
            diagnostics.append(.error(location, "unknown section [\(table)]\(meant) (expected [policy], [kernel], [web], [state], [run], [log] or [metrics])"))
        }
        for entry in document.entries {
            /// The rule the value breaks, and the value as written.
            func fail(_ message: String) { diagnostics.append(.error(entry.valueLocation, "\(message); found \(entry.valueText)")) }
            switch (entry.table, entry.key) {
            case ("policy", "default_action"):
                guard case .string(let s) = entry.value, let action = WebAction(rawValue: s) else {
                    fail("default_action must be one of \"permit\", \"deny\", \"warn\", \"aup\""); continue
                }
                config.defaultAction = action
            case ("policy", "time_window_tz"):
                guard case .string(let s) = entry.value else { fail("time_window_tz must be a string"); continue }
                switch s.lowercased() {
                case "local": config.timeWindowZone = .local
                case "utc": config.timeWindowZone = .utc
                default:
                    guard TimeZone(identifier: s) != nil else {
                        let meant = PolicyLoader.suggestion(s, among: TimeZone.knownTimeZoneIdentifiers)
                        diagnostics.append(.error(entry.valueLocation, "unknown timezone '\(s)'\(meant) (expected local, utc or an IANA name such as Europe/Berlin)"))
                        continue
                    }
                    config.timeWindowZone = .named(s)
                }
            case ("kernel", "table"):
                guard case .string(let s) = entry.value, !s.isEmpty,
                      s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                    fail("table must be a plain name such as \"enforcer\""); continue
                }
                config.table = s
            case ("kernel", "mark_mask"):
                let raw: Int?
                switch entry.value {
                case .integer(let i): raw = i
                case .string(let s): raw = s.lowercased().hasPrefix("0x") ? Int(s.dropFirst(2), radix: 16) : Int(s)
                default: raw = nil
                }
                guard let raw, let mask = UInt32(exactly: raw), mask != 0 else { fail("mark_mask must be a non-zero 32-bit mask such as 0x00ffff00"); continue }
                let shifted = mask >> mask.trailingZeroBitCount
                guard shifted & (shifted &+ 1) == 0 else { fail("mark_mask must be one contiguous run of bits, such as 0x00ffff00"); continue }
                guard mask.nonzeroBitCount >= 4 else { fail("mark_mask needs at least 4 bits (2 for web verdicts, 2 or more for policy ids)"); continue }
                config.markMask = mask
            case ("kernel", "queue"):
                guard case .integer(let i) = entry.value, let q = UInt16(exactly: i) else { fail("queue must be a number from 0 to 65535"); continue }
                config.queue = q
            case ("kernel", "queue_fail"):
                guard case .string(let s) = entry.value, let mode = FailMode(rawValue: s) else { fail("queue_fail must be \"open\" or \"closed\""); continue }
                config.queueFail = mode
            case ("kernel", "queue_syn_rate"), ("kernel", "queue_syn_burst"):
                guard case .integer(let i) = entry.value, let n = UInt32(exactly: i) else {
                    fail("\(entry.key) must be a number of new connections per source, 0 or more"); continue
                }
                if entry.key == "queue_syn_rate" { config.queueSynRate = n } else { config.queueSynBurst = max(n, 1) }
            case ("kernel", "queue_full"):
                guard case .string(let s) = entry.value, let mode = FailMode(rawValue: s) else {
                    fail("queue_full must be \"closed\" (a full queue drops, TCP sends again) or \"open\" (a full queue lets packets through unjudged)"); continue
                }
                config.queueFull = mode
            case ("kernel", "queue_maxlen"):
                guard case .integer(let i) = entry.value, let n = UInt32(exactly: i), n > 0 else { fail("queue_maxlen must be a number of packets from 1 to 4294967295"); continue }
                config.queueMaxLength = n
            case ("kernel", "recent_from"):
                guard case .integer(let i) = entry.value, i >= 0 else { fail("recent_from must be a number of sender addresses, 0 or more"); continue }
                config.recentFrom = Int(i)
            case ("kernel", "web_ports"):
                guard case .array(let items) = entry.value else { fail("web_ports must be a list of ports, such as [80, 443]"); continue }
                var ports: [UInt16] = []
                for item in items {
                    guard case .integer(let i) = item, let p = UInt16(exactly: i), p > 0 else { fail("web_ports must hold ports from 1 to 65535"); break }
                    ports.append(p)
                }
                config.webPorts = ports
            case ("web", "fail"):
                guard case .string(let s) = entry.value, let mode = FailMode(rawValue: s) else { fail("fail must be \"open\" or \"closed\""); continue }
                config.webFail = mode
            case ("web", "portal_url"):
                guard case .string(let s) = entry.value, s.hasPrefix("http://") || s.hasPrefix("https://") else { fail("portal_url must be an http:// or https:// URL"); continue }
                config.portalURL = s
                config.portalURLLocation = entry.valueLocation
            case ("web", "portal_listen"):
                guard case .string(let s) = entry.value, Self.endpoint(s) != nil else {
                    fail("portal_listen must be ADDRESS:PORT, such as \"192.168.50.1:8088\" or \"[fd00::1]:8088\""); continue
                }
                config.portalListen = s
            case ("web", "acknowledge_for"):
                guard case .string(let s) = entry.value, let seconds = DurationText.parse(s) else {
                    fail("acknowledge_for must be a duration such as \"1h\", \"30m\" or \"1h30m\""); continue
                }
                config.acknowledgeFor = seconds
            case ("web", "deny_page"):
                guard case .bool(let b) = entry.value else {
                    fail("deny_page must be true (a denied plain-HTTP request is redirected to the portal's block page) or false (it is only reset)"); continue
                }
                config.denyPage = b
            case ("web", "log_flows"):
                guard case .string(let s) = entry.value, let mode = FlowLogging(rawValue: s) else {
                    fail("log_flows must be \"all\", \"deny\" (flows not permitted) or \"none\""); continue
                }
                config.logFlows = mode
            case ("web", "log_repeat_window"):
                // A duration, or zero (which `DurationText` leaves out: no other setting wants it).
                guard case .string(let s) = entry.value, let seconds = ["0", "0s"].contains(s) ? 0 : DurationText.parse(s) else {
                    fail("log_repeat_window must be a duration such as \"10s\" or \"1m\" (\"0s\": every flow gets its line)"); continue
                }
                config.logRepeatWindow = seconds
            case ("web", "block_quic"):
                guard case .bool(let b) = entry.value else { fail("block_quic must be true or false"); continue }
                config.blockQUIC = b
            case ("state", "directory"):
                guard case .string(let s) = entry.value, s.hasPrefix("/") else { fail("directory must be an absolute path"); continue }
                config.stateDirectory = s
            case ("kernel", "on_drift"):
                guard case .string(let s) = entry.value, let action = DriftAction(rawValue: s) else {
                    fail("on_drift must be \"restore\" (enforcer run puts its generation back) or \"report\" (it only logs and counts the change)"); continue
                }
                config.onDrift = action
            case ("run", "on_stop"):
                guard case .string(let s) = entry.value, let action = StopAction(rawValue: s) else {
                    fail("on_stop must be \"keep\" (the ruleset stays in force) or \"flush\" (enforcer's table is removed)"); continue
                }
                config.onStop = action
            case ("log", "level"):
                guard case .string(let s) = entry.value, let level = LogLevelSetting(rawValue: s) else {
                    fail("level must be \"error\", \"warning\", \"info\" or \"debug\""); continue
                }
                config.logLevel = level
            case ("metrics", "listen"):
                guard case .string(let s) = entry.value else {
                    fail("listen must be ADDRESS:PORT, such as \"127.0.0.1:9469\", or \"\" (no metrics endpoint)"); continue
                }
                if s.isEmpty || s == "off" {
                    config.metricsListen = nil
                } else if Self.endpoint(s)?.address != nil {
                    config.metricsListen = s
                } else {
                    fail("listen must be ADDRESS:PORT, such as \"127.0.0.1:9469\" or \"[::1]:9469\", or \"\" (no metrics endpoint)"); continue
                }
            default:
                if let keys = known[entry.table] {
                    diagnostics.append(.error(entry.keyLocation, "unknown key '\(entry.key)' in [\(entry.table)]\(PolicyLoader.suggestion(entry.key, among: keys)) (expected \(keys.joined(separator: ", ")))"))
                } else if entry.table.isEmpty {
                    diagnostics.append(.error(entry.keyLocation, "key '\(entry.key)' must be inside a section such as [policy]"))
                }
            }
        }
        return (config, diagnostics)
    }
}

/// The part of TOML that `enforcer.conf` needs: sections, and keys holding strings,
/// integers (decimal or 0x), booleans, or arrays of them.
struct TOMLDocument {
    enum Value: Equatable { case string(String), integer(Int), bool(Bool), array([Value]) }
    struct Entry {
        var table: String
        var key: String
        var keyLocation: SourceLocation
        var value: Value
        var valueLocation: SourceLocation
        /// The value as written, for messages.
        var valueText: String
    }

    private(set) var entries: [Entry] = []
    /// Each section header, where it first appears.
    private(set) var tables: [(name: String, location: SourceLocation)] = []
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String, text: String) {
        var table = ""
        var seen: [String: SourceLocation] = [:]
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var lineIndex = 0
        while lineIndex < lines.count {
            let number = lineIndex + 1
            var line = Substring(lines[lineIndex])
            lineIndex += 1
            func location(_ index: Substring.Index) -> SourceLocation {
                SourceLocation(file: file, line: number, column: 1 + line.distance(from: line.startIndex, to: index))
            }
            let content = Self.stripComment(line)
            let trimmed = content.trimmingBlanks
            if trimmed.isEmpty { continue }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), !trimmed.hasPrefix("[[") else {
                    diagnostics.append(.error(location(line.firstIndex(of: "[")!), "expected a section header such as [policy], found '\(trimmed)'"))
                    continue
                }
                table = String(trimmed.dropFirst().dropLast()).trimmingBlanks
                if !tables.contains(where: { $0.name == table }) {
                    tables.append((table, location(line.firstIndex(of: "[")!)))
                }
                continue
            }
            guard let equals = content.firstIndex(of: "=") else {
                diagnostics.append(.error(location(line.firstIndex { $0 != " " && $0 != "\t" } ?? line.startIndex), "expected 'key = value', found '\(trimmed)'"))
                continue
            }
            let keyStart = content.firstIndex { $0 != " " && $0 != "\t" } ?? content.startIndex
            let key = String(content[keyStart..<equals]).trimmingBlanks
            var valueText = String(content[content.index(after: equals)...]).trimmingBlanks
            let valueStart = content[content.index(after: equals)...].firstIndex { $0 != " " && $0 != "\t" } ?? equals
            // A multi-line array continues until its brackets balance.
            if valueText.hasPrefix("[") {
                while Self.bracketDepth(valueText) > 0 && lineIndex < lines.count {
                    valueText += " " + Self.stripComment(Substring(lines[lineIndex])).trimmingBlanks
                    lineIndex += 1
                }
            }
            let keyLocation = location(keyStart)
            let valueLocation = location(valueStart)
            if key.isEmpty || !key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) {
                diagnostics.append(.error(keyLocation, "bad key '\(key)'"))
                continue
            }
            let qualified = table + "." + key
            if let first = seen[qualified] {
                diagnostics.append(.error(keyLocation, "duplicate key '\(key)' in [\(table)]",
                                          notes: [Diagnostic(.note, first, "first set here")]))
                continue
            }
            seen[qualified] = keyLocation
            var parser = ValueParser(text: valueText[...])
            do throws(ValueError) {
                let value = try parser.parseValue()
                parser.skipBlanks()
                guard parser.text.isEmpty else { throw ValueError("unexpected '\(parser.text)' after the value") }
                entries.append(Entry(table: table, key: key, keyLocation: keyLocation, value: value, valueLocation: valueLocation,
                                     valueText: valueText))
            } catch {
                diagnostics.append(.error(valueLocation, error.message))
            }
            line = ""
        }
    }

    private static func stripComment(_ line: Substring) -> Substring {
        var inString: Character? = nil
        var escaped = false
        for index in line.indices {
            let c = line[index]
            if let quote = inString {
                if escaped { escaped = false } else if c == "\\" && quote == "\"" { escaped = true } else if c == quote { inString = nil }
            } else if c == "\"" || c == "'" {
                inString = c
            } else if c == "#" {
                return line[..<index]
            }
        }
        return line
    }

    private static func bracketDepth(_ text: String) -> Int {
        var depth = 0
        var inString = false
        for c in text {
            if c == "\"" { inString.toggle() } else if !inString && c == "[" { depth += 1 } else if !inString && c == "]" { depth -= 1 }
        }
        return depth
    }

    private struct ValueParser {
        var text: Substring

        mutating func skipBlanks() { text = text.drop { $0 == " " || $0 == "\t" } }

        mutating func parseValue() throws(ValueError) -> Value {
            skipBlanks()
            guard let first = text.first else { throw ValueError("missing value") }
            switch first {
            case "\"", "'":
                text = text.dropFirst()
                var out = ""
                while let c = text.first {
                    text = text.dropFirst()
                    if c == first { return .string(out) }
                    if c == "\\" && first == "\"", let next = text.first {
                        text = text.dropFirst()
                        switch next {
                        case "n": out.append("\n")
                        case "t": out.append("\t")
                        case "\"", "\\": out.append(next)
                        default: throw ValueError("unsupported escape '\\\(next)'")
                        }
                        continue
                    }
                    out.append(c)
                }
                throw ValueError("unterminated string")
            case "[":
                text = text.dropFirst()
                var items: [Value] = []
                while true {
                    skipBlanks()
                    if text.first == "]" { text = text.dropFirst(); return .array(items) }
                    items.append(try parseValue())
                    skipBlanks()
                    if text.first == "," { text = text.dropFirst(); continue }
                    if text.first == "]" { text = text.dropFirst(); return .array(items) }
                    throw ValueError("expected ',' or ']' in array")
                }
            default:
                let word = text.prefix { !($0 == "," || $0 == "]" || $0 == " " || $0 == "\t") }
                text = text.dropFirst(word.count)
                if word == "true" { return .bool(true) }
                if word == "false" { return .bool(false) }
                let digits = word.replacingOccurrences(of: "_", with: "")
                if digits.hasPrefix("0x"), let i = Int(digits.dropFirst(2), radix: 16) { return .integer(i) }
                if let i = Int(digits) { return .integer(i) }
                throw ValueError("bad value '\(word)' (expected a \"string\", a number, true/false or [a, list])")
            }
        }
    }
}
