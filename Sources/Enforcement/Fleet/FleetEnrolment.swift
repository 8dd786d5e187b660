import Compiler
import Etcd
import Foundation

/// Enrolment through etcd's own access control: who may write what is decided by etcd, not
/// by the hosts' good will.
///
/// * `fleet init` turns on etcd's authentication with a root user, and makes the fleet's
///   administrator role (everything under its prefix) and its reader role (`desired/` and
///   `chunk/`, what every agent watches and fetches).
/// * `fleet key create` makes, for a key of N uses, one etcd user for the key and N host
///   users, each with a role that may write only that host's member and presence keys. The
///   host users' passwords wait in the key's slots, readable only with the key.
/// * `enforcer enrol` logs in with the key, claims one slot (a transaction: two hosts can
///   never claim the same), keeps its credentials, and writes its member record (name,
///   addresses). The system's tags are in the grant an administrator wrote, which the host
///   cannot write: a host cannot grant itself anything.
/// * An expiring key puts its slots under a lease of that duration: when it runs out etcd
///   deletes the unused slots, and the key enrols nothing more.
public struct FleetEnrolment: Sendable {
    public let store: FleetStore
    var layout: FleetLayout { store.layout }
    var client: any EtcdClient { store.client }

    public init(store: FleetStore) { self.store = store }

    /// The most uses one key may have: each is an etcd user, made when the key is.
    public static let maximumUses = 1000

    // MARK: Administrators

    /// Creates the root user and the fleet's roles and users, then enables authentication.
    /// `adminPassword`: also a user `enforcer.<fleet>.admin` with the administrator role.
    public func initialize(rootPassword: String, adminPassword: String?) async throws(FleetError) {
        try await step("create the root user") {
            try await tolerateExisting { try await client.addUser("root", password: rootPassword) }
            try await tolerateExisting { try await client.addRole("root") }
            try await client.grantRole("root", toUser: "root")
        }
        try await ensureRoles()
        if let adminPassword {
            try await step("create the user \(layout.adminRole)") {
                try await tolerateExisting { try await client.addUser(layout.adminRole, password: adminPassword) }
                try await client.grantRole(layout.adminRole, toUser: layout.adminRole)
            }
        }
        try await step("enable authentication") { try await client.enableAuth() }
    }

    private func ensureRoles() async throws(FleetError) {
        try await step("create the fleet's roles") {
            try await tolerateExisting { try await client.addRole(layout.adminRole) }
            try await client.grant(.prefix(layout.prefix, .readWrite), toRole: layout.adminRole)
            try await tolerateExisting { try await client.addRole(layout.readerRole) }
            try await client.grant(.prefix(layout.desiredPrefix, .read), toRole: layout.readerRole)
            try await client.grant(.prefix(layout.chunkPrefix, .read), toRole: layout.readerRole)
        }
    }

