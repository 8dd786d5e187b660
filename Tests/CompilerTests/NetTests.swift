import Testing
@testable import Compiler

// Canonical IPv6 text below is what `nft list ruleset` prints (glibc inet_ntop): RFC 5952,
// as Python's ipaddress also prints, except the dotted tails for ::ffff:a.b.c.d and
// ::a.b.c.d, which were checked against nft 1.0.6 in a scratch network namespace.

struct NetAddressParsingTests {
    @Test(arguments: [
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("10.0.0.1", "10.0.0.1"),
        ("192.168.100.200", "192.168.100.200"),
        ("1.20.100.0", "1.20.100.0"),
        ("0.10.0.100", "0.10.0.100"),
    ])
    func parsesIPv4(text: String, canonical: String) throws {
        let address = try IPAddress.parse(text)
        #expect(address.family == .v4)
        #expect(address.description == canonical)
        #expect(try IPAddress.parse(address.description) == address)
    }

    @Test(arguments: [
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("0:0:0:0:0:0:0:0", "::"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8::0:1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),           // first of two equal runs
        ("1:0:0:0:1:0:0:0", "1::1:0:0:0"),
        ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
        ("1:0:0:2::3", "1:0:0:2::3"),                             // longer later run wins
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),                   // a lone zero group stays
        ("0:1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"),
        ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("0:0:1::", "0:0:1::"),
        ("1::0", "1::"),
        ("fe80::abcd:0:0:1", "fe80::abcd:0:0:1"),
        ("FE80::ABCD:0000:0000:0001", "fe80::abcd:0:0:1"),
        ("abcd:ef::0:1", "abcd:ef::1"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("::ffff:0:0:0", "::ffff:0:0:0"),
        ("::1:0:0", "::1:0:0"),
        ("::0.0.1.2", "::102"),                                    // zero run of 7: no dotted tail
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
        ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
        // glibc's dotted tails, as nft prints them.
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
        ("::FFFF:1.2.3.4", "::ffff:1.2.3.4"),
        ("::ffff:0102:0304", "::ffff:1.2.3.4"),
        ("::ffff:0:0", "::ffff:0.0.0.0"),
        ("::ffff:0:5", "::ffff:0.0.0.5"),
        ("::ffff:1:0", "::ffff:0.1.0.0"),
        ("::ffff:ffff:ffff", "::ffff:255.255.255.255"),
        ("::1.2.3.4", "::1.2.3.4"),
        ("::1:2", "::0.1.0.2"),
        ("::2:3", "::0.2.0.3"),
        ("::ffff:0", "::255.255.0.0"),
        ("0:0:0:0:0:1:0:0", "::1:0:0"),
        ("::1:ffff:1.2.3.4", "::1:ffff:102:304"),
        ("::fffe:1.2.3.4", "::fffe:102:304"),
    ])
    func parsesIPv6(text: String, canonical: String) throws {
        let address = try IPAddress.parse(text)
        #expect(address.family == .v6)
        #expect(address.description == canonical)
        #expect(try IPAddress.parse(address.description) == address)
    }

