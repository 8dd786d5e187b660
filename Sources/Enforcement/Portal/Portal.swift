import Compiler
import Foundation
import NFQueue

/// The pages the worker sends plain-HTTP visitors to. Warn and aup rules send them to
/// `[web] portal_url`: the rule's description and an acknowledge button; after it, the visitor
/// may reach what the rule guards for `[web] acknowledge_for`. Deny rules (with `[web]
/// deny_page`) send them to the block page, `blocked` beside it: the rule's name and
/// description, and no button, for there is nothing to acknowledge. Each page is shown only
/// for a rule of its own kind, looked up by name in the policy. Requests in, responses out;
/// no I/O here.
public struct Portal {
    public struct Answer {
        public var response: [UInt8]
        /// The rule the visitor acknowledged, when the request was the button.
        public var acknowledged: String?
    }

    /// The warn and aup rules, by name: the ones a visitor may acknowledge.
    let rules: [String: WebRule]
    /// The deny rules, by name; empty without `deny_page`.
    let denyRules: [String: WebRule]
    /// Whether a request no rule matched is denied: then the block page without a rule
    /// name says so; otherwise such a page does not exist.
    let defaultDenies: Bool
    /// `default_action = "warn"` or `"aup"`: a request no rule matched gets the notice page
    /// without a rule name, and its acknowledgement is recorded under `defaultActionKey`.
    let defaultNotice: WebAction?
    let acknowledgeFor: TimeInterval
    /// The most a request head, or a form body, may take.
    public static let maxRequest = 16 * 1024

