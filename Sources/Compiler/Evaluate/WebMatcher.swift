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
    /// The domain-list entry or pattern that matched; with `matchError`, the pattern PCRE2
    /// gave up on.
    public var pattern: String?
    public var ruleDescription: String?
    /// Set when PCRE2 gave up on a pattern of `rule` (a match limit): the rule might have
    /// matched, so neither its action nor a later rule's decided, but `[web] fail`.
    public var matchError: MatchError?

    public var description: String {
        guard let rule else { return "\(action.rawValue) default_action (no rule matched)" }
        if let matchError {
            return "\(action.rawValue) by [web] fail: rule '\(rule)'" + (pattern.map { " pattern \($0)" } ?? "") + " could not be matched: \(matchError)"
        }
        return "\(action.rawValue) rule '\(rule)'" + (pattern.map { " pattern \($0)" } ?? "")
    }
}

/// First-match evaluation of web rules: file order, then block order; a rule outside its time
/// window is skipped; nothing matching means `default_action`. The worker and `test-uri`
/// share it; patterns were compiled once when the policy was loaded.
public struct WebMatcher: Sendable {
    public let rules: [WebRule]
    public let defaultAction: WebAction
    /// `[web] fail`: the verdict when a rule's pattern cannot be matched to the end.
    public let fail: Config.FailMode

    /// The same rules, each behind one reference: reading a rule out of an array copies
    /// it (a dozen lists and strings retained and released), per rule and request; a box
    /// costs one retain.
    private let boxed: [Box]

    fileprivate final class Box: Sendable {
        let rule: WebRule
        init(_ rule: WebRule) { self.rule = rule }
    }

    /// `fail` defaults as `[web] fail` does: closed.
    public init(rules: [WebRule], defaultAction: WebAction, fail: Config.FailMode = .closed) {
        self.rules = rules.sorted { $0.order < $1.order }
        self.defaultAction = defaultAction
        self.fail = fail
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
            switch box.match(request, patterns) {
            case .notMatched:
                continue
            case .matched(let what):
                return WebDecision(action: box.rule.action, rule: box.rule.name, pattern: what, ruleDescription: box.rule.description)
            case .failed(let pattern, let error):
                // Had PCRE2 finished, this rule might have decided: skipping it would let a
                // deny fall through to a later permit. The fail verdict decides instead.
                return WebDecision(action: fail == .open ? .permit : .deny, rule: box.rule.name, pattern: pattern,
                                   ruleDescription: box.rule.description, matchError: error)
            }
        }
        return WebDecision(action: defaultAction, rule: nil, pattern: nil, ruleDescription: nil)
    }
}

/// One rule, or one key of it, against a request: PCRE2 may give up without an answer.
private enum RuleMatch {
    /// What matched, for the log.
    case matched(String)
    case notMatched
    /// The pattern PCRE2 gave up on, and why.
    case failed(pattern: String, MatchError)

    /// A list matches if any entry does; an entry PCRE2 gave up on leaves a list with no
    /// match undecided.
    static func any(_ patterns: [Pattern], _ outcome: (Pattern) -> MatchOutcome) -> RuleMatch {
        var failure: RuleMatch = .notMatched
        for pattern in patterns {
            switch outcome(pattern) {
            case .match: return .matched(pattern.source)
            case .noMatch: continue
            case .error(let error): if case .notMatched = failure { failure = .failed(pattern: pattern.source, error) }
            }
        }
        return failure
    }
}

extension WebMatcher.Box {
    /// Whether the rule matches, AND over its keys: one key that does not match rules it
    /// out; otherwise a key PCRE2 gave up on leaves it undecided (`failed`). On the box, so
    /// that the rule's fields are read in place: a method of WebRule would be handed a copy
    /// of the whole rule.
    fileprivate func match(_ request: WebRequest, _ patterns: PatternMatcher) -> RuleMatch {
        var matched: [String] = []
        var undecided: RuleMatch?
        /// Adds one pattern key's answer; false when it rules the rule out.
        func add(_ key: RuleMatch) -> Bool {
            switch key {
            case .matched(let what): matched.append(what)
            case .notMatched: return false
            case .failed: if undecided == nil { undecided = key }
            }
            return true
        }
        if !rule.domains.isEmpty {
            guard let entry = rule.domains.lazy.compactMap({ $0.match(request.host) }).first else { return .notMatched }
            matched.append("domain \(entry)")
        }
        if let sni = rule.sni {
            guard request.isTLS, let entry = sni.match(request.host) else { return .notMatched }
            matched.append("sni \(entry)")
        }
        if !rule.uriPatterns.isEmpty {
            patterns.scratch.removeAll(keepingCapacity: true)
            request.appendURL(to: &patterns.scratch)
            let url = patterns.scratch
            guard add(.any(rule.uriPatterns, { patterns.match($0, url) })) else { return .notMatched }
        }
        if !rule.hostPatterns.isEmpty {
            guard add(.any(rule.hostPatterns, { patterns.match($0, request.host) })) else { return .notMatched }
        }
        if !rule.userAgentPatterns.isEmpty {
            guard let agent = request.userAgent, add(.any(rule.userAgentPatterns, { patterns.match($0, agent) })) else { return .notMatched }
        }
        if !rule.sources.isEmpty {
            guard let source = request.source, let hit = rule.sources.first(where: { $0.contains(source) }) else { return .notMatched }
            matched.append("source \(hit)")
        }
        if let undecided { return undecided }
        return .matched(matched.joined(separator: " and "))
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