    @Test(arguments: [
        // IPv4
        ("", "expected an IP address, found nothing", 0),
        ("010.1.1.1", "ambiguous leading zero in '010' (some tools read it as octal); write 10", 0),
        ("1.2.3.00", "ambiguous leading zero in '00' (some tools read it as octal); write 0", 6),
        ("1.2.3.0300", "ambiguous leading zero in '0300' (some tools read it as octal)", 6),
        ("256.1.1.1", "'256' is out of range for an IPv4 address part (0-255)", 0),
        ("1.2.3.99999999999", "'99999999999' is out of range for an IPv4 address part (0-255)", 6),
        ("1.2.3", "incomplete IPv4 address: expected 4 numbers separated by dots, found 3", 5),
        ("1", "incomplete IPv4 address: expected 4 numbers separated by dots, found 1", 1),
        ("1.2.3.4.5", "too many parts: an IPv4 address has 4 numbers separated by dots", 7),
        ("1.2.3.", "an IPv4 address cannot end with '.'", 5),
        ("1..2.3", "missing number before '.' in IPv4 address", 2),
        (".1.2.3", "missing number before '.' in IPv4 address", 0),
        ("1.2.3.4 ", "unexpected whitespace in IPv4 address", 7),
        (" 1.2.3.4", "unexpected whitespace in IPv4 address", 0),
        ("1.2.3.x", "unexpected character 'x' in IPv4 address", 6),
        ("1.2.3.-4", "unexpected character '-' in IPv4 address", 6),
        ("1.2.3.4é", "unexpected character 'é' in IPv4 address", 7),
        ("1\u{301}.2.3.4", "unexpected character '1\u{301}' in IPv4 address", 0),
        ("example.com", "'example.com' is not an IP address", 0),
        ("localhost", "'localhost' is not an IP address", 0),
        ("1.2.3.4%eth0", "zone ids such as '%eth0' are not supported; write the address without '%eth0'", 7),
        ("10.0.0.0/8", "expected a single address, but '/8' makes it a network", 8),
        // IPv6
        ("fe80::1%eth0", "zone ids such as '%eth0' are not supported; write the address without '%eth0'", 7),
        ("fé80::1%eth0", "zone ids such as '%eth0' are not supported; write the address without '%eth0'", 7),
        ("[::1]", "brackets are not part of an address; write it without '[' and ']'", 0),
        (":1:2:3:4:5:6:7", "an IPv6 address cannot start with a single ':'", 0),
        (":", "an IPv6 address cannot start with a single ':'", 0),
        ("1:2:3:4:5:6:7:", "an IPv6 address cannot end with a single ':'", 13),
        (":::", "':::' is not valid in an IPv6 address", 0),
        ("1:::2", "':::' is not valid in an IPv6 address", 1),
        ("1::2::3", "'::' may appear only once in an IPv6 address", 4),
        ("12345::", "'12345' has more than 4 hex digits; an IPv6 group is 16 bits", 0),
        ("1:2:3:4:5:6:7", "IPv6 address has 7 groups; expected 8, or '::' for the zero groups", 0),
        ("1:2:3:4:5:6:7:8:9", "too many groups: an IPv6 address has 8", 16),
        ("1:2:3:4:5:6:7::8", "'::' must stand for at least one zero group, but there are already 8", 13),
        ("1::2:3:4:5:6:7:8", "'::' must stand for at least one zero group, but there are already 8", 1),
        ("1:2:3:4:5:6:7:1.2.3.4", "too many groups: an IPv6 address has 8", 14),
        ("::ffff:1.2.3", "incomplete embedded IPv4 address: expected 4 numbers separated by dots, found 3", 12),
        ("::ffff:1.2.3.4:5", "an embedded IPv4 address must come last in an IPv6 address", 14),
        ("1.2.3.4::", "an embedded IPv4 address must come last in an IPv6 address", 7),
        ("::ffff:01.2.3.4", "ambiguous leading zero in '01' (some tools read it as octal); write 1", 7),
        ("::ffff:1a.2.3.4", "unexpected character 'a' in embedded IPv4 address", 8),
        ("2001:db8::g", "unexpected character 'g' in IPv6 address", 10),
        ("2001:db8:: 1", "unexpected whitespace in IPv6 address", 10),
        ("::1 ", "unexpected whitespace in IPv6 address", 3),
        ("2001:db8::1-", "unexpected character '-' in IPv6 address", 11),
    ])
    func rejectsBadAddresses(text: String, message: String, offset: Int) {
        #expect(throws: ValueError(message, at: offset)) { try IPAddress.parse(text) }
    }

    @Test func parsesSubstrings() throws {
        let line = "allow from 10.0.0.1 to ::1"
        let words = line.split(separator: " ")
        #expect(try IPAddress.parse(words[2]) == IPAddress(v4: 0x0A00_0001))
        #expect(try IPAddress.parse(words[4]) == IPAddress(v6: 1))
        // Offsets count from the start of the substring, not of the line.
        #expect(throws: ValueError("unexpected character 'x' in IPv4 address", at: 2)) {
            try IPAddress.parse("from 10x".split(separator: " ")[1])
        }
    }

    /// The one-pass reading of a plain dotted quad that the loader tries first agrees with
    /// the full parser on every text of digits and dots: the same value, or both refuse.
    @Test func thePlainDottedQuadPathAgreesWithTheFullParser() {
        var generator = SystemRandomNumberGenerator()
        var texts = ["1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.4.5",
                     "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4.", "000.0.0.0", "10.0.0.255", "10.0.0.2550", "1.2.3.00"]
        for _ in 0..<20_000 {
            let length = Int.random(in: 1...17, using: &generator)
            texts.append(String((0..<length).map { _ in "0123456789.".randomElement(using: &generator)! }))
        }
        for text in texts {
            var copy = text
            let (fast, full) = copy.withUTF8 { bytes in
                (IPAddress.plainDottedQuad(bytes), try? IPAddress.parseV4(bytes, from: 0, embedded: false))
            }
            #expect(fast == full, "\(text)")
            if let fast { #expect((try? AddressBlock.parse(text)) == AddressBlock(IPAddress(v4: fast)), "\(text)") }
        }
    }

    @Test func bytesAreNetworkOrder() throws {
        #expect(try IPAddress.parse("1.2.3.4").bytes == [1, 2, 3, 4])
        #expect(try IPAddress.parse("2001:db8::ff").bytes == [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [0xff])
        #expect(IPAddress(bytes: [1, 2, 3, 4]) == IPAddress(v4: 0x0102_0304))
        #expect(IPAddress(bytes: [UInt8](repeating: 0xff, count: 16)) == IPAddress(v6: .max))
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 4))?.family == .v4)
    }

    @Test func ordersIPv4BeforeIPv6() throws {
        let texts = ["::1", "10.0.0.2", "::", "10.0.0.1", "255.255.255.255", "0.0.0.0"]
        let sorted = try texts.map { text throws(ValueError) in try IPAddress.parse(text) }.sorted().map(\.description)
        #expect(sorted == ["0.0.0.0", "10.0.0.1", "10.0.0.2", "255.255.255.255", "::", "::1"])
        // Same value, different family: never equal.
        #expect(IPAddress(v4: 1) != IPAddress(v6: 1))
    }

    @Test func roundTripsRandomAddresses() throws {
        var random = NetTestRandom(seed: 42)
        for _ in 0..<20_000 {
            // Sparse groups exercise the zero-run rules.
            var value: UInt128 = 0
            for _ in 0..<8 {
                let roll = random.next() % 4
                value = value << 16 | (roll == 0 ? UInt128(random.next() & 0xffff) : roll == 1 ? 0xffff : 0)
            }
            let v6 = IPAddress(v6: value)
            #expect(try IPAddress.parse(v6.description) == v6)
            let v4 = IPAddress(v4: UInt32(truncatingIfNeeded: random.next()))
            #expect(try IPAddress.parse(v4.description) == v4)
        }
    }
}

