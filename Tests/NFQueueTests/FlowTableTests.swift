import Testing
@testable import NFQueue

@Suite("Flow table")
struct FlowTableTests {
    private static func key(_ port: UInt16) -> FlowKey {
        FlowKey(client: PacketAddress(bytes: [10, 0, 0, 2])!, server: PacketAddress(bytes: [10, 0, 0, 1])!, clientPort: port, serverPort: 443)
    }

    private static func flow(_ base: UInt32, seen: Double) -> Flow {
        Flow(base: base, stream: StreamReassembly(limit: 64), started: seen, lastSeen: seen)
    }

    @Test("slots follow their keys through inserts, removals and expiry (against a dictionary)")
    func agreesWithADictionary() {
        var table = FlowTable(capacity: 1_000, timeout: 10)
        var model: [FlowKey: (base: UInt32, seen: Double)] = [:]
        var state: UInt64 = 42
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        var now = 0.0
        for step in 0..<20_000 {
            now += 0.01
            let key = Self.key(UInt16(next(300)))
            switch next(10) {
            case 0...1:  // a SYN: a new flow, or the 5-tuple reused
                let base = UInt32(step)
                if let slot = table.slot(of: key) { table.put(Self.flow(base, seen: now), at: slot) } else { table.insert(Self.flow(base, seen: now), for: key) }
                model[key] = (base, now)
            case 2...3:  // the same, as the inspector does it: claim the slot, then fill it
                let base = UInt32(step)
                let known = model[key] != nil
                guard let claimed = table.claim(key) else { Issue.record("room was there"); continue }
                #expect(claimed.isNew == !known)
                table.put(Self.flow(base, seen: now), at: claimed.slot)
                model[key] = (base, now)
            case 4...6:  // a later packet: taken out, changed, put back
                guard let slot = table.slot(of: key) else { #expect(model[key] == nil); continue }
                var flow = table.take(at: slot)
                #expect(table[key]?.base == 0, "the slot holds the empty flow while its flow is out")
                flow.lastSeen = now
                flow.stream.insert(offset: 0, [1, 2, 3][...])
                table.put(flow, at: slot)
                model[key]?.seen = now
            case 7, 8:  // a reset
                if let slot = table.slot(of: key) { table.remove(at: slot) }
                model[key] = nil
            default:  // the once-a-second sweep
                let expired = table.expire(now: now)
                let before = model.count
                model = model.filter { now - $0.value.seen < 10 }
                #expect(expired == before - model.count)
            }
            #expect(table.count == model.count)
        }
        for (key, expected) in model {
            #expect(table[key]?.base == expected.base)
            #expect(table[key]?.lastSeen == expected.seen)
        }
        #expect(model.count > 50, "the run kept enough flows to mean something")
    }

    @Test("full at capacity; a removal makes room")
    func capacity() {
        var table = FlowTable(capacity: 2, timeout: 10)
        table.insert(Self.flow(1, seen: 0), for: Self.key(1))
        table.insert(Self.flow(2, seen: 0), for: Self.key(2))
        #expect(table.isFull)
        #expect(table.claim(Self.key(3)) == nil, "no room: nothing claimed")
        #expect(table.count == 2)
        #expect(table.claim(Self.key(2))?.isNew == false, "a known key keeps its slot when full")
        table.remove(at: table.slot(of: Self.key(1))!)
        #expect(!table.isFull)
        #expect(table[Self.key(2)]?.base == 2)
        #expect(table[Self.key(1)] == nil)
    }

    @Test("the index finds every key through growth and removals (IPv4 and IPv6, from 16 buckets)")
    func indexThroughGrowthAndRemovals() {
        var index = FlowIndex(minimumCount: 1)
        var keys: [FlowKey] = []
        var state: UInt64 = 7
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        func randomKey() -> FlowKey {
            let port = UInt16(next(4_000))
            if next(2) == 0 { return Self.key(port) }
            let client = PacketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [UInt8(next(4))])!
            let server = PacketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [0xff])!
            return FlowKey(client: client, server: server, clientPort: port, serverPort: 443)
        }
        for step in 0..<30_000 {
            let key = randomKey()
            let probe = index.find(key, keys: keys)
            let known = keys.firstIndex(of: key)
            #expect(probe == (known.map { .found($0) } ?? probe), "step \(step): found where the model has it")
            if case .absent(let bucket) = probe {
                #expect(known == nil, "step \(step): a known key must be found")
                if next(3) != 0 {  // grow more often than shrink, up to a few thousand keys
                    keys.append(key)
                    index.insert(slot: keys.count - 1, into: bucket, keys: keys)
                }
            } else if case .found(let slot) = probe {
                // Removed the way the table does it: the last key moves into the freed slot.
                index.remove(slot: slot, keys: keys)
                let last = keys.count - 1
                if slot != last {
                    keys.swapAt(slot, last)
                    index.move(from: last, to: slot, keys: keys)
                }
                keys.removeLast()
            }
            if step % 1_000 == 999 {
                for (slot, key) in keys.enumerated() { #expect(index.find(key, keys: keys) == .found(slot)) }
            }
        }
        #expect(keys.count > 1_000, "the index grew well past its first 16 buckets")
    }
}