    /// A new key: its id and secret (`ID.SECRET`, shown once), its record. `systemsExpire`:
    /// the systems it enrols stop being systems this long after the key is made (the grant
    /// each slot gets now says when; the host that claims it cannot change that).
    public func createKey(tags: [String], uses: Int, expires: TimeInterval?, systemsExpire: TimeInterval? = nil,
                          at instant: Date = Date()) async throws(FleetError) -> (key: String, record: Enrolment.Key) {
        for tag in tags where !Enrolment.isPlainName(tag) { throw .usage("tag '\(tag)': use letters, digits, '.', '_' or '-'") }
        guard (1...Self.maximumUses).contains(uses) else { throw .usage("--uses: from 1 to \(Self.maximumUses)") }
        try await ensureRoles()
        let id = Self.randomHex(bytes: 4), secret = Self.randomHex(bytes: 24)
        let by = Actor.current(purpose: "fleet key create")
        let systemsEnd = systemsExpire.map { ISO8601.string(instant.addingTimeInterval($0)) }
        let record = Enrolment.Key(id: id, tags: tags, uses: uses, expires: expires.map { ISO8601.string(instant.addingTimeInterval($0)) },
                                   createdBy: by, createdAt: ISO8601.string(instant), systemsExpire: systemsEnd)
        let keyUser = layout.keyUser(id)
        try await step("create the key's user") {
            try await client.addUser(keyUser, password: secret)
            try await client.addRole(keyUser)
            try await client.grant(.prefix(layout.slotPrefix(id), .readWrite), toRole: keyUser)
            try await client.grantRole(keyUser, toUser: keyUser)
            try await client.grantRole(layout.readerRole, toUser: keyUser)
        }
        var lease: Int64 = 0
        if let expires {
            lease = try await step("grant the key's lease") { try await client.grantLease(ttl: Int64(expires.rounded(.up))).id }
        }
        for use in 1...uses {
            let slot = "\(id)-\(use)", user = layout.hostUser(slot), password = Self.randomHex(bytes: 24)
            let grant = Enrolment.Grant(slot: slot, key: id, tags: tags, expires: systemsEnd, createdBy: by)
            let claim = Enrolment.Slot(slot: slot, user: user, password: password)
            try await step("create the host user of slot \(slot)") {
                try await client.addUser(user, password: password)
                try await client.addRole(user)
                try await client.grant(.key(layout.memberKey(slot), .readWrite), toRole: user)
                try await client.grant(.key(layout.presenceKey(slot), .readWrite), toRole: user)
                try await client.grantRole(user, toUser: user)
                try await client.grantRole(layout.readerRole, toUser: user)
                try await client.put(layout.enrolledKey(slot), FleetStore.jsonEncoder.encode(grant))
                try await client.put(layout.slotPrefix(id) + String(use), FleetStore.jsonEncoder.encode(claim), lease: lease)
            }
        }
        try await step("write the key's record") { try await client.put(layout.keyRecord(id), FleetStore.jsonEncoder.encode(record)) }
        return ("\(id).\(secret)", record)
    }

    /// An etcd user for the agent of `system`, a host of the pushed policy: it may read what
    /// agents read and write its own presence, nothing else. Returns the user's name.
    public func addSystemUser(_ system: String, password: String) async throws(FleetError) -> String {
        guard Enrolment.isPlainName(system) else { throw .usage("system name '\(system)': use letters, digits, '.', '_' or '-'") }
        try await ensureRoles()
        let user = layout.systemUser(system)
        try await step("create the user \(user)") {
            try await client.addUser(user, password: password)
            try await client.addRole(user)
            try await client.grant(.key(layout.presenceKey(system), .readWrite), toRole: user)
            try await client.grantRole(user, toUser: user)
            try await client.grantRole(layout.readerRole, toUser: user)
        }
        return user
    }

    /// Every key, with how many of its uses are left.
    public func keys() async throws(FleetError) -> [(key: Enrolment.Key, unused: Int)] {
        let client = client, layout = layout
        return try await step("list the enrolment keys") {
            let records = try await client.range(.prefix(layout.keyPrefix)).kvs.compactMap { try? FleetStore.jsonDecoder.decode(Enrolment.Key.self, from: $0.value) }
            var out: [(Enrolment.Key, Int)] = []
            for record in records.sorted(by: { $0.createdAt < $1.createdAt }) {
                let unused = try await client.range(.prefix(layout.slotPrefix(record.id)), RangeOptions(countOnly: true)).count
                out.append((record, Int(unused)))
            }
            return out.map { (key: $0.0, unused: $0.1) }
        }
    }

    /// What `revokeKey` removed.
    public struct Revocation: Sendable, Equatable {
        /// The unused enrolments: their slots, grants, etcd users and roles.
        public var unusedSlots: [String]
        /// The etcd users deleted (the key's and those of the unused slots).
        public var users: [String]
    }

