import Testing
@testable import Compiler

/// "10.0.0.1-10.0.0.5 a" → (range, "a").
private func labelled(_ specs: [String]) throws -> [(AddressRange, String)] {
    try specs.map { spec throws -> (AddressRange, String) in
        let parts = spec.split(separator: " ")
        return (try AddressRange.parse(parts[0]), String(parts[1]))
    }
}

/// Pieces as "range label,label" with labels sorted.
private func render<R: CustomStringConvertible>(_ pieces: [(range: R, labels: Set<String>)]) -> [String] {
    pieces.map { "\($0.range) \($0.labels.sorted().joined(separator: ","))" }
}

struct NetPartitionTests {
    @Test(arguments: [
        ([], []),
        (["10.0.0.1-10.0.0.5 a", "10.0.0.10-10.0.0.20 b"], ["10.0.0.1-10.0.0.5 a", "10.0.0.10-10.0.0.20 b"]),
        (["10.0.0.10-10.0.0.20 b", "10.0.0.1-10.0.0.5 a"], ["10.0.0.1-10.0.0.5 a", "10.0.0.10-10.0.0.20 b"]),
        (["10.0.0.1-10.0.0.10 a", "10.0.0.5-10.0.0.15 b"], ["10.0.0.1-10.0.0.4 a", "10.0.0.5-10.0.0.10 a,b", "10.0.0.11-10.0.0.15 b"]),
        (["10.0.0.1-10.0.0.100 a", "10.0.0.10-10.0.0.20 b"], ["10.0.0.1-10.0.0.9 a", "10.0.0.10-10.0.0.20 a,b", "10.0.0.21-10.0.0.100 a"]),
        (["10.0.0.0/8 a", "10.1.0.0/16 b", "10.1.1.0/24 c"], ["10.0.0.0-10.0.255.255 a", "10.1.0.0-10.1.0.255 a,b", "10.1.1.0-10.1.1.255 a,b,c", "10.1.2.0-10.1.255.255 a,b", "10.2.0.0-10.255.255.255 a"]),
        (["10.0.0.1-10.0.0.5 a", "10.0.0.6-10.0.0.10 a"], ["10.0.0.1-10.0.0.10 a"]),
        (["10.0.0.1-10.0.0.5 a", "10.0.0.6-10.0.0.10 b"], ["10.0.0.1-10.0.0.5 a", "10.0.0.6-10.0.0.10 b"]),
        (["10.0.0.1-10.0.0.5 a", "10.0.0.7-10.0.0.10 a"], ["10.0.0.1-10.0.0.5 a", "10.0.0.7-10.0.0.10 a"]),
        (["10.0.0.1-10.0.0.5 a", "10.0.0.1-10.0.0.5 a"], ["10.0.0.1-10.0.0.5 a"]),
        (["10.0.0.1-10.0.0.5 a", "10.0.0.1-10.0.0.5 b"], ["10.0.0.1-10.0.0.5 a,b"]),
        (["10.0.0.1-10.0.0.5 a", "10.0.0.5-10.0.0.9 b"], ["10.0.0.1-10.0.0.4 a", "10.0.0.5 a,b", "10.0.0.6-10.0.0.9 b"]),
        (["10.0.0.5 a", "10.0.0.5 b", "10.0.0.6 a"], ["10.0.0.5 a,b", "10.0.0.6 a"]),
        (["10.0.0.1-10.0.0.10 a", "10.0.0.3-10.0.0.4 b", "10.0.0.6-10.0.0.7 b"], ["10.0.0.1-10.0.0.2 a", "10.0.0.3-10.0.0.4 a,b", "10.0.0.5 a", "10.0.0.6-10.0.0.7 a,b", "10.0.0.8-10.0.0.10 a"]),
        (["10.0.0.1-10.0.0.4 a", "10.0.0.3-10.0.0.6 a", "10.0.0.5-10.0.0.8 b"], ["10.0.0.1-10.0.0.4 a", "10.0.0.5-10.0.0.6 a,b", "10.0.0.7-10.0.0.8 b"]),
        (["10.0.0.1-10.0.0.4 a", "10.0.0.5-10.0.0.8 b", "10.0.0.1-10.0.0.8 c"], ["10.0.0.1-10.0.0.4 a,c", "10.0.0.5-10.0.0.8 b,c"]),
        (["10.0.0.1-10.0.0.5 a", "10.0.0.3-10.0.0.5 b", "10.0.0.6-10.0.0.9 a", "10.0.0.6-10.0.0.7 b"], ["10.0.0.1-10.0.0.2 a", "10.0.0.3-10.0.0.7 a,b", "10.0.0.8-10.0.0.9 a"]),
        (["::1-::5 a", "10.0.0.1-10.0.0.5 a", "::3-::9 b"], ["10.0.0.1-10.0.0.5 a", "::1-::2 a", "::3-::5 a,b", "::6-::9 b"]),
        (["255.255.255.0-255.255.255.255 a", "::-::ff a"], ["255.255.255.0-255.255.255.255 a", "::-::ff a"]),
        (["0.0.0.0/0 any", "::/0 any", "10.0.0.0/8 ten"], ["0.0.0.0-9.255.255.255 any", "10.0.0.0-10.255.255.255 any,ten", "11.0.0.0-255.255.255.255 any", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff any"]),
        (["ffff::/16 a", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff b", "0.0.0.0 c"], ["0.0.0.0 c", "ffff::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe a", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff a,b"]),
    ] as [([String], [String])])
    func partitionsAddressRanges(input: [String], expected: [String]) throws {
        #expect(render(partition(try labelled(input))) == expected)
    }

    @Test func partitionsPortRanges() {
        let input: [(PortRange, String)] = [
            (PortRange(first: 1, last: 100), "a"),
            (PortRange(first: 50, last: 200), "b"),
            (PortRange(65535), "c"),
            (PortRange(first: 201, last: 300), "b"),
            (PortRange(first: 65000, last: 65535), "b"),
        ]
        #expect(render(partition(input)) == ["1-49 a", "50-100 a,b", "101-300 b", "65000-65534 b", "65535 b,c"])
    }

    @Test func manyLabelsStartingAtOnePoint() throws {
        // Rules that all match "any" start together; the sweep handles them in one step.
        let any = AddressRange(try AddressBlock.parse("0.0.0.0/0"))
        var input = (0..<2_000).map { (any, "rule\($0)") }
        input.append((try AddressRange.parse("10.0.0.0-10.0.0.255"), "ten"))
        let pieces = partition(input)
        #expect(pieces.count == 3)
        #expect(pieces.map(\.labels.count) == [2_000, 2_001, 2_000])
        #expect(pieces[0].labels == pieces[2].labels)
    }
}

/// The pieces `partition` should give, found address by address over `candidates` (every
/// address the input can cover, sorted): a piece grows while the next address is adjacent
/// and covered by the same labels.
private func bruteForcePieces(_ input: [(AddressRange, String)], over candidates: [IPAddress]) -> [(range: AddressRange, labels: Set<String>)] {
    var expected: [(range: AddressRange, labels: Set<String>)] = []
    for address in candidates {
        let labels = Set(input.filter { $0.0.contains(address) }.map(\.1))
        guard !labels.isEmpty else { continue }
        if let last = expected.last, last.labels == labels, last.range.last.successor == address {
            expected[expected.count - 1].range.last = address
        } else {
            expected.append((AddressRange(address), labels))
        }
    }
    return expected
}

struct NetPartitionPropertyTests {
    /// Small random inputs near the ends of both families, checked address by address.
    @Test func matchesBruteForceNearDomainEdges() {
        var random = NetTestRandom(seed: 99)
        // Candidate addresses: the low and high 24 of each family, in sorted order.
        let edges: [IPAddress] = (0..<24).map { IPAddress(v4: UInt32($0)) }
            + (0..<24).map { IPAddress(v4: UInt32.max - 23 + UInt32($0)) }
            + (0..<24).map { IPAddress(v6: UInt128($0)) }
            + (0..<24).map { IPAddress(v6: UInt128.max - 23 + UInt128($0)) }
        for _ in 0..<500 {
            var input: [(AddressRange, String)] = []
            for _ in 0..<(1 + random.next() % 10) {
                // Both ends within one group of 24, so within one family.
                let group = Int(random.next() % 4) * 24
                let a = group + Int(random.next() % 24)
                let b = group + Int(random.next() % 24)
                let range = AddressRange(first: edges[min(a, b)], last: edges[max(a, b)])
                input.append((range, ["a", "b", "c", "d"][Int(random.next() % 4)]))
            }
            let expected = bruteForcePieces(input, over: edges)
            let actual = partition(input)
            #expect(render(actual) == render(expected), "input: \(input)")
            // The numbered form the compiler uses: the same pieces, each set sorted.
            let (pieces, sets) = partitionByLabelSet(input)
            #expect(pieces.map { "\($0.range) \(sets[Int($0.set)].joined(separator: ","))" } == render(expected), "input: \(input)")
            // The families swept at once (IPv6 on another core): the same pieces, and one
            // number per label set across both families.
            let (concurrentPieces, concurrentSets) = partitionByLabelSet(input, concurrentFrom: 0)
            #expect(concurrentPieces.map { "\($0.range) \(concurrentSets[Int($0.set)].joined(separator: ","))" } == render(expected), "input: \(input)")
            #expect(Set(concurrentSets).count == concurrentSets.count, "input: \(input)")
            #expect(merge(input.map(\.0)) == merge(expected.map(\.range)), "input: \(input)")
        }
    }

    /// Single addresses only (the sweep's short way: one sort, runs of equal points), with
    /// repeats of a point under the same and under other labels, neighbours that join, and
    /// the family's last address: the same pieces as address-by-address and as the sweep.
    @Test func pointsOnlyMatchBruteForceAndTheSweep() {
        var random = NetTestRandom(seed: 7)
        let candidates: [UInt32] = Array(0..<20) + (0..<20).map { UInt32.max - 19 + $0 }
        for round in 0..<500 {
            var input: [(AddressRange, String)] = []
            // Now and then more than the 256 points from which the sort is a radix sort.
            for _ in 0..<(round % 50 == 0 ? 600 : 1 + random.next() % 16) {
                let address = IPAddress(v4: candidates[Int(random.next() % UInt64(candidates.count))])
                input.append((AddressRange(address), ["a", "b", "c"][Int(random.next() % 3)]))
            }
            let expected = bruteForcePieces(input, over: candidates.map { IPAddress(v4: $0) })
            #expect(render(partition(input)) == render(expected), "input: \(input)")
            let (pieces, sets) = partitionByLabelSet(input)
            #expect(pieces.map { "\($0.range) \(sets[Int($0.set)].joined(separator: ","))" } == render(expected), "input: \(input)")

            // The general sweep over the same points: the same pieces and label sets.
            func swept(pointPath: Bool) -> [String] {
                var sweep = IntervalSweep<UInt32>()
                let labels = ["a", "b", "c"]
                for (range, label) in input {
                    let value = UInt32(truncatingIfNeeded: range.first.value)
                    sweep.add(first: value, last: value, label: Int32(labels.firstIndex(of: label)!))
                }
                var table = LabelSetTable(labelCount: labels.count)
                let pieces = sweep.partition(&table, pointPath: pointPath)
                let (members, bounds) = table.sets
                return pieces.map { piece in
                    let set = members[bounds[Int(piece.set)]..<bounds[Int(piece.set) + 1]].map { labels[Int($0)] }.sorted()
                    return "\(piece.first)-\(piece.last) \(set.joined(separator: ","))"
                }
            }
            #expect(swept(pointPath: true) == swept(pointPath: false), "input: \(input)")
        }
    }

    @Test func matchesBruteForceForPorts() {
        var random = NetTestRandom(seed: 5)
        let ports: [UInt16] = Array(1...20) + Array(65516...65535)
        for _ in 0..<500 {
            var input: [(PortRange, Int)] = []
            for _ in 0..<(1 + random.next() % 8) {
                let group = Int(random.next() % 2) * 20
                let a = group + Int(random.next() % 20)
                let b = group + Int(random.next() % 20)
                input.append((PortRange(first: ports[min(a, b)], last: ports[max(a, b)]), Int(random.next() % 3)))
            }
            var expected: [(range: PortRange, labels: Set<Int>)] = []
            for port in ports {
                let labels = Set(input.filter { $0.0.contains(port) }.map(\.1))
                guard !labels.isEmpty else { continue }
                if let last = expected.last, last.labels == labels, last.range.last + 1 == port {
                    expected[expected.count - 1].range.last = port
                } else {
                    expected.append((PortRange(port), labels))
                }
            }
            let actual = partition(input)
            #expect(actual.map(\.range) == expected.map(\.range), "input: \(input)")
            #expect(actual.map(\.labels) == expected.map(\.labels), "input: \(input)")
        }
    }
}

struct NetMergeTests {
    @Test(arguments: [
        ([], []),
        (["10.0.0.1-10.0.0.5"], ["10.0.0.1-10.0.0.5"]),
        (["10.0.0.1-10.0.0.5", "10.0.0.3-10.0.0.9"], ["10.0.0.1-10.0.0.9"]),
        (["10.0.0.1-10.0.0.5", "10.0.0.6-10.0.0.9"], ["10.0.0.1-10.0.0.9"]),
        (["10.0.0.1-10.0.0.5", "10.0.0.7-10.0.0.9"], ["10.0.0.1-10.0.0.5", "10.0.0.7-10.0.0.9"]),
        (["10.0.0.0/8", "10.1.0.0/16"], ["10.0.0.0-10.255.255.255"]),
        (["10.0.0.7-10.0.0.9", "10.0.0.1-10.0.0.2", "10.0.0.3-10.0.0.4"], ["10.0.0.1-10.0.0.4", "10.0.0.7-10.0.0.9"]),
        (["10.0.0.1-10.0.0.5", "10.0.0.1-10.0.0.5"], ["10.0.0.1-10.0.0.5"]),
        (["10.0.0.1-10.0.0.9", "10.0.0.2-10.0.0.3", "10.0.0.5-10.0.0.12"], ["10.0.0.1-10.0.0.12"]),
        (["::1-::5", "10.0.0.1-10.0.0.5", "::6"], ["10.0.0.1-10.0.0.5", "::1-::6"]),
        (["255.255.255.255", "::"], ["255.255.255.255", "::"]),
        (["0.0.0.0/1", "128.0.0.0/1"], ["0.0.0.0-255.255.255.255"]),
        (["::/1", "8000::/1", "::1"], ["::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]),
    ] as [([String], [String])])
    func mergesAddressRanges(input: [String], expected: [String]) throws {
        let ranges = try input.map { text throws(ValueError) in try AddressRange.parse(text) }
        #expect(merge(ranges).map(\.description) == expected)
    }

    @Test func mergesPortRanges() {
        let ports = [PortRange(first: 80, last: 90), PortRange(22), PortRange(first: 91, last: 100), PortRange(23), PortRange(65535)]
        #expect(merge(ports).map(\.description) == ["22-23", "80-100", "65535"])
    }
}

struct NetBlockSplittingTests {
    @Test(arguments: [
        ("10.0.0.1-10.0.0.6", ["10.0.0.1", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6"]),
        ("10.0.0.0-10.0.0.255", ["10.0.0.0/24"]),
        ("10.0.0.0-10.0.1.0", ["10.0.0.0/24", "10.0.1.0"]),
        ("10.0.0.255-10.0.2.0", ["10.0.0.255", "10.0.1.0/24", "10.0.2.0"]),
        ("10.0.0.5", ["10.0.0.5"]),
        ("0.0.0.0", ["0.0.0.0"]),
        ("255.255.255.255", ["255.255.255.255"]),
        ("0.0.0.0-255.255.255.255", ["0.0.0.0/0"]),
        ("0.0.0.0-255.255.255.254", ["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6", "252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9", "255.128.0.0/10", "255.192.0.0/11", "255.224.0.0/12", "255.240.0.0/13", "255.248.0.0/14", "255.252.0.0/15", "255.254.0.0/16", "255.255.0.0/17", "255.255.128.0/18", "255.255.192.0/19", "255.255.224.0/20", "255.255.240.0/21", "255.255.248.0/22", "255.255.252.0/23", "255.255.254.0/24", "255.255.255.0/25", "255.255.255.128/26", "255.255.255.192/27", "255.255.255.224/28", "255.255.255.240/29", "255.255.255.248/30", "255.255.255.252/31", "255.255.255.254"]),
        ("128.0.0.0-255.255.255.255", ["128.0.0.0/1"]),
        ("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ["::/0"]),
        ("::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", (0..<128).map { $0 == 0 ? "::1" : "\(IPAddress(v6: UInt128(1) << $0))/\(128 - $0)" }),
        ("::2-::5", ["::2/127", "::4/127"]),
        ("2001:db8::-2001:db8::ffff", ["2001:db8::/112"]),
        ("::ffff:10.0.0.0-::ffff:10.255.255.255", ["::ffff:10.0.0.0/104"]),
    ] as [(String, [String])])
    func splitsIntoBlocks(range: String, expected: [String]) throws {
        #expect(blocks(of: try AddressRange.parse(range)).map(\.description) == expected)
    }

    @Test func blocksCoverRandomRangesMinimally() {
        var random = NetTestRandom(seed: 7)
        for round in 0..<2_000 {
            let family: IPFamily = round % 2 == 0 ? .v4 : .v6
            let first = (UInt128(random.next()) << 64 | UInt128(random.next())) & family.maxValue
            let span = UInt128(random.next() >> (random.next() % 64))  // mostly small, some huge
            let last = family.maxValue - first < span ? family.maxValue : first + span
            let range = AddressRange(first: IPAddress(family: family, value: first),
                                     last: IPAddress(family: family, value: last))
            let pieces = blocks(of: range)
            #expect(pieces.first?.first == range.first)
            #expect(pieces.last?.last == range.last)
            for (left, right) in zip(pieces, pieces.dropFirst()) {
                #expect(left.last.successor == right.first)
                // Minimal: two equal-size buddies would have merged into one block.
                let buddies = left.prefixLength == right.prefixLength
                    && AddressBlock(address: left.address, prefixLength: left.prefixLength - 1) != nil
                #expect(!buddies)
            }
        }
    }
}

struct NetPartitionScaleTests {
    /// Blocklist-like data: many ranges, 16 labels, both families, one broad range.
    @Test func partitionsManyRanges() {
        // A million is slow in a debug build (unoptimised generics), so debug runs use fewer.
        #if DEBUG
        let count = 200_000
        #else
        let count = 1_000_000
        #endif
        var random = NetTestRandom(seed: 2024)
        var input: [(AddressRange, Int)] = []
        input.reserveCapacity(count)
        for index in 0..<count {
            let label = Int(random.next() % 16)
            if index % 10 == 0 {
                let first = UInt128(random.next()) << 64 | UInt128(random.next() % 1_000_000)
                let last = first + UInt128(random.next() % 100_000)
                input.append((AddressRange(first: IPAddress(v6: first), last: IPAddress(v6: last)), label))
            } else {
                let first = UInt32(truncatingIfNeeded: random.next())
                let last = first &+ UInt32(random.next() % 4_096)
                let (low, high) = first <= last ? (first, last) : (first, UInt32.max)
                input.append((AddressRange(first: IPAddress(v4: low), last: IPAddress(v4: high)), label))
            }
        }
        input.append((AddressRange(first: IPAddress(v4: 0x0A00_0000), last: IPAddress(v4: 0x0AFF_FFFF)), 99))

        let pieces = partition(input)
        #expect(!pieces.isEmpty)
        var ordered = true
        var maximal = true
        var labelled = true
        for (left, right) in zip(pieces, pieces.dropFirst()) {
            ordered = ordered && left.range.last < right.range.first
            maximal = maximal && !(left.range.last.successor == right.range.first && left.labels == right.labels)
        }
        for piece in pieces { labelled = labelled && !piece.labels.isEmpty }
        #expect(ordered)
        #expect(maximal)
        #expect(labelled)
        // Together the pieces cover exactly the union of the inputs.
        #expect(merge(pieces.map(\.range)) == merge(input.map(\.0)))

        // Spot checks against brute force, at range edges and just outside them.
        for _ in 0..<4 {
            let (range, _) = input[Int(random.next() % UInt64(input.count))]
            for probe in [range.first, range.last, range.first.predecessor, range.last.successor].compactMap({ $0 }) {
                var expected = Set<Int>()
                for (candidate, label) in input where candidate.contains(probe) { expected.insert(label) }
                let found = piece(containing: probe, in: pieces)?.labels ?? []
                #expect(found == expected, "labels at \(probe)")
            }
        }
    }

    /// Binary search over sorted, disjoint pieces.
    private func piece<Label>(
        containing address: IPAddress, in pieces: [(range: AddressRange, labels: Set<Label>)]
    ) -> (range: AddressRange, labels: Set<Label>)? {
        var low = 0
        var high = pieces.count
        while low < high {
            let middle = (low + high) / 2
            if pieces[middle].range.last < address { low = middle + 1 } else { high = middle }
        }
        return low < pieces.count && pieces[low].range.contains(address) ? pieces[low] : nil
    }
}