    public init(webRules: [WebRule], acknowledgeFor: TimeInterval, denyPage: Bool = true, defaultAction: WebAction = .permit) {
        func byName(_ actions: Set<WebAction>) -> [String: WebRule] {
            Dictionary(webRules.filter { actions.contains($0.action) }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        }
        rules = byName([.warn, .aup])
        denyRules = denyPage ? byName([.deny]) : [:]
        defaultDenies = denyPage && defaultAction == .deny
        defaultNotice = defaultAction == .warn || defaultAction == .aup ? defaultAction : nil
        self.acknowledgeFor = acknowledgeFor
    }

    public init(config: Config, webRules: [WebRule]) {
        self.init(webRules: webRules, acknowledgeFor: config.acknowledgeFor, denyPage: config.denyPage, defaultAction: config.defaultAction)
    }

    /// The whole request's length once its head is in (head and form body), nil before; a
    /// connection waits for that many bytes before it asks for the answer, so a body that
    /// trickles in is not parsed again for every byte.
    public static func requestLength(_ bytes: [UInt8]) -> Int? {
        guard case .complete(let head) = HTTPRequestParser.parse(bytes, maxHeadLength: maxRequest) else { return nil }
        return head.headLength + min(head.contentLength ?? 0, maxRequest)
    }

    /// The answer to the bytes received so far; nil while the request is incomplete. The
    /// head is read by the same hardened parser the worker uses: a head over `maxRequest`
    /// bytes, a second Host or Content-Length, a bare CR or any other ambiguity is refused.
    public func answer(_ bytes: [UInt8], now: Date) -> Answer? {
        let head: HTTPRequestHead
        switch HTTPRequestParser.parse(bytes, maxHeadLength: Self.maxRequest) {
        case .needMoreData: return nil
        case .malformed:
            if bytes.count >= Self.maxRequest {
                return Answer(response: Self.response(431, "Request Header Fields Too Large", page("Too large", "<p>The request is too large.</p>")))
            }
            return Answer(response: Self.response(400, "Bad Request", page("Bad request", "")))
        case .complete(let complete): head = complete
        }
        // The path and query as sent (an absolute-form target's, after its authority).
        let target = head.target.hasPrefix("/") ? head.target : String(head.url.drop { $0 != "/" }.dropFirst(2).drop { $0 != "/" })
        let path = target.prefix { $0 != "?" }
        let query = Self.form(String(target.dropFirst(path.count + (target.contains("?") ? 1 : 0))))
        switch (head.method, path) {
        case ("GET", "/"), ("HEAD", "/"):
            let shown: String
            switch query["rule"] {
            case .none where defaultNotice != nil: shown = notice(nil, action: defaultNotice!, url: query["url"] ?? "")
            case .some(let name) where rules[name] != nil: shown = notice(rules[name], action: rules[name]!.action, url: query["url"] ?? "")
            default: return Answer(response: Self.response(404, "Not Found", page("Unknown rule", "<p>No warn or aup rule is named here.</p>")))
            }
            return Answer(response: Self.response(200, "OK", shown, headOnly: head.method == "HEAD"))
        case ("GET", Config.blockPagePath), ("HEAD", Config.blockPagePath):
            let rule: WebRule?
            switch query["rule"] {
            case .none where defaultDenies: rule = nil
            case .some(let name) where denyRules[name] != nil: rule = denyRules[name]
            default:
                return Answer(response: Self.response(404, "Not Found", page("Unknown rule", "<p>No deny rule is named here.</p>")))
            }
            return Answer(response: Self.response(200, "OK", blocked(rule, url: query["url"] ?? ""), headOnly: head.method == "HEAD"))
        case ("POST", "/acknowledge"):
            let length = head.contentLength ?? 0
            guard length <= Self.maxRequest else { return Answer(response: Self.response(413, "Content Too Large", page("Too large", ""))) }
            guard bytes.count - head.headLength >= length else { return nil }
            let form = Self.form(String(decoding: bytes[head.headLength..<(head.headLength + length)], as: UTF8.self))
            guard let name = form["rule"], rules[name] != nil || name == Self.defaultActionKey && defaultNotice != nil else {
                return Answer(response: Self.response(404, "Not Found", page("Unknown rule", "<p>No warn or aup rule is named here.</p>")))
            }
            let url = form["url"].flatMap { $0.hasPrefix("http://") || $0.hasPrefix("https://") ? $0 : nil }
            let back = url.map { "<p><a href=\"\(Self.escaped($0))\">Continue to \(Self.escaped($0))</a></p>" } ?? ""
            let until = ISO8601.string(now.addingTimeInterval(acknowledgeFor))
            var response = "HTTP/1.1 303 See Other\r\n"
            if let url { response += "Location: \(url)\r\n" }
            let body = page("Acknowledged", "<p>You may go on until \(until).</p>\(back)")
            response += "Content-Type: text/html; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + body
            return Answer(response: Array(response.utf8), acknowledged: name)
        default:
            return Answer(response: Self.response(404, "Not Found", page("Not found", "")))
        }
    }

    /// The name under which an acknowledgement of the default action is kept: empty, which no
    /// rule's name can be.
    public static let defaultActionKey = ""

    /// The page of a warn or aup rule, or (`rule` nil) of the default action.
    private func notice(_ rule: WebRule?, action: WebAction, url: String) -> String {
        let aup = action == .aup
        let description = rule?.description ?? (rule == nil ? "No rule matched this site; the network's default is to \(aup ? "ask you to accept its acceptable use policy" : "warn you") first."
            : aup ? "This site falls under the acceptable use policy." : "This site is flagged by a rule.")
        let decidedBy = rule.map { "rule <code>\(Self.escaped($0.name))</code>" } ?? "the default action"
        let button = aup ? "I accept the acceptable use policy" : "I understand, continue"
        return page(aup ? "Acceptable use policy" : "Warning", """
            <p>\(Self.escaped(description))</p>
            <p>You asked for <code>\(Self.escaped(url))</code> (\(decidedBy)).</p>
            <form method="post" action="/acknowledge">
            <input type="hidden" name="rule" value="\(Self.escaped(rule?.name ?? Self.defaultActionKey))">
            <input type="hidden" name="url" value="\(Self.escaped(url))">
            <button type="submit">\(button)</button>
            </form>
            <p>After you continue, this computer may reach the site for \(Int(acknowledgeFor / 60)) minutes.</p>
            """)
    }

    /// The block page: why the request was denied, and no button (a deny cannot be waived).
    /// `rule` nil: no rule matched and the default action denied.
    private func blocked(_ rule: WebRule?, url: String) -> String {
        let description = rule.map { $0.description ?? "This site is blocked by a rule." } ?? "No rule permits this site."
        let decidedBy = rule.map { "rule <code>\(Self.escaped($0.name))</code>" } ?? "the default action"
        return page("Access denied", """
            <p>\(Self.escaped(description))</p>
            <p>You asked for <code>\(Self.escaped(url))</code> (\(decidedBy)).</p>
            <p>If you need this site for your work, ask the administrator of this network.</p>
            """)
    }

    private func page(_ title: String, _ body: String) -> String {
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>\(Self.escaped(title))</title></head>\n<body><h1>\(Self.escaped(title))</h1>\n\(body)\n</body></html>\n"
    }

    static func response(_ code: Int, _ reason: String, _ body: String, headOnly: Bool = false) -> [UInt8] {
        let head = "HTTP/1.1 \(code) \(reason)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        return Array((headOnly ? head : head + body).utf8)
    }

    /// `a=1&b=x%20y` (application/x-www-form-urlencoded); the first of a repeated name wins.
    static func form(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (s: Substring) in s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            let name = decode(parts[0])
            if out[name] == nil { out[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return out
    }

    static func escaped(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
