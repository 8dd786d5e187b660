import Foundation
import Testing
@testable import Compiler

// What `enforcer check` must say about policy text and enforcer.conf: one case per line, each a
// small `rules.d/10-t.policy` (plus any extra files) and the exact diagnostics, printed as
// `line:col: severity: message` for 10-t.policy and `path:line:col: …` for other files
// (paths relative to the policy directory; `$DIR` stands for the directory in messages).
// Every case also gets `rules.d/00-inv.policy`, a valid inventory (see `inventory`), so cases
// can name its systems and tags without adding lines of their own.

/// A small policy directory and the diagnostics `check` must print for it.
struct DiagnosticCase: Sendable, CustomTestStringConvertible {
    var label: String
    var policy: String
    var expected: [String]
    /// Further files, relative to the policy directory (`enforcer.conf`, domain lists, …).
    var files: [String: String] = [:]
    var testDescription: String { label }
}

private func C(_ label: String, _ policy: String, _ expected: [String], files: [String: String] = [:]) -> DiagnosticCase {
    DiagnosticCase(label: label, policy: policy, expected: expected, files: files)
}

/// Systems srv-1 (servers), gw-1 (routers) and ws-1 (workstations).
private let inventory = """
    [system] srv-1: {
        address: 10.0.0.1
        tags: servers
    }
    [system] gw-1: {
        address: 10.0.0.254
        tags: routers
    }
    [system] ws-1: {
        address: 10.0.1.1
        tags: workstations
    }

    """

// A policy header and its first three lines, so that `allow:` is line 4 and line 5 is free.
private let P = "[policy] p: {\n    senders: workstations\n    receivers: servers\n"

/// A fresh policy directory in the temporary folder.
private struct DiagnosticDir {
    let path: String

    init(_ files: [String: String]) {
        path = FileManager.default.temporaryDirectory.path + "/enforcer-diag-" + UUID().uuidString
        let fm = FileManager.default
        try! fm.createDirectory(atPath: path + "/rules.d", withIntermediateDirectories: true)
        for (name, text) in files {
            let file = path + "/" + name
            try! fm.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try! Data(text.utf8).write(to: URL(fileURLWithPath: file))
        }
    }

    func load() -> PolicyLoader.Loaded { PolicyLoader.load(directory: path, services: testServices) }

