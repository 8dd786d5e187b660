import Testing
@testable import Kernel

/// The nf_tables notices the drift monitor reads, from bytes as the kernel sends them.
struct NFTEventTests {
    /// One netlink message of the nf_tables subsystem: header, nfgenmsg, attributes.
    static func message(_ type: UInt8, family: UInt8 = 1, _ attributes: [(UInt16, [UInt8])]) -> [UInt8] {
        var body: [UInt8] = [family, 0, 0, 0]
        for (number, value) in attributes {
            let length = 4 + value.count
            body += [UInt8(length & 0xff), UInt8(length >> 8), UInt8(number & 0xff), UInt8(number >> 8)] + value
            body += [UInt8](repeating: 0, count: (4 - length % 4) % 4)
        }
        let total = 16 + body.count
        let header: [UInt8] = [UInt8(total & 0xff), UInt8(total >> 8 & 0xff), 0, 0, type, 10, 0, 0] + [UInt8](repeating: 0, count: 8)
        return header + body
    }
    static func text(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    static let cases: [(String, [UInt8], NFTEvent, String)] = [
        ("table deleted", message(2, [(1, text("enforcer"))]), .changed(family: 1, table: "enforcer", object: .table, added: false), "table deleted"),
        ("chain policy", message(3, [(1, text("enforcer")), (3, text("input")), (5, be32(1))]),
         .changed(family: 1, table: "enforcer", object: .chain("input", policy: 1), added: true), "chain input set with policy accept"),
        ("rule inserted", message(6, [(1, text("enforcer")), (2, text("input"))]),
         .changed(family: 1, table: "enforcer", object: .rule(chain: "input"), added: true), "rule added to chain input"),
        ("element deleted", message(14, family: 1, [(1, text("enforcer")), (2, text("in_hosts_v4"))]),
         .changed(family: 1, table: "enforcer", object: .elements(set: "in_hosts_v4"), added: false), "elements removed from set in_hosts_v4"),
        ("set added", message(9, family: 2, [(1, text("filter")), (2, text("x"))]),
         .changed(family: 2, table: "filter", object: .set("x"), added: true), "set x added"),
        ("commit", message(15, family: 0, [(1, be32(42)), (2, be32(1234)), (3, text("nft"))]),
         .committed(generation: 42, pid: 1234, process: "nft"), "ruleset generation 42 committed by nft (pid 1234)"),
    ]

    @Test("each kind of notice", arguments: cases)
    func parses(_ example: (String, [UInt8], NFTEvent, String)) {
        let events = NFTEvent.parse(example.1)
        #expect(events == [example.2], "\(example.0)")
        #expect(events.first?.words == example.3)
    }

    @Test("several messages in one datagram, other subsystems and damaged tails skipped")
    func datagram() {
        var other = Self.message(6, [(1, Self.text("t")), (2, Self.text("c"))])
        other[5] = 1  // subsystem 1 (ctnetlink): not nf_tables
        let bytes = Self.message(0, [(1, Self.text("enforcer"))]) + other + Self.message(15, [(2, Self.be32(9)), (3, Self.text("enforcer"))])
            + [0x40, 0, 0, 0, 1, 2]  // a header that claims more than is there
        #expect(NFTEvent.parse(bytes) == [.changed(family: 1, table: "enforcer", object: .table, added: true),
                                          .committed(generation: 0, pid: 9, process: "enforcer")])
    }
}
