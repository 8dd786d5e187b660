import Foundation

/// What the worker knows about a flow when it decides: for TLS only the SNI, for plain
/// HTTP the request line and headers.
public struct WebRequest: Sendable {
    public var host: String
    /// `http://host/path?query`, or `https://SNI/` for TLS.
    public var url: String {
        get {
            if let givenURL { return givenURL }
            var bytes: [UInt8] = []
            appendURL(to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        set { givenURL = newValue }
    }
    /// nil for a TLS request made from its SNI alone: its URL is spelled out only if a rule
    /// asks for it (the worker makes one of these per flow; few rules match on URLs).
    private var givenURL: String?
    public var isTLS: Bool
    public var source: IPAddress?
    public var userAgent: String?

    public init(host: String, url: String, isTLS: Bool, source: IPAddress? = nil, userAgent: String? = nil) {
        self.host = host
        givenURL = url
        self.isTLS = isTLS
        self.source = source
        self.userAgent = userAgent
    }

    /// The URL's bytes, appended: spelled out without a string when it was not given.
    func appendURL(to bytes: inout [UInt8]) {
        if let givenURL { givenURL.appendUTF8(to: &bytes); return }
        let bracketed = host.containsUTF8(UInt8(ascii: ":"))
        bytes.append(contentsOf: bracketed ? Self.schemeBracket : Self.scheme)
        host.appendUTF8(to: &bytes)
        if bracketed { bytes.append(UInt8(ascii: "]")) }
        bytes.append(UInt8(ascii: "/"))
    }

    private static let scheme = Array("https://".utf8), schemeBracket = Array("https://[".utf8)

    /// A TLS request as the worker sees it: the SNI, and `https://SNI/` as its URL.
    public init(serverName: String, source: IPAddress? = nil) {
        host = serverName
        givenURL = nil
        isTLS = true
        self.source = source
    }

    /// A request as `test-uri` gets it. For https the worker only peeks at the ClientHello's
    /// SNI, never decrypting, so the path is dropped; `droppedPath` says so.
    public static func fromURL(_ text: String, source: IPAddress? = nil) throws(ValueError) -> (request: WebRequest, droppedPath: Bool) {
        let lower = text.lowercased()
        let isTLS: Bool
        if lower.hasPrefix("https://") { isTLS = true } else if lower.hasPrefix("http://") { isTLS = false } else {
            throw ValueError("URL must start with http:// or https://, found '\(text)'")
        }
        let rest = text.dropFirst(isTLS ? 8 : 7)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var host = String(authority.split(separator: "@").last ?? "")
        if host.hasPrefix("[") {
            host = String(host.dropFirst().prefix { $0 != "]" })
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        host = host.lowercased()
        if host.hasSuffix(".") { host.removeLast() }
        guard !host.isEmpty else { throw ValueError("URL '\(text)' has no host", at: isTLS ? 8 : 7) }
        var path = String(rest.dropFirst(authority.count))
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty { path = "/" }
        let scheme = isTLS ? "https" : "http"
        let shownHost = host.contains(":") ? "[\(host)]" : host
        if isTLS {
            return (WebRequest(serverName: host, source: source), path != "/")
        }
        return (WebRequest(host: host, url: "\(scheme)://\(shownHost)\(path)", isTLS: false, source: source), false)
    }
}

public struct WebDecision: Sendable, CustomStringConvertible {
    public var action: WebAction
    /// nil when no rule matched and `default_action` decided.
    public var rule: String?
    /// The domain-list entry or pattern that matched.
    public var pattern: String?
    public var ruleDescription: String?

    public var description: String {
        guard let rule else { return "\(action.rawValue) default_action (no rule matched)" }
        return "\(action.rawValue) rule '\(rule)'" + (pattern.map { " pattern \($0)" } ?? "")
    }
}

/// First-match evaluation of web rules: file order, then block order; a rule outside its time
/// window is skipped; nothing matching means `default_action`. The worker and `test-uri`
/// share it; patterns were compiled once when the policy was loaded.
public struct WebMatcher: Sendable {
    public let rules: [WebRule]
    public let defaultAction: WebAction

    /// The same rules, each behind one reference: reading a rule out of an array copies
    /// it (a dozen lists and strings retained and released), per rule and request; a box
    /// costs one retain.
    private let boxed: [Box]

    fileprivate final class Box: Sendable {
        let rule: WebRule
        init(_ rule: WebRule) { self.rule = rule }
    }

    public init(rules: [WebRule], defaultAction: WebAction) {
        self.rules = rules.sorted { $0.order < $1.order }
        self.defaultAction = defaultAction
        boxed = self.rules.map(Box.init)
    }

    /// Which rules' time windows are open, valid from `computedAt` until `validUntil` (the
    /// next window flip), so the worker does not evaluate time zones per request.
    public struct OpenWindows: Sendable {
        public let computedAt: Date
        public let validUntil: Date
        let open: [Bool]

        public func isValid(at instant: Date) -> Bool { computedAt <= instant && instant < validUntil }
    }

    public func openWindows(at instant: Date) -> OpenWindows {
        var until = Date.distantFuture
        let open = rules.map { rule -> Bool in
            guard let window = rule.timeWindow else { return true }
            if let flip = window.nextFlip(after: instant, in: rule.timeZone) { until = min(until, flip) }
            return window.contains(instant, in: rule.timeZone)
        }
        return OpenWindows(computedAt: instant, validUntil: until, open: open)
    }

    public func decide(_ request: WebRequest, at instant: Date) -> WebDecision {
        decide(request, windows: openWindows(at: instant))
    }

    /// First match among the rules whose windows `windows` says are open.
    public func decide(_ request: WebRequest, windows: OpenWindows) -> WebDecision {
        decide(request, windows: windows, patterns: PatternMatcher())
    }

    /// The same, with the caller's pattern scratch space, so that a worker judging flow
    /// after flow allocates no PCRE2 match data per request.
    public func decide(_ request: WebRequest, windows: OpenWindows, patterns: PatternMatcher) -> WebDecision {
        for index in boxed.indices where windows.open[index] {
            let box = boxed[index]
            if let pattern = box.match(request, patterns) {
                return WebDecision(action: box.rule.action, rule: box.rule.name, pattern: pattern, ruleDescription: box.rule.description)
            }
        }
        return WebDecision(action: defaultAction, rule: nil, pattern: nil, ruleDescription: nil)
    }
}

extension WebMatcher.Box {
    /// nil when the rule does not match; otherwise what matched (for the log), AND over keys.
    /// On the box, so that the rule's fields are read in place: a method of WebRule would be
    /// handed a copy of the whole rule.
    fileprivate func match(_ request: WebRequest, _ patterns: PatternMatcher) -> String? {
        var matched: [String] = []
        if !rule.domains.isEmpty {
            guard let entry = rule.domains.lazy.compactMap({ $0.match(request.host) }).first else { return nil }
            matched.append("domain \(entry)")
        }
        if let sni = rule.sni {
            guard request.isTLS, let entry = sni.match(request.host) else { return nil }
            matched.append("sni \(entry)")
        }
        if !rule.uriPatterns.isEmpty {
            patterns.scratch.removeAll(keepingCapacity: true)
            request.appendURL(to: &patterns.scratch)
            let url = patterns.scratch
            guard let p = rule.uriPatterns.first(where: { patterns.matches($0, url) }) else { return nil }
            matched.append(p.source)
        }
        if !rule.hostPatterns.isEmpty {
            guard let p = rule.hostPatterns.first(where: { patterns.matches($0, request.host) }) else { return nil }
            matched.append(p.source)
        }
        if !rule.userAgentPatterns.isEmpty {
            guard let agent = request.userAgent, let p = rule.userAgentPatterns.first(where: { patterns.matches($0, agent) }) else { return nil }
            matched.append(p.source)
        }
        if !rule.sources.isEmpty {
            guard let source = request.source, let hit = rule.sources.first(where: { $0.contains(source) }) else { return nil }
            matched.append("source \(hit)")
        }
        return matched.joined(separator: " and ")
    }
}

extension WebSource: CustomStringConvertible {
    func contains(_ address: IPAddress) -> Bool {
        switch self {
        case .block(let block): block.contains(address)
        case .tag(_, let blocks): blocks.contains { $0.contains(address) }
        }
    }

    public var description: String {
        switch self {
        case .block(let block): block.description
        case .tag(let tag, _): tag
        }
    }
}