    /// Each diagnostic and then its notes, as the case tables write them.
    func render(_ diagnostics: [Diagnostic]) -> [String] {
        diagnostics.flatMap { d -> [String] in
            var file = d.location.file
            if file.hasPrefix(path + "/") { file = String(file.dropFirst(path.count + 1)) }
            let place = file == "rules.d/10-t.policy" ? "\(d.location.line):\(d.location.column)"
                : "\(file):\(d.location.line):\(d.location.column)"
            let message = d.message.replacingOccurrences(of: path, with: "$DIR")
            return ["\(place): \(d.severity.rawValue): \(message)"] + render(d.notes)
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

struct PolicyDiagnosticsTests {
    static let cases: [DiagnosticCase] = [
        // MARK: Syntax
        C("missing ':' after the name", "[system] a {\n    address: 10.0.0.9\n}", ["1:12: error: expected ':' after the name 'a', found '{'"]),
        C("missing '{' (one error, no cascade)", "[system] a:\n    address: 10.0.0.9\n}", ["1:12: error: expected '{' to open block 'a'"]),
        C("missing '{' on a web rule", "r:\n    match-domain: example.com\n    action: deny\n}", ["1:3: error: expected '{' to open block 'r'"]),
        C("text after '{' (the entry still counts)", "[system] a: { address: 10.0.0.9\n}", ["1:15: error: unexpected 'address: 10.0.0.9' after '{': put each 'key: value' on its own line"]),
        C("unclosed block at end of file", "[system] a: {\n    address: 10.0.0.9\n", ["1:10: error: block 'a' opened on line 1 is never closed (missing '}')"]),
        C("unclosed block before the next block", "[system] a: {\n    address: 10.0.0.9\n[system] b: {\n    address: 10.0.0.10\n}", ["1:10: error: block 'a' opened on line 1 is never closed (missing '}' before line 3)"]),
        C("stray text after '}'", "[system] a: {\n    address: 10.0.0.9\n} x", ["3:3: error: unexpected 'x' after '}'"]),
        C("'key value' without a colon", "[system] a: {\n    address 10.0.0.9\n}", ["2:13: error: expected ':' after the key 'address', found '10.0.0.9'"]),
        C("missing value", "[system] a: {\n    address: 10.0.0.9\n    tags:\n}", ["3:10: error: missing value for 'tags'"]),
        C("missing value before a comment", "[system] a: {\n    address: 10.0.0.9\n    tags: # none yet\n}", ["3:10: error: missing value for 'tags'"]),
        C("unterminated /* comment", "[system] a: {\n    address: 10.0.0.9\n}\n/* note\n[system] b: {\n", ["4:1: error: unterminated '/*' comment"]),
        C("unterminated /* comment after a value", "[system] a: {\n    address: 10.0.0.9 /* note\n}\n", ["2:23: error: unterminated '/*' comment"]),
        C("unterminated quoted name", "[system] \"a b: {\n    address: 10.0.0.9\n}", ["1:10: error: unterminated quoted name"]),
        C("unterminated quoted value", P + "    allow: any\n    description: \"abc\n}", ["5:18: error: unterminated quoted value"]),
        C("one-line block", "[system] a: { address: 10.0.0.9 }\n[policy] q: {\n    senders: workstations\n    receivers: servers\n    allow: any\n}", ["1:15: error: unexpected 'address: 10.0.0.9 }' after '{': put each 'key: value' on its own line"]),
        C("'key = value'", "[system] a: {\n    address = 10.0.0.9\n}", ["2:13: error: expected ':' after the key 'address', found '= 10.0.0.9'"]),
        C("unclosed block still defines its tags", "[system] a: {\n    address: 10.0.0.9\n    tags: printers\n[policy] q: {\n    senders: workstations\n    receivers: printers\n    allow: any\n}", ["1:10: error: block 'a' opened on line 1 is never closed (missing '}' before line 4)"]),
        C("bad address in a list: the item's column", "[system] a: {\n    address: 10.0.0.9,  10.0.0.300, 10.0.0.7\n}", ["2:32: error: '300' is out of range for an IPv4 address part (0-255)"]),
        C("bad address after a non-ASCII item: columns count characters", "[system] a: {\n    address: ü1, 10.0.0.300\n}",
          ["2:14: error: unexpected character 'ü' in IPv4 address", "2:25: error: '300' is out of range for an IPv4 address part (0-255)"]),
        C("broken header skips its block only", "[system] a: b: {\n    address: 10.0.0.9\n}\n[system] c: {\n    address: 10.0.0.256\n}", ["1:13: error: expected '{' to open block 'a', found 'b: {'", "5:21: error: '256' is out of range for an IPv4 address part (0-255)"]),
        C("bad kind syntax", "[system a: {\n    address: 10.0.0.9\n}", ["1:2: error: expected a kind word and ']' in a block header, found '[system a: {'"]),
        C("extra '}'", "[system] a: {\n    address: 10.0.0.9\n}\n}", ["4:1: error: expected a block '[kind] name: {', found '}'"]),
        C("garbage line between blocks", "[system] a: {\n    address: 10.0.0.9\n}\nhello\n[system] b: {\n    address: 10.0.0.10\n}", ["4:1: error: expected a block '[kind] name: {', found 'hello'"]),

        // MARK: Keys and kinds
        C("unknown key with did-you-mean", P + "    allow: any\n    descripton: x\n}", ["5:5: error: unknown key 'descripton' in policy 'p', did you mean 'description'? (expected senders, receivers, allow, active-hours, timezone, trust, expires, enabled, description)"]),
        C("a system's expiry that is no instant", "[system] a: {\n    address: 10.0.0.9\n    expires: next week\n}", ["3:14: error: bad instant 'next week' (expected e.g. 2026-11-23, 2026-11-23T14:00 or 2026-11-23T14:00:00Z)"]),
        C("misspelt required key: one error", "[system] a: {\n    adress: 10.0.0.9\n}", ["2:5: error: unknown key 'adress' in system 'a', did you mean 'address'? (expected address, tags, expires)"]),
        C("unknown key without a near miss", "r: {\n    match-domain: example.com\n    action: deny\n    colour: red\n}", ["4:5: error: unknown key 'colour' in web rule 'r' (expected match-domain, match-domain-list, match-sni, match-uri-regex, match-host-regex, match-source, match-user-agent, action, description, time-window)"]),
        C("duplicate key", P + "    allow: any\n    allow: tcp/22\n}", ["5:5: error: duplicate key 'allow' in policy 'p'", "4:5: note: first given here"]),
        C("missing required key", "[policy] p: {\n    senders: workstations\n    allow: any\n}", ["1:10: error: policy 'p' needs 'receivers:'"]),
        C("unknown kind with swapped letters", "[ploicy] a: {\n    senders: servers\n}", ["1:2: error: unknown kind 'ploicy', did you mean 'policy'? (expected system, policy, gateway-policy or expect; a block without a kind is a web rule)"]),
        C("unknown kind with did-you-mean", "[sytem] a: {\n    address: 10.0.0.9\n}", ["1:2: error: unknown kind 'sytem', did you mean 'system'? (expected system, policy, gateway-policy or expect; a block without a kind is a web rule)"]),
        C("duplicate name across two files", "[system] a: {\n    address: 10.0.0.9\n}", ["rules.d/20-u.policy:2:10: error: duplicate system 'a'", "1:10: note: 'a' is first defined here"],
          files: ["rules.d/20-u.policy": "# again\n[system] a: {\n    address: 10.0.0.10\n}\n"]),
        C("duplicate quoted policy name in one file", P + "    allow: any\n}\n[policy] \"p\": {\n    senders: workstations\n    receivers: servers\n    allow: any\n}", ["6:10: error: duplicate policy 'p'", "1:10: note: 'p' is first defined here"]),
        C("same name, different kinds", "[policy] srv-1: {\n    senders: workstations\n    receivers: servers\n    allow: any\n}", []),

        // MARK: Names
        C("unknown tag", "[policy] p: {\n    senders: workstation\n    receivers: servers\n    allow: any\n}", ["2:14: error: unknown tag 'workstation': no system carries it, did you mean 'workstations'?"]),
        C("unknown tag, second in a list", "[policy] p: {\n    senders: workstations, printers\n    receivers: servers\n    allow: any\n}", ["2:28: error: unknown tag 'printers': no system carries it"]),
        C("unknown gateway system", "[gateway-policy] g: {\n    senders: workstations\n    gateway: gw1\n    subnets: 10.30.0.0/24\n    allow: any\n}", ["3:14: error: unknown system 'gw1', did you mean 'gw-1'?"]),
        C("unknown expect from/to", "[expect] e: {\n    from: bogus\n    to: srv1\n    deny: any\n}", ["2:11: error: unknown system 'bogus' (expected a system name or an address)", "3:9: error: unknown system 'srv1', did you mean 'srv-1'? (expected a system name or an address)"]),
        C("bad address as expect target", "[expect] e: {\n    from: ws-1\n    to: 10.0.0.256\n    deny: any\n}", ["3:16: error: '256' is out of range for an IPv4 address part (0-255)"]),

        // MARK: Addresses
        C("address range mixing families", "[system] a: {\n    address: 10.0.0.1-fd00::5\n}", ["2:23: error: a range cannot mix an IPv4 and an IPv6 address"]),
        C("address range that is one CIDR", "[system] a: {\n    address: 10.0.0.0-10.0.0.255\n}", ["2:14: error: write the range '10.0.0.0-10.0.0.255' as the CIDR block 10.0.0.0/24"]),
        C("address range of several blocks", "[system] a: {\n    address: 10.0.0.1-10.0.0.255\n}", ["2:22: error: address ranges are not accepted here; write addresses or CIDR blocks (this range is 8 blocks)"]),
        C("address part out of range", "[system] a: {\n    address: 10.0.0.256\n}", ["2:21: error: '256' is out of range for an IPv4 address part (0-255)"]),
        C("bad address, second in a list", "[system] a: {\n    address: 10.0.0.9, 10.0.0.300\n}", ["2:31: error: '300' is out of range for an IPv4 address part (0-255)"]),
        C("incomplete address", "[system] a: {\n    address: 10.0.9\n}", ["2:20: error: incomplete IPv4 address: expected 4 numbers separated by dots, found 3"]),
        C("CIDR with host bits set", "[gateway-policy] g: {\n    senders: workstations\n    gateway: gw-1\n    subnets: 10.30.0.1/24\n    allow: any\n}", ["4:23: error: host bits set in '10.30.0.1/24' (did you mean 10.30.0.0/24?)"]),
        C("prefix too long (/33)", "[system] a: {\n    address: 10.0.0.0/33\n}", ["2:22: error: prefix /33 is too long for an IPv4 address (at most /32)"]),
        C("IPv6-length prefix on IPv4", "[system] a: {\n    address: 10.0.0.0/64\n}", ["2:22: error: prefix /64 is too long for an IPv4 address (at most /32)"]),
        C("IPv6 prefix too long", "[system] a: {\n    address: fd00::/129\n}", ["2:20: error: prefix /129 is too long for an IPv6 address (at most /128)"]),
        C("netmask instead of a prefix", "[system] a: {\n    address: 10.0.0.0/255.255.255.0\n}", ["2:23: error: write the netmask '255.255.255.0' as a prefix length: /24"]),
        C("bad IPv6 address", "[system] a: {\n    address: fd00::1::2\n}", ["2:21: error: '::' may appear only once in an IPv6 address"]),

        // MARK: Services
        C("port 0", P + "    allow: tcp/0\n}", ["4:16: error: port 0 is not a valid port"]),
        C("port 70000", P + "    allow: udp/70000\n}", ["4:16: error: port 70000 is out of range (1-65535)"]),
        C("reversed port range", P + "    allow: tcp/8100-8000\n}", ["4:16: error: reversed port range '8100-8000' (did you mean 8000-8100?)"]),
        C("non-numeric port", P + "    allow: tcp/ssh\n}", ["4:16: error: expected a port number, found 'ssh'"]),
        C("non-numeric end of a port range", P + "    allow: tcp/8000-x\n}", ["4:21: error: expected a port number, found 'x'"]),
        C("every bad port of one list", P + "    allow: tcp/0, udp/70000, tcp/8100-8000, tcp/ssh\n}", ["4:16: error: port 0 is not a valid port", "4:23: error: port 70000 is out of range (1-65535)", "4:34: error: reversed port range '8100-8000' (did you mean 8000-8100?)", "4:49: error: expected a port number, found 'ssh'"]),
        C("bad protocol with a port", P + "    allow: tpc/22\n}", ["4:12: error: unknown protocol 'tpc' (expected tcp or udp before a port)"]),
        C("bad protocol", P + "    allow: tcp/22, sctp\n}", ["4:20: error: unknown service 'sctp' (expected any, icmp, tcp, udp, tcp/PORT, udp/FIRST-LAST or a service name of /etc/services)"]),
        C("bad protocol in an expect", "[expect] e: {\n    from: ws-1\n    to: srv-1\n    deny: gre\n}", ["4:11: error: unknown service 'gre' (expected any, icmp, tcp, udp, tcp/PORT, udp/FIRST-LAST or a service name of /etc/services)"]),
        C("service name not in /etc/services", P + "    allow: ssh, telnet\n}", ["4:17: error: unknown service 'telnet' (expected any, icmp, tcp, udp, tcp/PORT, udp/FIRST-LAST or a service name of /etc/services)"]),
        C("service name misspelt", P + "    allow: shs\n}", ["4:12: error: unknown service 'shs', did you mean 'ssh'? (expected any, icmp, tcp, udp, tcp/PORT, udp/FIRST-LAST or a service name of /etc/services)"]),
        C("service of a protocol allow cannot say", P + "    allow: sctp-only\n}", ["4:12: error: unknown service 'sctp-only' (expected any, icmp, tcp, udp, tcp/PORT, udp/FIRST-LAST or a service name of /etc/services)"]),
        C("service names in allow and in an expect", P + "    allow: ssh, domain, www\n}\n[expect] e: {\n    from: ws-1\n    to: srv-1\n    allow: ssh\n    deny: https\n}", []),

        // MARK: Time
        C("unknown day", P + "    allow: any\n    active-hours: mon-fry 08:00-18:00\n}", ["5:23: error: unknown day 'fry' (expected mon…sun, daily, weekdays or weekends)"]),
        C("hour 25", P + "    allow: any\n    active-hours: daily 25:00-26:00\n}", ["5:25: error: bad time '25:00' (expected HH:MM, 00:00 to 23:59)"]),
        C("missing '-' between times", P + "    allow: any\n    active-hours: mon-fri 08:00 18:00\n}", ["5:33: error: expected '-' between start and end time, found '18:00'"]),
        C("bad second window", P + "    allow: any\n    active-hours: mon 08:00-12:00; tue 08:00-1200\n}", ["5:46: error: bad time '1200' (expected HH:MM, 00:00 to 24:00)"]),
        C("bad web time-window", "r: {\n    match-domain: example.com\n    action: deny\n    time-window: weekdays 8-18\n}", ["4:27: error: bad time '8' (expected HH:MM, 00:00 to 23:59)"]),
        C("unknown timezone with did-you-mean", P + "    allow: any\n    timezone: Europe/Berln\n}", ["5:15: error: unknown timezone 'Europe/Berln', did you mean 'Europe/Berlin'? (expected an IANA name such as Europe/Berlin, or utc/local)"]),
        C("unknown timezone", P + "    allow: any\n    timezone: Mars/Olympus\n}", ["5:15: error: unknown timezone 'Mars/Olympus' (expected an IANA name such as Europe/Berlin, or utc/local)"]),
        C("bad enabled", P + "    allow: any\n    enabled: maybe\n}", ["5:14: error: enabled must be yes or no, found 'maybe'"]),

        // MARK: Web rules
        C("missing domain list (with its path)", "r: {\n    match-domain-list: lists/missing.txt\n    action: deny\n}", ["2:24: error: cannot read domain list $DIR/rules.d/lists/missing.txt: No such file or directory (ENOENT)"]),
        C("unreadable domain list (a directory)", "r: {\n    match-domain-list: lists\n    action: deny\n}", ["2:24: error: cannot read domain list $DIR/rules.d/lists: Is a directory (EISDIR)"],
          files: ["rules.d/lists/ok.txt": "example.com\n"]),
        C("bad entry in a domain list", "r: {\n    match-domain-list: lists/bad.txt\n    action: deny\n}", ["rules.d/lists/bad.txt:3:4: error: bad domain 'bad domain.com': whitespace not allowed (only letters, digits, '-', '_' and '.')", "2:24: note: list named here"],
          files: ["rules.d/lists/bad.txt": "# blocked\nexample.com\nbad domain.com\n"]),
        C("domain list relative to the policy file", "r: {\n    match-domain-list: ../shared/bad.txt\n    action: deny\n}", ["shared/bad.txt:1:3: error: bad domain 'ex*mple.com': '*' is only allowed as a leading '*.'", "2:24: note: list named here"],
          files: ["shared/bad.txt": "ex*mple.com\n"]),
        C("bad inline domain", "r: {\n    match-domain: example.com, exa mple.org\n    action: deny\n}", ["2:35: error: bad domain 'exa mple.org': whitespace not allowed (only letters, digits, '-', '_' and '.')"]),
        C("bad PCRE2 pattern", "r: {\n    match-uri-regex: ^/a(b\n    match-domain: example.com\n    action: deny\n}", ["2:27: error: bad regular expression '^/a(b': missing closing parenthesis at offset 5"]),
        C("bad PCRE2 pattern, offset mid-pattern", "r: {\n    match-host-regex: a{2,1}x\n    action: deny\n}", ["2:28: error: bad regular expression 'a{2,1}x': numbers out of order in {} quantifier at offset 5"]),
        C("bad PCRE2 pattern after a multi-byte character", "r: {\n    match-host-regex: é+(\n    action: deny\n}", ["2:26: error: bad regular expression 'é+(': missing closing parenthesis at offset 3"]),
        C("bad action", "r: {\n    match-domain: example.com\n    action: block\n}", ["3:13: error: bad action 'block' (expected permit, deny, warn or aup)"]),
        C("web rule without a match key", "r: {\n    action: deny\n}", ["1:1: error: web rule 'r' has no match key (expected one of match-domain, match-domain-list, match-sni, match-uri-regex, match-host-regex, match-source, match-user-agent)"]),
        C("web rule without an action", "r: {\n    match-domain: example.com\n}", ["1:1: error: web rule 'r' needs 'action:'"]),
        C("unknown match-source", "r: {\n    match-domain: example.com\n    match-source: workstation\n    action: deny\n}", ["3:19: error: unknown tag or system 'workstation' in match-source, did you mean 'workstations'?"]),
        C("bad expect url", "[expect] e: {\n    url: example.org/x\n    verdict: deny\n}", ["2:10: error: url must start with http:// or https://, found 'example.org/x'"]),
        C("bad expect verdict", "[expect] e: {\n    url: https://example.org/\n    verdict: block\n}", ["3:14: error: bad verdict 'block' (expected permit, deny, warn or aup)"]),

        // MARK: enforcer.conf
        C("conf: unknown section (once, at the header)", "", ["enforcer.conf:1:1: error: unknown section [polcy], did you mean [policy]? (expected [policy], [kernel], [web], [state], [run], [log] or [metrics])"],
          files: ["enforcer.conf": "[polcy]\ndefault_action = \"deny\"\ntime_window_tz = \"utc\"\n"]),
        C("conf: swapped letters are one edit", "", ["enforcer.conf:2:1: error: unknown key 'tabel' in [kernel], did you mean 'table'? (expected table, mark_mask, queue, queue_fail, queue_full, queue_maxlen, queue_syn_rate, queue_syn_burst, recent_from, web_ports, on_drift)"],
          files: ["enforcer.conf": "[kernel]\ntabel = \"x\"\n"]),
        C("conf: unknown key with did-you-mean", "", ["enforcer.conf:2:1: error: unknown key 'default_actoin' in [policy], did you mean 'default_action'? (expected default_action, time_window_tz)"],
          files: ["enforcer.conf": "[policy]\ndefault_actoin = \"deny\"\n"]),
        C("conf: bad default_action", "", ["enforcer.conf:3:18: error: default_action must be one of \"permit\", \"deny\", \"warn\", \"aup\"; found \"block\""],
          files: ["enforcer.conf": "# web rules\n[policy]\ndefault_action = \"block\"\n"]),
        C("conf: non-contiguous mark_mask", "", ["enforcer.conf:2:13: error: mark_mask must be one contiguous run of bits, such as 0x00ffff00; found 0x00ff0f00"],
          files: ["enforcer.conf": "[kernel]\nmark_mask = 0x00ff0f00\n"]),
        C("conf: zero mark_mask", "", ["enforcer.conf:2:13: error: mark_mask must be a non-zero 32-bit mask such as 0x00ffff00; found 0"],
          files: ["enforcer.conf": "[kernel]\nmark_mask = 0\n"]),
        C("conf: bad time_window_tz", "", ["enforcer.conf:2:18: error: unknown timezone 'Mars/Olympus' (expected local, utc or an IANA name such as Europe/Berlin)"],
          files: ["enforcer.conf": "[policy]\ntime_window_tz = \"Mars/Olympus\"\n"]),
        C("conf: bad queue_maxlen", "", ["enforcer.conf:2:16: error: queue_maxlen must be a number of packets from 1 to 4294967295; found 0"],
          files: ["enforcer.conf": "[kernel]\nqueue_maxlen = 0\n"]),
        C("conf: bad acknowledge_for", "", ["enforcer.conf:2:19: error: acknowledge_for must be a duration such as \"1h\", \"30m\" or \"1h30m\"; found \"an hour\""],
          files: ["enforcer.conf": "[web]\nacknowledge_for = \"an hour\"\n"]),
        C("conf: bad portal_listen", "", ["enforcer.conf:2:17: error: portal_listen must be ADDRESS:PORT, such as \"192.168.50.1:8088\" or \"[fd00::1]:8088\"; found \"gateway:80\""],
          files: ["enforcer.conf": "[web]\nportal_listen = \"gateway:80\"\n"]),
        C("conf: metrics listen without an address", "", ["enforcer.conf:2:10: error: listen must be ADDRESS:PORT, such as \"127.0.0.1:9469\" or \"[::1]:9469\", or \"\" (no metrics endpoint); found \"localhost:9469\""],
          files: ["enforcer.conf": "[metrics]\nlisten = \"localhost:9469\"\n"]),
        C("conf: metrics listen as a number", "", ["enforcer.conf:2:10: error: listen must be ADDRESS:PORT, such as \"127.0.0.1:9469\", or \"\" (no metrics endpoint); found 9469"],
          files: ["enforcer.conf": "[metrics]\nlisten = 9469\n"]),
        C("conf: metrics misspelled key", "", ["enforcer.conf:2:1: error: unknown key 'listn' in [metrics], did you mean 'listen'? (expected listen)"],
          files: ["enforcer.conf": "[metrics]\nlistn = \"127.0.0.1:9469\"\n"]),
        C("conf: deny_page as a word", "", ["enforcer.conf:2:13: error: deny_page must be true (a denied plain-HTTP request is redirected to the portal's block page) or false (it is only reset); found \"yes\""],
          files: ["enforcer.conf": "[web]\ndeny_page = \"yes\"\n"]),
        C("conf: deny_page misspelled as a value", "", ["enforcer.conf:2:13: error: bad value 'tru' (expected a \"string\", a number, true/false or [a, list])"],
          files: ["enforcer.conf": "[web]\ndeny_page = tru\n"]),
        C("conf: deny_page misspelled as a key", "", ["enforcer.conf:2:1: error: unknown key 'deny_pages' in [web], did you mean 'deny_page'? (expected fail, portal_url, portal_listen, acknowledge_for, deny_page, block_quic, log_flows, log_repeat_window)"],
          files: ["enforcer.conf": "[web]\ndeny_pages = false\n"]),
        C("conf: bad on_stop", "", ["enforcer.conf:2:11: error: on_stop must be \"keep\" (the ruleset stays in force) or \"flush\" (enforcer's table is removed); found \"drop\""],
          files: ["enforcer.conf": "[run]\non_stop = \"drop\"\n"]),
        C("conf: bad log_flows", "", ["enforcer.conf:2:13: error: log_flows must be \"all\", \"deny\" (flows not permitted) or \"none\"; found \"some\""],
          files: ["enforcer.conf": "[web]\nlog_flows = \"some\"\n"]),
        C("conf: bad log level", "", ["enforcer.conf:2:9: error: level must be \"error\", \"warning\", \"info\" or \"debug\"; found \"verbose\""],
          files: ["enforcer.conf": "[log]\nlevel = \"verbose\"\n"]),
        C("conf: duplicate key", "", ["enforcer.conf:3:1: error: duplicate key 'queue' in [kernel]", "enforcer.conf:2:1: note: first set here"],
          files: ["enforcer.conf": "[kernel]\nqueue = 1\nqueue = 2\n"]),

        // MARK: Files
        C("file name without NN-", "", ["rules.d/badname.policy:1:1: error: policy file name 'badname.policy' must be NN-name.policy (two digits, a hyphen, a name)"],
          files: ["rules.d/badname.policy": "[system] z: {\n    address: 10.0.0.99\n}\n"]),
        C("file name with one digit", "", ["rules.d/1-x.policy:1:1: error: policy file name '1-x.policy' must be NN-name.policy (two digits, a hyphen, a name)"],
          files: ["rules.d/1-x.policy": ""]),

        // MARK: Warnings
        C("policy without allow grants nothing", "[policy] p: {\n    senders: workstations\n    receivers: servers\n}", ["1:10: warning: policy 'p' has no 'allow': it grants nothing (default deny); add 'allow: any' or a list such as 'allow: tcp/22'"]),
        C("web rule with only a URI regex", "r: {\n    match-uri-regex: ^http://[^/]+/admin\n    action: deny\n}", ["1:1: warning: web rule 'r' matches only by URI regex: for TLS only the host is visible, so it is matched against https://SNI/ and cannot see paths"]),

        // MARK: Everything in one run
        C("three independent errors in three blocks", "[system] a: {\n    address: 10.0.0.256\n}\n[policy] p: {\n    senders: nobody\n    receivers: servers\n    allow: any\n}\nr: {\n    match-domain: example.com\n    action: block\n}", ["2:21: error: '256' is out of range for an IPv4 address part (0-255)", "5:14: error: unknown tag 'nobody': no system carries it", "11:13: error: bad action 'block' (expected permit, deny, warn or aup)"]),
        C("two errors in one block", P + "    allow: tcp/0\n    active-hours: someday 08:00-09:00\n}", ["4:16: error: port 0 is not a valid port", "5:19: error: unknown day 'someday' (expected mon…sun, daily, weekdays or weekends)"]),
        C("syntax and semantic errors together", "[system] a: {\n    address 10.0.0.9\n}\n[policy] p: {\n    senders: nobody\n    receivers: servers\n    allow: any\n}", ["2:13: error: expected ':' after the key 'address', found '10.0.0.9'", "5:14: error: unknown tag 'nobody': no system carries it"]),
        C("errors in two files, in file order", "[system] a: {\n    address: 10.0.0.256\n}", ["2:21: error: '256' is out of range for an IPv4 address part (0-255)", "rules.d/20-u.policy:2:2: error: unknown kind 'polcy', did you mean 'policy'? (expected system, policy, gateway-policy or expect; a block without a kind is a web rule)"],
          files: ["rules.d/20-u.policy": "\n[polcy] q: {\n    senders: workstations\n}\n"]),

        // MARK: Valid text
        C("comments of all three styles", "// top\n# hash\n/* block\n   comment */\n[system] a: { // after the brace\n    address: 10.0.0.9 # office\n    tags: web /* inline */, db // two tags\n} # done", []),
        C("comment markers inside values", P + "    allow: any\n    description: see https://wiki.example/x#y\n}\nr: {\n    match-uri-regex: ^https?://[^#/]+/admin#top\n    match-domain: example.com\n    action: deny\n}", []),
        C("CRLF line ends", "[system] a: {\r\n    address: 10.0.0.9\r\n    tags: web\r\n}\r\n", []),
        // A marker starts a comment at a word's start only: after a blank, a line start, a
        // CR or a block comment; not after other bytes, nor inside quotes.
        C("comment right after a block comment", "[system] a: {\n    address: 10.0.0.9 /* x */# office\n    tags: web /*y*/// two\n}", []),
        C("comment after a CR", "[system] a: {\n    address: 10.0.0.9\r# office\n}", []),
        C("marker inside a quoted value", P + "    allow: any\n    description: \"ticket #12 // see /* x\"\n}", []),
        C("marker inside a word", "[system] a: {\n    address: 10.0.0.9\n    tags: web#1\n}", ["3:11: error: bad tag 'web#1': use letters, digits, '.', '_', '-'"]),
        C("tabs for indentation", "[system] a: {\n\taddress:\t10.0.0.9\n}", []),
    ]

    @Test(arguments: cases)
    func diagnostics(_ c: DiagnosticCase) {
        var files = c.files
        files["rules.d/00-inv.policy"] = inventory
        files["rules.d/10-t.policy"] = c.policy
        let dir = DiagnosticDir(files)
        defer { dir.remove() }
        let result = dir.load()
        let actual = dir.render(result.diagnostics)
        #expect(actual == c.expected, "\(c.label)")
        #expect((result.policySet == nil) == c.expected.contains { $0.contains(": error: ") },
                "a result holds a policy set exactly when there is no error")
    }

    // MARK: - What the valid text means

    @Test func commentsAreIgnoredButNotInsideValues() throws {
        let text = """
            // header comment
            # hash comment
            /* a block comment
               over two lines */
            [system] "web server 1": {   // after the brace
                address: 10.0.0.50 # office LAN
                tags: web /* inline */, db
            }
            [policy] "Web for workstations": {
                senders: workstations // who
                receivers: web
                allow: tcp/443 # https only
                description: see https://wiki.example/x#y
            }
            [expect] e: {
                url: https://example.org/a#b // a fragment is not a comment
                verdict: deny
            }
            r: {
                match-uri-regex: ^https?://[^#/]+/admin
                match-domain: example.com
                action: deny
            }
            """
        let dir = DiagnosticDir(["rules.d/00-inv.policy": inventory, "rules.d/10-t.policy": text])
        defer { dir.remove() }
        let result = dir.load()
        #expect(dir.render(result.diagnostics) == [])
        let set = try #require(result.policySet)
        let server = try #require(set.system(named: "web server 1"))
        #expect(server.addresses.map(\.description) == ["10.0.0.50"])
        #expect(server.tags == ["web", "db"])
        let policy = try #require(set.policies.first { $0.name == "Web for workstations" })
        #expect(policy.description == "see https://wiki.example/x#y")
        #expect(policy.allow == [.tcp(PortRange(443))])
        #expect(policy.senders == ["workstations"])
        let rule = try #require(set.webRules.first)
        #expect(rule.uriPatterns.map(\.source) == ["^https?://[^#/]+/admin"])
        let expectation = try #require(set.expectations.first)
        guard case .web(let url, let verdict, _) = expectation.check else {
            Issue.record("expected a web expectation"); return
        }
        #expect(url == "https://example.org/a#b")
        #expect(verdict == .deny)
    }

    @Test func quotedNamesWithSpaces() throws {
        let text = """
            [policy] "Server access for Workstations": {
                senders: workstations
                receivers: servers
                allow: tcp/22
            }
            "Block bad sites @ work": {
                match-domain: bad.example
                action: deny
            }
            """
        let dir = DiagnosticDir(["rules.d/00-inv.policy": inventory, "rules.d/10-t.policy": text])
        defer { dir.remove() }
        let result = dir.load()
        #expect(dir.render(result.diagnostics) == [])
        let set = try #require(result.policySet)
        #expect(set.policies.map(\.name) == ["Server access for Workstations"])
        #expect(set.webRules.map(\.name) == ["Block bad sites @ work"])
    }

    @Test func filesLoadInLexicographicOrder() throws {
        func policy(_ name: String) -> String {
            "[policy] \(name): {\n    senders: workstations\n    receivers: servers\n    allow: any\n}\n"
        }
        func rule(_ name: String) -> String { "\(name): {\n    match-domain: \(name).example\n    action: deny\n}\n" }
        let dir = DiagnosticDir([
            "rules.d/00-inv.policy": inventory,
            "rules.d/90-last.policy": policy("fifth") + rule("w5"),
            "rules.d/10-beta.policy": policy("third") + rule("w3"),
            "rules.d/05-zulu.policy": policy("first") + policy("second") + rule("w1") + rule("w2"),
            "rules.d/10-alpha.policy": "",
            "rules.d/50-mid.policy": policy("fourth") + rule("w4"),
            "rules.d/README": "not a policy file, ignored",
        ])
        defer { dir.remove() }
        let result = dir.load()
        #expect(dir.render(result.diagnostics) == [])
        let set = try #require(result.policySet)
        #expect(set.policies.map(\.name) == ["first", "second", "third", "fourth", "fifth"])
        #expect(set.webRules.map(\.name) == ["w1", "w2", "w3", "w4", "w5"])
        #expect(set.files.map { ($0 as NSString).lastPathComponent }
                == ["00-inv.policy", "05-zulu.policy", "10-alpha.policy", "10-beta.policy", "50-mid.policy", "90-last.policy"])
        #expect(set.policies.map(\.order) == set.policies.map(\.order).sorted())
    }

    @Test func emptyRulesDirectoryIsValid() throws {
        let dir = DiagnosticDir([:])
        defer { dir.remove() }
        let result = dir.load()
        #expect(dir.render(result.diagnostics) == [])
        let set = try #require(result.policySet)
        #expect(set.systems.isEmpty && set.policies.isEmpty && set.webRules.isEmpty && set.expectations.isEmpty)
    }

    @Test func missingDirectories() {
        let dir = DiagnosticDir([:])
        defer { dir.remove() }
        let missing = PolicyLoader.load(directory: dir.path + "/nowhere")
        #expect(missing.policySet == nil)
        #expect(missing.diagnostics.map(\.message) == ["no policy directory at '\(dir.path)/nowhere'"])
        try? FileManager.default.removeItem(atPath: dir.path + "/rules.d")
        let noRules = dir.load()
        #expect(noRules.policySet == nil)
        #expect(noRules.diagnostics.map(\.message) == ["no rules.d/ directory in '\(dir.path)'"])
    }

    // MARK: - The shipped examples

    static let examplesRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples").path

    static let exampleExpectations: [(String, [String])] = [
        ("enclave", []),
        ("enforcegate", ["rules.d/10-allowswissdomains.policy:2:1: warning: web rule 'allow-swissdomains' matches only by URI regex: for TLS only the host is visible, so it is matched against https://SNI/ and cannot see paths"]),
    ]

    @Test(arguments: exampleExpectations)
    func examplePasses(_ name: String, _ expected: [String]) throws {
        let path = Self.examplesRoot + "/" + name
        let result = PolicyLoader.load(directory: path)
        let rendered = result.diagnostics.map { d in
            d.description.replacingOccurrences(of: path + "/", with: "")
        }
        #expect(rendered == expected)
        let set = try #require(result.policySet)
        #expect(!set.policies.isEmpty || !set.webRules.isEmpty)
    }

    // MARK: - Nothing crashes

    /// Every text file of the examples (policies, enforcer.conf, domain lists).
    static let fuzzTargets: [String] = {
        let fm = FileManager.default
        var out: [String] = []
        for example in ["enclave", "enforcegate"] {
            let root = examplesRoot + "/" + example
            guard let walker = fm.enumerator(atPath: root) else { continue }
            for case let relative as String in walker {
                var isDirectory: ObjCBool = false
                if fm.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue {
                    out.append(example + "/" + relative)
                }
            }
        }
        return out.sorted()
    }()

    @Test func fuzzTargetsFound() {
        #expect(Self.fuzzTargets.filter { $0.hasSuffix(".policy") }.count >= 11)
        #expect(Self.fuzzTargets.contains("enclave/enforcer.conf"))
    }

    /// 500 deterministic mutations of each example file; the loader must return every time
    /// (errors are fine, a crash or a hang is not).
    @Test(arguments: fuzzTargets)
    func mutationsNeverCrash(_ target: String) throws {
        let example = String(target.prefix { $0 != "/" })
        let relative = String(target.dropFirst(example.count + 1))
        let source = Self.examplesRoot + "/" + example
        // A private copy of the whole example, so lists and other files resolve as usual.
        let dir = DiagnosticDir([:])
        defer { dir.remove() }
        try FileManager.default.removeItem(atPath: dir.path)
        try FileManager.default.copyItem(atPath: source, toPath: dir.path)
        let original = try #require(FileManager.default.contents(atPath: source + "/" + relative)).map { $0 }
        let file = URL(fileURLWithPath: dir.path + "/" + relative)

        var random = SplitMix64(seed: UInt64(truncatingIfNeeded: target.utf8.reduce(5381) { ($0 &* 33) &+ Int($1) }))
        var loads = 0
        for round in 0..<500 {
            // Stack 1–4 mutations; every 50th round starts from an accumulated mutant instead.
            var bytes = original
            for _ in 0..<(1 + Int(random.next() % 4)) { mutate(&bytes, &random) }
            if round % 50 == 49 { for _ in 0..<20 { mutate(&bytes, &random) } }
            try Data(bytes).write(to: file)
            let result = dir.load()
            // Touch everything the result holds, as `check` would when printing it.
            _ = result.diagnostics.map(\.description)
            if let set = result.policySet { _ = set.policies.count + set.webRules.count }
            loads += 1
        }
        #expect(loads == 500)
    }
}

/// Deterministic pseudo-random numbers (SplitMix64), so a failing mutation or edit can be replayed.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

/// Bytes that matter to the policy and TOML grammars, plus a few awkward ones.
private let interestingBytes: [[UInt8]] = [
    "{", "}", "[", "]", ":", ",", ";", "-", "/", "*", "#", "\"", "\\", "=", " ", "\t", "\n", "\r\n",
    "/*", "*/", "//", "0", "9", "255", "65535", "99999999999999999999", "::", "/33", "a", "Z", "é", "日本",
    "💥", "\u{0}", "(", ")", "?", "+", "$", "^", ".", "24:00", "mon-sun", "0x", "'", "\u{FEFF}",
].map { Array($0.utf8) } + [[0xFF], [0xC3], [0x80], [0xE2, 0x82]]

private func mutate(_ bytes: inout [UInt8], _ random: inout SplitMix64) {
    let at = random.below(bytes.count + 1)
    switch random.below(8) {
    case 0:  // delete a run of bytes
        guard !bytes.isEmpty, at < bytes.count else { return }
        bytes.removeSubrange(at..<min(bytes.count, at + 1 + random.below(8)))
    case 1:  // insert an interesting token
        bytes.insert(contentsOf: interestingBytes[random.below(interestingBytes.count)], at: at)
    case 2:  // insert a random byte
        bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
    case 3:  // replace a byte
        guard at < bytes.count else { return }
        bytes[at] = random.below(2) == 0 ? UInt8(truncatingIfNeeded: random.next())
            : interestingBytes[random.below(interestingBytes.count)].first ?? 0
    case 4:  // truncate
        bytes.removeSubrange(at...)
    case 5, 6:  // duplicate, drop or swap whole lines
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        guard !lines.isEmpty else { return }
        let i = random.below(lines.count), j = random.below(lines.count)
        switch random.below(3) {
        case 0: lines.insert(lines[i], at: j)
        case 1: lines.remove(at: i)
        default: lines.swapAt(i, j)
        }
        bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
    default:  // copy a run of bytes elsewhere
        guard !bytes.isEmpty else { return }
        let from = random.below(bytes.count)
        let run = Array(bytes[from..<min(bytes.count, from + 1 + random.below(16))])
        bytes.insert(contentsOf: run, at: min(at, bytes.count))
    }
}