    /// Removes a key's unused slots and their grants, and deletes the etcd users and roles
    /// of those slots and of the key itself: it enrols nothing more, and none of its
    /// credentials logs in. Systems it enrolled stay (`remove` takes one away).
    public func revokeKey(_ id: String) async throws(FleetError) -> Revocation {
        let client = client, layout = layout
        return try await step("revoke key \(id)") {
            guard let record = try await client.get(layout.keyRecord(id)) else { throw FleetError.usage("no enrolment key \(id) in fleet \(layout.fleet)") }
            // The slots deleted in this one request are exactly those no host claimed: a
            // host that claims one at the same time either got it first (and keeps it) or
            // finds it gone.
            let unused = try await client.delete(.prefix(layout.slotPrefix(id)), prevKV: true).prevKVs
                .compactMap { try? FleetStore.jsonDecoder.decode(Enrolment.Slot.self, from: $0.value) }.map(\.slot).sorted()
            var users: [String] = []
            for slot in unused {
                try await client.delete(.key(layout.enrolledKey(slot)))
                if try await deleteLogin(layout.hostUser(slot)) { users.append(layout.hostUser(slot)) }
            }
            if try await deleteLogin(layout.keyUser(id)) { users.append(layout.keyUser(id)) }
            // The record goes last and only if unchanged: run again, the command finds the key.
            _ = try await client.txn(if: [.modRevision(layout.keyRecord(id), .equal, record.modRevision)], then: [.delete(.key(layout.keyRecord(id)))])
            return Revocation(unusedSlots: unused, users: users)
        }
    }

    /// What `remove` took away.
    public struct Removal: Sendable, Equatable {
        /// The enrolled slot, nil for a system of the pushed policy.
        public var slot: String?
        public var user: String?
        /// The keys deleted: grant, member record, presence, an unused slot.
        public var keysDeleted: Int
    }

    /// Takes the system `name` out of the fleet: an enrolled one (by its name while its host
    /// is present, else by its slot) loses its grant, member record, presence and its etcd
    /// user and role, so every receiver drops it and its credentials no longer log in. A
    /// system of the pushed policy loses its etcd user (`fleet host add`) and presence; its
    /// block stays in the policy until a push removes it.
    public func remove(_ name: String) async throws(FleetError) -> Removal {
        let client = client, layout = layout
        return try await step("remove \(name)") {
            guard let slot = try await Self.slot(of: name, client: client, layout: layout) else {
                // A system of the pushed policy with a login of its own.
                if try await deleteLogin(layout.systemUser(name)) {
                    let presence = try await client.delete(.key(layout.presenceKey(name))).deleted
                    return Removal(slot: nil, user: layout.systemUser(name), keysDeleted: Int(presence))
                }
                let departed = try await departedSlots()
                let hint: String = departed.isEmpty ? "" : "; enrolled slots whose host is not present: \(departed.joined(separator: ", ")) (remove one by its slot)"
                throw FleetError.usage("no enrolled system \(name) is present in fleet \(layout.fleet), and no user \(layout.systemUser(name)) exists\(hint)")
            }
            // The login first: a host that still runs could otherwise write its member record again.
            let user = layout.hostUser(slot)
            let deletedUser = try await deleteLogin(user)
            var keys = [layout.enrolledKey(slot), layout.memberKey(slot), layout.presenceKey(slot)]
            if let grant = try await client.get(layout.enrolledKey(slot)).flatMap({ try? FleetStore.jsonDecoder.decode(Enrolment.Grant.self, from: $0.value) }),
               let use = slot.split(separator: "-").last {
                keys.append("\(layout.slotPrefix(grant.key))\(use)")
            }
            let deletions: [TxnOperation] = keys.map { TxnOperation.delete(KeyRange.key($0)) }
            let answer = try await client.txn(if: [], then: deletions)
            let deleted = answer.responses.reduce(0) { sum, response in
                if case .delete(let delete) = response { return sum + Int(delete.deleted) }
                return sum
            }
            return Removal(slot: slot, user: deletedUser ? user : nil, keysDeleted: deleted)
        }
    }

