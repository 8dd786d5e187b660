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

    /// A new key: its id and secret (`ID.SECRET`, shown once), its record.
    public func createKey(tags: [String], uses: Int, expires: TimeInterval?, at instant: Date = Date()) async throws(FleetError) -> (key: String, record: Enrolment.Key) {
        for tag in tags where !Enrolment.isPlainName(tag) { throw .usage("tag '\(tag)': use letters, digits, '.', '_' or '-'") }
        guard (1...Self.maximumUses).contains(uses) else { throw .usage("--uses: from 1 to \(Self.maximumUses)") }
        try await ensureRoles()
        let id = Self.randomHex(bytes: 4), secret = Self.randomHex(bytes: 24)
        let by = Actor.current(purpose: "fleet key create")
        let record = Enrolment.Key(id: id, tags: tags, uses: uses, expires: expires.map { ISO8601.string(instant.addingTimeInterval($0)) },
                                   createdBy: by, createdAt: ISO8601.string(instant))
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
            let grant = Enrolment.Grant(slot: slot, key: id, tags: tags, expires: nil, createdBy: by)
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

    /// Removes a key's unused slots: it enrols nothing more. Systems it enrolled stay.
    public func revokeKey(_ id: String) async throws(FleetError) -> Int {
        let client = client, layout = layout
        return try await step("revoke key \(id)") {
            guard try await client.get(layout.keyRecord(id)) != nil else { throw FleetError.usage("no enrolment key \(id) in fleet \(layout.fleet)") }
            let removed = try await client.delete(.prefix(layout.slotPrefix(id))).deleted
            try await client.delete(.key(layout.keyRecord(id)))
            return Int(removed)
        }
    }

    /// Adds and removes tags of the enrolled system `name`, on the condition that its grant
    /// did not change since read. Returns the tags it has now.
    public func tag(_ name: String, add: [String], remove: [String]) async throws(FleetError) -> [String] {
        for tag in add + remove where !Enrolment.isPlainName(tag) { throw .usage("tag '\(tag)': use letters, digits, '.', '_' or '-'") }
        let client = client, layout = layout
        return try await step("change the tags of \(name)") {
            for _ in 0..<5 {
                let members = try await client.range(.prefix(layout.memberPrefix)).kvs
                guard let member = members.first(where: { (try? FleetStore.jsonDecoder.decode(Enrolment.Member.self, from: $0.value))?.name == name }) else {
                    throw FleetError.usage("no enrolled system \(name) is present in fleet \(layout.fleet) (a system of the pushed policy changes its tags in its file, then `fleet push`)")
                }
                let slot = String(member.keyString.dropFirst(layout.memberPrefix.count))
                guard let kv = try await client.get(layout.enrolledKey(slot)), var grant = try? FleetStore.jsonDecoder.decode(Enrolment.Grant.self, from: kv.value) else {
                    throw FleetError.usage("\(name) (slot \(slot)) has no grant in the store: enrol it again")
                }
                grant.tags = grant.tags.filter { !remove.contains($0) }
                for tag in add where !grant.tags.contains(tag) { grant.tags.append(tag) }
                let written = try await client.txn(if: [.modRevision(layout.enrolledKey(slot), .equal, kv.modRevision)],
                                                   then: [.put(key: Data(layout.enrolledKey(slot).utf8), value: try FleetStore.jsonEncoder.encode(grant), lease: 0, prevKV: false)])
                if written.succeeded { return grant.tags }
            }
            throw FleetError.conflict("the tags of \(name) kept changing under this command: run it again")
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
