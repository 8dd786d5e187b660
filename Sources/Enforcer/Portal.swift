import Compiler
import Foundation

/// The page warn and aup rules send plain-HTTP visitors to (`[web] portal_url`): it shows the
/// rule's description and an acknowledge button; after it, the visitor may reach what the
/// rule guards for `[web] acknowledge_for`. Requests in, responses out; no I/O here.
struct Portal {
    struct Answer {
        var response: [UInt8]
        /// The rule the visitor acknowledged, when the request was the button.
        var acknowledged: String?
    }

    let rules: [String: WebRule]
    let acknowledgeFor: TimeInterval
    static let maxRequest = 16 * 1024

    init(webRules: [WebRule], acknowledgeFor: TimeInterval) {
        rules = Dictionary(webRules.filter { $0.action == .warn || $0.action == .aup }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.acknowledgeFor = acknowledgeFor
    }

    /// nil while the request is incomplete.
    func answer(_ bytes: [UInt8], now: Date) -> Answer? {
        guard let headEnd = Self.headEnd(bytes) else {
            return bytes.count >= Self.maxRequest ? Answer(response: Self.response(431, "Request Header Fields Too Large", page("Too large", "<p>The request is too large.</p>"))) : nil
        }
        // Lines by bytes: in Swift's Characters, CR LF is one grapheme.
        let lines = bytes[..<headEnd].split(separator: 10, omittingEmptySubsequences: false)
            .map { String(decoding: $0.last == 13 ? $0.dropLast() : $0, as: UTF8.self) }
        let requestLine = lines.first?.split(separator: " ") ?? []
        guard requestLine.count == 3 else { return Answer(response: Self.response(400, "Bad Request", page("Bad request", ""))) }
        let method = requestLine[0], target = String(requestLine[1])
        let path = target.prefix { $0 != "?" }
        let query = Self.form(String(target.dropFirst(path.count + (target.contains("?") ? 1 : 0))))
        switch (method, path) {
        case ("GET", "/"), ("HEAD", "/"):
            guard let name = query["rule"], let rule = rules[name] else {
                return Answer(response: Self.response(404, "Not Found", page("Unknown rule", "<p>No warn or aup rule is named here.</p>")))
            }
            return Answer(response: Self.response(200, "OK", notice(rule, url: query["url"] ?? ""), headOnly: method == "HEAD"))
        case ("POST", "/acknowledge"):
            let length = lines.dropFirst().compactMap { line -> Int? in
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                return Int(parts[1].trimmingCharacters(in: .whitespaces))
            }.first ?? 0
            let bodyStart = headEnd + (bytes[headEnd...].starts(with: Array("\r\n\r\n".utf8)) ? 4 : 2)
            guard length >= 0, length <= Self.maxRequest else { return Answer(response: Self.response(413, "Content Too Large", page("Too large", ""))) }
            guard bytes.count - bodyStart >= length else { return nil }
            let form = Self.form(String(decoding: bytes[bodyStart..<(bodyStart + length)], as: UTF8.self))
            guard let name = form["rule"], rules[name] != nil else {
                return Answer(response: Self.response(404, "Not Found", page("Unknown rule", "<p>No warn or aup rule is named here.</p>")))
            }
            let url = form["url"].flatMap { $0.hasPrefix("http://") || $0.hasPrefix("https://") ? $0 : nil }
            let back = url.map { "<p><a href=\"\(Self.escaped($0))\">Continue to \(Self.escaped($0))</a></p>" } ?? ""
            let until = ISO8601DateFormatter().string(from: now.addingTimeInterval(acknowledgeFor))
            var response = "HTTP/1.1 303 See Other\r\n"
            if let url { response += "Location: \(url)\r\n" }
            let body = page("Acknowledged", "<p>You may go on until \(until).</p>\(back)")
            response += "Content-Type: text/html; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + body
            return Answer(response: Array(response.utf8), acknowledged: name)
        default:
            return Answer(response: Self.response(404, "Not Found", page("Not found", "")))
        }
    }

    private func notice(_ rule: WebRule, url: String) -> String {
        let aup = rule.action == .aup
        let description = rule.description ?? (aup ? "This site falls under the acceptable use policy." : "This site is flagged by a rule.")
        let button = aup ? "I accept the acceptable use policy" : "I understand, continue"
        return page(aup ? "Acceptable use policy" : "Warning", """
            <p>\(Self.escaped(description))</p>
            <p>You asked for <code>\(Self.escaped(url))</code> (rule <code>\(Self.escaped(rule.name))</code>).</p>
            <form method="post" action="/acknowledge">
            <input type="hidden" name="rule" value="\(Self.escaped(rule.name))">
            <input type="hidden" name="url" value="\(Self.escaped(url))">
            <button type="submit">\(button)</button>
            </form>
            <p>After you continue, this computer may reach the site for \(Int(acknowledgeFor / 60)) minutes.</p>
            """)
    }

    private func page(_ title: String, _ body: String) -> String {
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>\(Self.escaped(title))</title></head>\n<body><h1>\(Self.escaped(title))</h1>\n\(body)\n</body></html>\n"
    }

    static func response(_ code: Int, _ reason: String, _ body: String, headOnly: Bool = false) -> [UInt8] {
        let head = "HTTP/1.1 \(code) \(reason)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        return Array((headOnly ? head : head + body).utf8)
    }

    /// Where the head ends (before its blank line), CRLF or LF.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 10 && bytes[index + 1] == 10 { return index }
            if index + 3 < bytes.count && bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 { return index }
            index += 1
        }
        return nil
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