    /// The slot of the enrolled system `name`: found by its member record while its host is
    /// present, else `name` itself when it is a slot with a grant; nil otherwise.
    private static func slot(of name: String, client: any EtcdClient, layout: FleetLayout) async throws(EtcdError) -> String? {
        let members = try await client.range(.prefix(layout.memberPrefix)).kvs
        if let member = members.first(where: { (try? FleetStore.jsonDecoder.decode(Enrolment.Member.self, from: $0.value))?.name == name }) {
            return String(member.keyString.dropFirst(layout.memberPrefix.count))
        }
        return try await client.get(layout.enrolledKey(name)) != nil ? name : nil
    }

    /// Enrolled slots with a grant whose host is not present (no member record) and that no
    /// host can still claim (no slot record): hosts that went away, or uses of an expired key.
    public func departedSlots() async throws(FleetError) -> [String] {
        let client = client, layout = layout
        return try await step("list the departed enrolled systems") {
            let granted = try await client.range(.prefix(layout.enrolledPrefix), RangeOptions(keysOnly: true)).kvs.map { String($0.keyString.dropFirst(layout.enrolledPrefix.count)) }
            let present = Set(try await client.range(.prefix(layout.memberPrefix), RangeOptions(keysOnly: true)).kvs.map { String($0.keyString.dropFirst(layout.memberPrefix.count)) })
            let claimable = Set(try await client.range(.prefix(layout.prefix + "slots/"), RangeOptions(keysOnly: true)).kvs.compactMap { kv -> String? in
                // slots/<id>/<n> is the slot "<id>-<n>".
                let parts = kv.keyString.dropFirst(layout.prefix.count + "slots/".count).split(separator: "/")
                return parts.count == 2 ? "\(parts[0])-\(parts[1])" : nil
            })
            return granted.filter { !present.contains($0) && !claimable.contains($0) }.sorted()
        }
    }

    /// Deletes the etcd user and role `name` (they share it); false when there was no such user.
    private func deleteLogin(_ name: String) async throws(EtcdError) -> Bool {
        var existed = true
        do { try await client.deleteUser(name) } catch {
            guard error.message.contains("not found") else { throw error }
            existed = false
        }
        do { try await client.deleteRole(name) } catch {
            guard error.message.contains("not found") else { throw error }
        }
        return existed
    }

    /// Adds and removes tags of the enrolled system `name`, on the condition that its grant
    /// did not change since read. Returns the tags it has now.
    public func tag(_ name: String, add: [String], remove: [String]) async throws(FleetError) -> [String] {
        for tag in add + remove where !Enrolment.isPlainName(tag) { throw .usage("tag '\(tag)': use letters, digits, '.', '_' or '-'") }
        return try await changeGrant(of: name, what: "change the tags of \(name)",
                                     otherwise: "(a system of the pushed policy changes its tags in its file, then `fleet push`)") { grant in
            grant.tags = grant.tags.filter { !remove.contains($0) }
            for tag in add where !grant.tags.contains(tag) { grant.tags.append(tag) }
        }.grant.tags
    }

    /// Sets when the enrolled system `name` (or slot) stops being one (nil: never), on the
    /// condition that its grant did not change since read. Every agent drops it at that
    /// instant by its own clock. Returns its slot and grant.
    public func expire(_ name: String, at expiry: Date?) async throws(FleetError) -> (slot: String, grant: Enrolment.Grant) {
        try await changeGrant(of: name, what: "set the expiry of \(name)",
                              otherwise: "(nor is it a system of the pushed policy)") { grant in
            grant.expires = expiry.map { ISO8601.string($0) }
        }
    }