struct NetBlockParsingTests {
    @Test(arguments: [
        ("10.0.0.5", "10.0.0.5", 32, "10.0.0.5", "10.0.0.5"),
        ("10.0.0.5/32", "10.0.0.5", 32, "10.0.0.5", "10.0.0.5"),
        ("10.0.0.0/8", "10.0.0.0/8", 8, "10.0.0.0", "10.255.255.255"),
        ("10.0.0.0/08", "10.0.0.0/8", 8, "10.0.0.0", "10.255.255.255"),
        ("192.168.1.128/25", "192.168.1.128/25", 25, "192.168.1.128", "192.168.1.255"),
        ("0.0.0.0/0", "0.0.0.0/0", 0, "0.0.0.0", "255.255.255.255"),
        ("2001:DB8::/32", "2001:db8::/32", 32, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("::/0", "::/0", 0, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("::1/128", "::1", 128, "::1", "::1"),
        ("::1", "::1", 128, "::1", "::1"),
        ("fe80::/10", "fe80::/10", 10, "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("::ffff:0:0/96", "::ffff:0.0.0.0/96", 96, "::ffff:0.0.0.0", "::ffff:255.255.255.255"),
        ("::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104", 104, "::ffff:10.0.0.0", "::ffff:10.255.255.255"),
    ])
    func parsesBlocks(text: String, canonical: String, prefix: Int, first: String, last: String) throws {
        let block = try AddressBlock.parse(text)
        #expect(block.description == canonical)
        #expect(block.prefixLength == prefix)
        #expect(block.first.description == first)
        #expect(block.last.description == last)
        #expect(try AddressBlock.parse(block.description) == block)
    }

    @Test(arguments: [
        ("10.0.0.1/8", "host bits set in '10.0.0.1/8' (did you mean 10.0.0.0/8?)", 8),
        ("192.168.1.1/24", "host bits set in '192.168.1.1/24' (did you mean 192.168.1.0/24?)", 11),
        ("2001:db8::1/32", "host bits set in '2001:db8::1/32' (did you mean 2001:db8::/32?)", 11),
        ("10.0.0.0/33", "prefix /33 is too long for an IPv4 address (at most /32)", 8),
        ("::/129", "prefix /129 is too long for an IPv6 address (at most /128)", 2),
        ("10.0.0.0/99999999999999999999", "prefix /99999999999999999999 is too long for an IPv4 address (at most /32)", 8),
        ("10.0.0.0/", "missing prefix length after '/'", 9),
        ("/8", "missing address before '/'", 0),
        ("10.0.0.0/abc", "prefix length must be a decimal number, found 'abc'", 9),
        ("10.0.0.0/8/9", "prefix length must be a decimal number, found '8/9'", 9),
        ("10.0.0.0/-1", "prefix length must be a decimal number, found '-1'", 9),
        ("10.0.0.0/ 8", "prefix length must be a decimal number, found ' 8'", 9),
        ("10.0.0.0/255.0.0.0", "write the netmask '255.0.0.0' as a prefix length: /8", 9),
        ("10.0.0.0/255.255.255.255", "write the netmask '255.255.255.255' as a prefix length: /32", 9),
        ("10.0.0.0/255.0.255.0", "prefix length must be a decimal number, found '255.0.255.0'", 9),
        ("10.0.0.256/8", "'256' is out of range for an IPv4 address part (0-255)", 7),
        ("010.0.0.0/8", "ambiguous leading zero in '010' (some tools read it as octal); write 10", 0),
        ("fe80::1%eth0/64", "zone ids such as '%eth0' are not supported; write the address without '%eth0'", 7),
        ("", "expected an IP address, found nothing", 0),
    ])
    func rejectsBadBlocks(text: String, message: String, offset: Int) {
        #expect(throws: ValueError(message, at: offset)) { try AddressBlock.parse(text) }
    }

    @Test func checkedInitializer() throws {
        let ten = try IPAddress.parse("10.0.0.0")
        #expect(AddressBlock(address: ten, prefixLength: 8)?.description == "10.0.0.0/8")
        #expect(AddressBlock(address: ten, prefixLength: 33) == nil)
        #expect(AddressBlock(address: ten, prefixLength: -1) == nil)
        #expect(AddressBlock(address: try IPAddress.parse("10.0.0.1"), prefixLength: 8) == nil)
        #expect(try AddressBlock.parse("10.0.0.0/8").contains(try IPAddress.parse("10.200.0.1")))
        #expect(try !AddressBlock.parse("10.0.0.0/8").contains(try IPAddress.parse("11.0.0.0")))
        #expect(try !AddressBlock.parse("::/0").contains(try IPAddress.parse("1.2.3.4")))
    }

    @Test(arguments: [
        ("10.0.0.1-10.0.0.6", "10.0.0.1-10.0.0.6"),
        ("10.0.0.0/8", "10.0.0.0-10.255.255.255"),
        ("10.0.0.7", "10.0.0.7"),
        ("10.0.0.7-10.0.0.7", "10.0.0.7"),
        ("::1-::FFFF", "::1-::ffff"),
        ("2001:db8::/127", "2001:db8::-2001:db8::1"),
    ])
    func parsesAddressRanges(text: String, canonical: String) throws {
        #expect(try AddressRange.parse(text).description == canonical)
    }

    @Test(arguments: [
        ("10.0.0.6-10.0.0.1", "reversed range '10.0.0.6-10.0.0.1' (did you mean 10.0.0.1-10.0.0.6?)", 0),
        ("10.0.0.1-::1", "a range cannot mix an IPv4 and an IPv6 address", 9),
        ("10.0.0.1-10.0.0.x", "unexpected character 'x' in IPv4 address", 16),
        ("-10.0.0.1", "missing address before '-'", 0),
        ("10.0.0.1-", "missing address after '-'", 9),
        ("10.0.0.1-10.0.0.2-10.0.0.3", "unexpected character '-' in IPv4 address", 17),
    ])
    func rejectsBadAddressRanges(text: String, message: String, offset: Int) {
        #expect(throws: ValueError(message, at: offset)) { try AddressRange.parse(text) }
    }
}

struct NetPortParsingTests {
    @Test(arguments: [
        ("22", 22, 22, "22"),
        ("1", 1, 1, "1"),
        ("65535", 65535, 65535, "65535"),
        ("8000-8100", 8000, 8100, "8000-8100"),
        ("22-22", 22, 22, "22"),
        ("0022", 22, 22, "22"),
        ("1-65535", 1, 65535, "1-65535"),
    ])
    func parsesPorts(text: String, first: Int, last: Int, canonical: String) throws {
        let range = try PortRange.parse(text)
        #expect(range == PortRange(first: UInt16(first), last: UInt16(last)))
        #expect(range.description == canonical)
    }

    @Test(arguments: [
        ("0", "port 0 is not a valid port", 0),
        ("0-10", "port 0 is not a valid port", 0),
        ("10-0", "port 0 is not a valid port", 3),
        ("65536", "port 65536 is out of range (1-65535)", 0),
        ("1-70000", "port 70000 is out of range (1-65535)", 2),
        ("99999999999999999999", "port 99999999999999999999 is out of range (1-65535)", 0),
        ("8100-8000", "reversed port range '8100-8000' (did you mean 8000-8100?)", 0),
        ("ssh", "expected a port number, found 'ssh'", 0),
        ("80-http", "expected a port number, found 'http'", 3),
        ("22a", "unexpected character 'a' in port", 2),
        ("80-", "missing port after '-'", 3),
        ("-80", "missing port before '-'", 0),
        ("", "expected a port number, found nothing", 0),
        ("80-90-100", "unexpected character '-' in port range", 5),
        ("80 - 90", "unexpected whitespace in port", 2),
        ("80-90 ", "unexpected whitespace in port range", 5),
    ])
    func rejectsBadPorts(text: String, message: String, offset: Int) {
        #expect(throws: ValueError(message, at: offset)) { try PortRange.parse(text) }
    }
}

/// A small deterministic generator so test data is reproducible.
struct NetTestRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