    /// The instant `fleet expire` sets: exactly one of `at` (ISO 8601; UTC unless it names a
    /// zone), `after` (a duration from `now`) or `never` (nil).
    public static func expiry(at: String?, after: TimeInterval?, never: Bool, now: Date) throws(FleetError) -> Date? {
        let given = [at != nil, after != nil, never].filter { $0 }.count
        guard given == 1 else { throw .usage("give one of --at TIME, --after DURATION or --never") }
        if never { return nil }
        if let after {
            guard after > 0 else { throw .usage("--after: a duration longer than nothing (e.g. 24h)") }
            return now.addingTimeInterval(after)
        }
        guard let at, let date = ISO8601.date(at) else {
            throw .usage("--at '\(at ?? "")': not a time; write e.g. 2026-12-31T18:00:00Z (UTC) or 2026-12-31T18:00:00+01:00")
        }
        guard date > now else { throw .usage("--at \(at) is not in the future: to take the system away now, use `fleet remove`") }
        return date
    }

    /// Finds the grant of the enrolled system `name` (by its member record, else `name` as a
    /// slot), applies `change` and writes it if it did not change since read; tries again a
    /// few times when another administrator's write came in between.
    private func changeGrant(of name: String, what: String, otherwise: String,
                             _ change: @escaping @Sendable (inout Enrolment.Grant) -> Void) async throws(FleetError) -> (slot: String, grant: Enrolment.Grant) {
        let client = client, layout = layout
        return try await step(what) {
            for _ in 0..<5 {
                guard let slot = try await Self.slot(of: name, client: client, layout: layout) else { throw FleetError.usage("no enrolled system \(name) is present in fleet \(layout.fleet) \(otherwise)") }
                guard let kv = try await client.get(layout.enrolledKey(slot)), var grant = try? FleetStore.jsonDecoder.decode(Enrolment.Grant.self, from: kv.value) else {
                    throw FleetError.usage("\(name) (slot \(slot)) has no grant in the store: enrol it again")
                }
                change(&grant)
                let written = try await client.txn(if: [.modRevision(layout.enrolledKey(slot), .equal, kv.modRevision)],
                                                   then: [.put(key: Data(layout.enrolledKey(slot).utf8), value: try FleetStore.jsonEncoder.encode(grant), lease: 0, prevKV: false)])
                if written.succeeded { return (slot: slot, grant: grant) }
            }
            throw FleetError.conflict("the grant of \(name) kept changing under this command: run it again")
        }
    }

    /// The names of enrolled systems present now (member records), for `fleet push`.
    public func memberNames() async throws(FleetError) -> Set<String> {
        let client = client, layout = layout
        return try await step("read the enrolled systems") {
            Set(try await client.range(.prefix(layout.memberPrefix)).kvs.compactMap { (try? FleetStore.jsonDecoder.decode(Enrolment.Member.self, from: $0.value))?.name })
        }
    }

    // MARK: A host

    /// The etcd login an enrolment key `ID.SECRET` stands for.
    public static func credentials(ofKey key: String, layout: FleetLayout) throws(FleetError) -> (id: String, login: EtcdCredentials) {
        let parts = key.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw .usage("an enrolment key looks like ID.SECRET, as `fleet key create` printed it") }
        return (parts[0], EtcdCredentials(user: layout.keyUser(parts[0]), password: parts[1]))
    }

    /// Claims a slot of the key `id` for the system `name` at `addresses`, and returns the
    /// credentials the host keeps. `keyStore` is logged in with the key (`credentials(ofKey:)`).
    public static func enrol(id: String, name: String, addresses: [IPAddress], keyStore: FleetStore) async throws(FleetError) -> Enrolment.Credentials {
        let layout = keyStore.layout
        guard Enrolment.isPlainName(name) else { throw .usage("system name '\(name)': use letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit") }
        guard addresses.contains(where: Enrolment.isReachable) else { throw .usage("this host has no address another host could reach it at") }
        let keyClient = keyStore.client
        // The name must be free: not another enrolled system, not a system of the pushed policy.
        var taken = Set<String>()
        do {
            for kv in try await keyClient.range(.prefix(layout.memberPrefix)).kvs {
                if let member = try? FleetStore.jsonDecoder.decode(Enrolment.Member.self, from: kv.value) { taken.insert(member.name) }
            }
        } catch { throw Self.keyFailure(error, id: id) }
        if let bundle = try await keyStore.bundle().bundle {
            taken.formUnion(EnrolledSystems.definedNames(in: try await keyStore.files(of: bundle).files.map(\.content)))
        }
        guard !taken.contains(name) else { throw .usage("the name \(name) is taken in fleet \(layout.fleet): choose another with --name") }
        // Claim a slot: read one, delete it on the condition that nobody else did first.
        for _ in 0..<20 {
            let slots: RangeResponse
            do { slots = try await keyClient.range(.prefix(layout.slotPrefix(id)), RangeOptions(limit: 1)) } catch { throw Self.keyFailure(error, id: id) }
            guard let kv = slots.kvs.first else {
                throw .usage("enrolment key \(id) has no use left: it was used up, it expired, or it was revoked")
            }
            guard let slot = try? FleetStore.jsonDecoder.decode(Enrolment.Slot.self, from: kv.value) else { throw .store("the slot \(kv.keyString) is not readable") }
            let claimed: TxnResponse
            do {
                claimed = try await keyClient.txn(if: [.modRevision(kv.keyString, .equal, kv.modRevision)], then: [.delete(.key(kv.keyString))])
            } catch { throw Self.keyFailure(error, id: id) }
            if claimed.succeeded {
                return Enrolment.Credentials(fleet: layout.fleet, slot: slot.slot, user: slot.user, password: slot.password, name: name)
            }
        }
        throw .conflict("every slot of key \(id) this host tried was claimed by another host first: try again")
    }

    static func keyFailure(_ error: any Error, id: String) -> FleetError {
        if let error = error as? EtcdError, error.kind == .authenticationFailed || error.kind == .permissionDenied {
            return .usage("the store refused enrolment key \(id): it is wrong, or was removed")
        }
        return FleetStore.failure("enrol with key \(id)", error)
    }

    // MARK: Helpers

    private func step<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws(FleetError) -> T {
        do { return try await body() } catch { throw FleetStore.failure(what, error) }
    }

    /// Runs `body`, taking "already exists" for done: `fleet init` and `key create` may run twice.
    private func tolerateExisting(_ body: () async throws -> Void) async throws {
        do { try await body() } catch let error as EtcdError where error.message.contains("already exists") {}
    }

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in ZeroPadded.string(UInt8.random(in: 0...255, using: &generator), width: 2, radix: 16) }.joined()
    }
}

extension Enrolment.Credentials {
    /// Where an enrolled host keeps them: `<state>/fleet/<fleet>/credentials`, mode 0600.
    public static func path(stateDirectory: String, layout: FleetLayout) -> String {
        stateDirectory + "/fleet/" + layout.fleet + "/credentials"
    }

    /// The credentials of this host in `layout`'s fleet, nil when it is not enrolled.
    public static func load(stateDirectory: String, layout: FleetLayout) throws(FleetError) -> Enrolment.Credentials? {
        let file = path(stateDirectory: stateDirectory, layout: layout)
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        do { return try FleetStore.jsonDecoder.decode(Enrolment.Credentials.self, from: data) } catch {
            throw .store("\(file) is not readable as enrolment credentials: \(error)")
        }
    }

    /// Written whole under a temporary name with mode 0600, then renamed into place: the
    /// password never sits in a file others may read.
    public func save(stateDirectory: String, layout: FleetLayout) throws(FleetError) {
        let file = Self.path(stateDirectory: stateDirectory, layout: layout)
        do {
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let data = try FleetStore.jsonEncoder.encode(self)
            let temporary = file + ".new"
            unlink(temporary)
            guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
                throw FleetError.store("cannot write \(temporary): \(SystemErrno(errno))")
            }
            guard rename(temporary, file) == 0 else { throw FleetError.store("cannot rename \(temporary): \(SystemErrno(errno))") }
        } catch let error as FleetError {
            throw error
        } catch {
            throw .store("cannot keep the enrolment credentials in \(file): \(SystemErrno.describe(error))")
        }
    }
}
