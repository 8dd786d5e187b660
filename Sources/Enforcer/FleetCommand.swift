import ArgumentParser
import Compiler
import Enforcement
import Etcd
import Foundation

/// `--store`, `--fleet` and how to authenticate: shared by `fleet …` and `run --store`.
struct StoreOptions: ParsableArguments {
    @Option(help: ArgumentHelp("etcd client URLs, comma-separated (default $ENFORCER_STORE).", valueName: "URL"))
    var store: String?
    @Option(help: ArgumentHelp("The fleet's name: its keys live under /enforcer/NAME/ (default $ENFORCER_FLEET, else 'default').", valueName: "NAME"))
    var fleet: String?
    @Option(help: ArgumentHelp("CA certificate that signed etcd's (https:// URLs).", valueName: "FILE"))
    var storeCA: String?
    @Option(help: ArgumentHelp("Client certificate for etcd.", valueName: "FILE"))
    var storeCert: String?
    @Option(help: ArgumentHelp("Key of the client certificate.", valueName: "FILE"))
    var storeKey: String?
    @Option(help: ArgumentHelp("etcd user to log in as (its password from --store-password-file).", valueName: "NAME"))
    var storeUser: String?
    @Option(help: ArgumentHelp("File whose first line is the etcd user's password.", valueName: "FILE"))
    var storePasswordFile: String?

    var given: Bool { store != nil || ProcessInfo.processInfo.environment["ENFORCER_STORE"] != nil }

    /// The first line of a password file.
    static func password(in file: String) throws -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw FleetError.usage("cannot read the password file \(file): \(SystemErrno(errno))")
        }
        return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
    }

    func settings() throws -> StoreSettings {
        let environment = ProcessInfo.processInfo.environment
        guard let urls = store ?? environment["ENFORCER_STORE"] else {
            throw ValidationError("no store: give --store URL (or set ENFORCER_STORE)")
        }
        let tls = (storeCA != nil || storeCert != nil) ? EtcdTLS(caFile: storeCA, certificateFile: storeCert, keyFile: storeKey) : nil
        var credentials: EtcdCredentials?
        if let storeUser {
            guard let file = storePasswordFile else { throw ValidationError("--store-user needs --store-password-file") }
            credentials = EtcdCredentials(user: storeUser, password: try Self.password(in: file))
        }
        return try StoreSettings(endpoints: urls.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) },
                                 fleet: fleet ?? environment["ENFORCER_FLEET"] ?? "default", tls: tls, credentials: credentials)
    }
}

struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "One policy for many hosts, kept in etcd: push, compare, history, rollback, status; enrolment keys and tags.",
        discussion: """
            A push checks the policy directory as `check` does and writes it to the store in one \
            transaction; every `enforcer run --store` agent applies its host's part. docs/FLEET.md \
            describes the keys.
            """,
        subcommands: [Push.self, Diff.self, History.self, Rollback.self, Status.self, GC.self, Init.self, CA.self, Key.self, Tag.self, Expire.self, Host.self, Remove.self])

    /// Runs `body` with the store open, closing it after; maps failures to messages and exit 1.
    private static func withOpenStore(_ options: StoreOptions, _ body: (FleetStore) throws -> [String]) throws {
        let store = try options.settings().connect()
        defer { try? waitFor { await store.close() } }
        do {
            for line in try body(store) { print(line) }
        } catch let failure as EnforcementError {
            throw Output.report(failure, after: "; nothing was pushed")
        } catch let failure as FleetError {
            Output.error("enforcer: \(failure)")
            throw ExitCode(1)
        }
    }

    static func withStore(_ options: StoreOptions, _ body: (FleetAdmin) throws -> [String]) throws {
        try withOpenStore(options) { try body(FleetAdmin(store: $0)) }
    }

    static func withEnrolment(_ options: StoreOptions, _ body: @escaping @Sendable (FleetEnrolment) async throws -> [String]) throws {
        try withOpenStore(options) { store in try waitFor { try await body(FleetEnrolment(store: store)) } }
    }

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a policy directory and make it the fleet's policy.",
            discussion: "Of two pushes at the same time one lands; the other is told to check again and retry.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("Why, for `fleet history`.", valueName: "TEXT"))
        var message: String?
        @Option(help: ArgumentHelp("Push only if the fleet's policy is still the one of this revision (from `fleet diff` or `fleet history`).", valueName: "REV"))
        var ifRevision: Int64?

        func run() throws {
            try FleetCommand.withStore(store) { try $0.push(directory: directory.dir, message: message, ifRevision: ifRevision) }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What a push of the policy directory would change in the store.")
        @OptionGroup var directory: PolicyDirectoryOption
        @OptionGroup var store: StoreOptions

        func run() throws {
            try FleetCommand.withStore(store) { try $0.diff(directory: directory.dir) }
        }
    }

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pushes, newest first: revision, when, who, why.")
        @OptionGroup var store: StoreOptions
        @Option(help: "How many.") var limit = 20

        func run() throws {
            try FleetCommand.withStore(store) { try $0.history(limit: limit) }
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make the policy of an earlier revision the fleet's policy again (a new push).")
        @Argument(help: ArgumentHelp("A revision from `fleet history`.", valueName: "REV"))
        var revision: Int64
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("Why, for `fleet history`.", valueName: "TEXT"))
        var message: String?

        func run() throws {
            try FleetCommand.withStore(store) { try $0.rollback(to: revision, message: message) }
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Delete the chunks that no kept revision of the policy names.",
            discussion: """
                Keeps every chunk named by the last --keep-revisions pushes (the current one among \
                them: `fleet rollback` can restore those) and every chunk written since the current \
                push (a push in progress). A push that lands meanwhile stops it; a push that listed \
                the chunks before it deleted some is told to push again.
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: "How many of the latest revisions `fleet rollback` must still be able to restore.")
        var keepRevisions = 10
        @Flag(help: "Say what would be deleted; delete nothing.")
        var dryRun = false

        func run() throws {
            let keep = keepRevisions, dryRun = dryRun
            try FleetCommand.withStore(store) { try $0.collectGarbage(keep: keep, dryRun: dryRun) }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every agent: the revision it enforces, whether it is behind, its last error.")
        @OptionGroup var store: StoreOptions

        func run() throws {
            try FleetCommand.withStore(store) { try $0.status() }
        }
    }
}

extension FleetCommand {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn on etcd's authentication for the fleet: a root user, the fleet's roles, an administrator.",
            discussion: """
                Creates etcd's root user (password from --root-password-file), the roles \
                enforcer.NAME.admin (everything under /enforcer/NAME/) and enforcer.NAME.reader (what \
                agents read), optionally a user enforcer.NAME.admin, then enables authentication. \
                From then on every command needs --store-user and --store-password-file; an enrolled \
                host logs in with the credentials `enforcer enrol` kept. Run it once per etcd cluster \
                (again for each further fleet, as root).
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("File whose first line is the password for etcd's root user.", valueName: "FILE"))
        var rootPasswordFile: String
        @Option(help: ArgumentHelp("File whose first line is the password of the user enforcer.NAME.admin (not made without it).", valueName: "FILE"))
        var adminPasswordFile: String?

        func run() throws {
            let root = try StoreOptions.password(in: rootPasswordFile)
            let admin = try adminPasswordFile.map(StoreOptions.password(in:))
            try FleetCommand.withEnrolment(store) { enrolment in
                try await enrolment.initialize(rootPassword: root, adminPassword: admin)
                let layout = enrolment.store.layout
                return ["authentication enabled; roles \(layout.adminRole) and \(layout.readerRole)"
                        + (admin == nil ? "" : "; user \(layout.adminRole)") + ": log in with --store-user root (or that user) from now on"]
            }
        }
    }

    struct CA: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ca",
            abstract: "A certificate authority for the fleet's etcd: its server certificate and client certificates (made with openssl).",
            subcommands: [Make.self, Issue.self])

        struct Make: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "init",
                abstract: "Make a CA in a directory, and the certificate etcd serves.",
                discussion: """
                    Writes DIR/ca.pem, DIR/ca-key.pem, DIR/server.pem and DIR/server-key.pem (keys mode \
                    0600, DIR 0700). Start etcd with --cert-file DIR/server.pem --key-file \
                    DIR/server-key.pem --trusted-ca-file DIR/ca.pem --client-cert-auth and https:// \
                    client URLs; give each host or administrator a certificate with `fleet ca issue`.
                    """)
            @Option(help: ArgumentHelp("Where the CA's files go (made mode 0700).", valueName: "DIR"))
            var dir: String
            @Option(help: ArgumentHelp("A DNS name clients reach etcd by (repeatable).", valueName: "NAME"))
            var serverName: [String] = []
            @Option(help: ArgumentHelp("An address clients reach etcd at (repeatable), e.g. 127.0.0.1.", valueName: "ADDRESS"))
            var serverIp: [String] = []
            @Option(help: "How many days the certificates are valid.")
            var days = 825

            func run() throws {
                do {
                    let ca = try FleetCA.create(in: dir, names: serverName, addresses: serverIp, days: days)
                    print("made a CA in \(ca.directory) and etcd's certificate for \((serverName + serverIp).joined(separator: ", ")); start etcd with "
                          + "--cert-file \(ca.certificate("server")) --key-file \(ca.key("server")) --trusted-ca-file \(ca.caCertificate) --client-cert-auth; "
                          + "then `enforcer fleet ca issue NAME --dir \(ca.directory)` for each host or administrator")
                } catch {
                    Output.error("enforcer: \(error)")
                    throw ExitCode(1)
                }
            }
        }

        struct Issue: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Issue a client certificate NAME from the CA in a directory.")
            @Argument(help: ArgumentHelp("The certificate's name (a host's or an administrator's).", valueName: "NAME"))
            var name: String
            @Option(help: ArgumentHelp("The CA's directory (`fleet ca init`).", valueName: "DIR"))
            var dir: String
            @Option(help: "How many days the certificate is valid.")
            var days = 825

            func run() throws {
                let ca = FleetCA(directory: dir)
                do {
                    try ca.issueClient(name, days: days)
                    print("issued \(ca.certificate(name)) and \(ca.key(name)) (mode 0600); that host logs in with "
                          + "--store-ca \(ca.caCertificate) --store-cert \(ca.certificate(name)) --store-key \(ca.key(name))")
                } catch {
                    Output.error("enforcer: \(error)")
                    throw ExitCode(1)
                }
            }
        }
    }

    struct Key: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrolment keys: a host that has one joins the fleet with the key's tags.",
            subcommands: [Create.self, List.self, Revoke.self])

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make an enrolment key (printed once: keep it secret).",
                discussion: """
                    Needs etcd's root user (a key is etcd users: one for the key, one per use). A host \
                    enrolled with it carries its tags; `fleet tag` changes them afterwards.
                    """)
            @OptionGroup var store: StoreOptions
            @Option(help: ArgumentHelp("Tags of the systems it enrols, comma-separated.", valueName: "TAGS"))
            var tags: String = ""
            @Option(help: "How many hosts it may enrol (1 to 1000).")
            var uses = 1
            @Option(help: ArgumentHelp("It enrols nothing after this long (e.g. 24h).", valueName: "DURATION"))
            var expires: DurationArgument?
            @Option(help: ArgumentHelp("The systems it enrols are removed from every receiver this long after the key is made (e.g. 720h; `fleet expire` changes it for one).",
                                       valueName: "DURATION"))
            var systemExpires: DurationArgument?

            func run() throws {
                let tags = tags.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                let uses = uses, expires = expires?.seconds, systemsExpire = systemExpires?.seconds
                try FleetCommand.withEnrolment(store) { enrolment in
                    let (key, record) = try await enrolment.createKey(tags: tags, uses: uses, expires: expires, systemsExpire: systemsExpire)
                    return [key, "enrolment key \(record.id): tags \(tags.isEmpty ? "none" : tags.joined(separator: ", ")), "
                            + "\(counted(uses, "use"))" + (record.expires.map { ", enrols nothing after \($0)" } ?? ", no expiry")
                            + (record.systemsExpire.map { ", the systems it enrols expire at \($0)" } ?? "")
                            + "; on a new host: enforcer enrol --store URL --fleet \(enrolment.store.layout.fleet) --key KEY"]
                }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Every enrolment key, its tags and the uses left.")
            @OptionGroup var store: StoreOptions

            func run() throws {
                try FleetCommand.withEnrolment(store) { enrolment in
                    let keys = try await enrolment.keys()
                    guard !keys.isEmpty else { return ["no enrolment key in fleet \(enrolment.store.layout.fleet)"] }
                    return keys.map { key, unused in
                        "\(key.id)  tags \(key.tags.isEmpty ? "none" : key.tags.joined(separator: ","))  \(unused) of \(key.uses) unused"
                            + (key.expires.map { "  expires \($0)" } ?? "") + (key.systemsExpire.map { "  systems expire \($0)" } ?? "") + "  created \(key.createdAt) by \(key.createdBy)"
                    }
                }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "A key enrols nothing more; the systems it enrolled stay.",
                discussion: "Needs etcd's root user: the etcd users of the key and of its unused enrolments are deleted. `fleet remove` takes away a system it enrolled.")
            @Argument(help: ArgumentHelp("The key's id (the part before the dot).", valueName: "ID"))
            var id: String
            @OptionGroup var store: StoreOptions

            func run() throws {
                let id = id
                try FleetCommand.withEnrolment(store) { enrolment in
                    let revoked = try await enrolment.revokeKey(id)
                    let slots: String = revoked.unusedSlots.isEmpty ? "" : " (\(revoked.unusedSlots.joined(separator: ", ")))"
                    let users: String = revoked.users.isEmpty ? "none" : revoked.users.joined(separator: ", ")
                    return ["revoked enrolment key \(id): \(counted(revoked.unusedSlots.count, "unused enrolment")) removed\(slots); etcd users deleted: \(users)"]
                }
            }
        }
    }

    struct Host: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "etcd logins for the agents of hosts of the pushed policy.",
            subcommands: [Add.self])

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "An etcd user for SYSTEM's agent: it reads the fleet's policy and writes only its own presence.",
                discussion: "Needs etcd's root user. Then on that host: enforcer run --store URL --fleet NAME --system SYSTEM --store-user USER --store-password-file FILE")
            @Argument(help: ArgumentHelp("A system of the pushed policy.", valueName: "SYSTEM"))
            var system: String
            @OptionGroup var store: StoreOptions
            @Option(help: ArgumentHelp("File whose first line is the new user's password.", valueName: "FILE"))
            var passwordFile: String

            func run() throws {
                let system = system, password = try StoreOptions.password(in: passwordFile)
                try FleetCommand.withEnrolment(store) { enrolment in
                    let user = try await enrolment.addSystemUser(system, password: password)
                    return ["user \(user): reads fleet \(enrolment.store.layout.fleet)'s policy, writes only the presence of \(system); "
                            + "its agent runs with --system \(system) --store-user \(user) --store-password-file FILE"]
                }
            }
        }
    }

    struct Expire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set when a system stops being one: every agent drops it then.",
            discussion: """
                For an enrolled system, writes the expiry into its grant (on the condition that nobody \
                changed it since read); for a system of the pushed policy, pushes the store's files \
                with its block's `expires:` line written and nothing else changed (checked and guarded \
                as any push; --if-revision as for `fleet tag`). Agents drop the system at that instant \
                by their own clocks, also while the store cannot be reached, and cut the connections \
                it opened. Example: enforcer fleet expire app-1 --after 24h --store URL
                """)
        @Argument(help: ArgumentHelp("The system (an enrolled one also by its slot).", valueName: "SYSTEM"))
        var system: String
        @Option(help: ArgumentHelp("When: ISO 8601, UTC unless a zone is given (2026-12-31T18:00:00Z).", valueName: "TIME"))
        var at: String?
        @Option(help: ArgumentHelp("How long from now (24h, 90m, 7d).", valueName: "DURATION"))
        var after: DurationArgument?
        @Flag(help: "It does not expire.")
        var never = false
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("For a system of the pushed policy: only if the policy is still the one of this revision.", valueName: "REV"))
        var ifRevision: Int64?

        func run() throws {
            let system = system, ifRevision = ifRevision
            let expiry: Date?
            do { expiry = try FleetEnrolment.expiry(at: at, after: after?.seconds, never: never, now: Date()) } catch {
                throw ValidationError("\(error)")
            }
            try FleetCommand.withStore(store) { admin in
                let enrolment = FleetEnrolment(store: admin.store)
                if try !waitFor({ try await enrolment.memberNames() }).contains(system), try admin.isPushedSystem(system) {
                    return try admin.expire(pushedSystem: system, at: expiry, ifRevision: ifRevision)
                }
                let (slot, grant) = try waitFor { try await enrolment.expire(system, at: expiry) }
                let which: String = slot == system ? "" : " (slot \(slot))"
                let when: String = grant.expires.map { "expires \($0)" } ?? "does not expire"
                return ["\(system)\(which): \(when)"]
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a system out of the fleet and delete its etcd login.",
            discussion: """
                Needs etcd's root user. An enrolled system (by name while its host is present, else by \
                its slot) loses its grant, member record, presence and etcd user and role: every \
                receiver drops it at once and its credentials no longer log in. --departed does so for \
                every enrolled slot whose host is not present now (its lease ran out) and that no host \
                can claim any more. A system of the pushed policy loses the user `fleet host add` made \
                and its presence; its block stays until a push removes it.
                """)
        @Argument(help: ArgumentHelp("The system, or the slot of an enrolled one.", valueName: "SYSTEM"))
        var system: String?
        @Flag(help: "Every enrolled system whose host is not present now.")
        var departed = false
        @OptionGroup var store: StoreOptions

        func validate() throws {
            guard (system == nil) != (!departed) else { throw ValidationError("give either SYSTEM or --departed") }
        }

        func run() throws {
            let system = system
            try FleetCommand.withEnrolment(store) { enrolment in
                let names = if let system { [system] } else { try await enrolment.departedSlots() }
                if names.isEmpty { return ["no departed enrolled system in fleet \(enrolment.store.layout.fleet)"] }
                var lines: [String] = []
                for name in names {
                    let removal = try await enrolment.remove(name)
                    var what = " (a system of the pushed policy: its block stays until a push removes it)"
                    if let slot = removal.slot { what = slot == name ? "" : " (slot \(slot))" }
                    let user: String = removal.user.map { "\($0) deleted" } ?? "none"
                    lines.append("removed \(name)\(what): \(counted(removal.keysDeleted, "key")) deleted, etcd user \(user)")
                }
                return lines
            }
        }
    }

    struct Tag: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add (+tag) and remove (-tag) tags of a system: every receiver follows.",
            discussion: """
                An enrolled system's grant changes in the store. For a system of the pushed policy \
                the store's policy is pushed again with that system's `tags:` rewritten (nothing else \
                in its file changes), checked as `fleet push` checks, and refused if another push \
                landed since it was read. Example: enforcer fleet tag db-1 +pci -legacy --store URL
                """)
        @Argument(help: ArgumentHelp("The system.", valueName: "SYSTEM"))
        var system: String
        @Argument(parsing: .allUnrecognized, help: ArgumentHelp("+tag to add, -tag to remove.", valueName: "CHANGE"))
        var changes: [String] = []
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("For a system of the pushed policy: only if the policy is still the one of this revision.", valueName: "REV"))
        var ifRevision: Int64?

        /// `+a -b` → (add, remove).
        static func parse(_ changes: [String]) throws -> (add: [String], remove: [String]) {
            var add: [String] = [], remove: [String] = []
            for change in changes {
                if change.hasPrefix("+") { add.append(String(change.dropFirst())) } else if change.hasPrefix("-") { remove.append(String(change.dropFirst())) } else {
                    throw ValidationError("'\(change)': write +tag to add a tag, -tag to remove one")
                }
            }
            if let bare = changes.first(where: { $0 == "+" || $0 == "-" }) { throw ValidationError("'\(bare)' alone: write the tag right after it (+pci, -legacy)") }
            guard !add.isEmpty || !remove.isEmpty else { throw ValidationError("no change: give +tag or -tag") }
            return (add, remove)
        }

        func run() throws {
            let (adding, removing) = try Self.parse(changes)
            let system = system, ifRevision = ifRevision
            try FleetCommand.withStore(store) { admin in
                let enrolment = FleetEnrolment(store: admin.store)
                guard try waitFor({ try await enrolment.memberNames() }).contains(system) else {
                    return try admin.tag(pushedSystem: system, add: adding, remove: removing, ifRevision: ifRevision)
                }
                let tags = try waitFor { try await enrolment.tag(system, add: adding, remove: removing) }
                return ["\(system): tags \(tags.isEmpty ? "none" : tags.joined(separator: ", "))"]
            }
        }
    }
}

/// `enforcer enrol`: this host joins a fleet with an enrolment key.
struct Enrol: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join a fleet with an enrolment key: this host becomes a system with the key's tags.",
        discussion: """
            Claims one use of the key, keeps the host's own etcd credentials in the state directory \
            (mode 0600), and records the system: its name and the addresses of its interfaces. Then \
            start `enforcer run --store URL --fleet NAME`: it logs in with those credentials, keeps \
            the record alive under a lease and enforces this host's part of the fleet's policy. The \
            host cannot change its own tags: administrators do, with `fleet tag`.
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var state: StateDirectoryOption
    @Option(help: ArgumentHelp("The key, as `fleet key create` printed it.", valueName: "KEY"))
    var key: String
    @Option(help: ArgumentHelp("The system's name (default: the host name).", valueName: "NAME"))
    var name: String?

    func run() throws {
        var settings = try store.settings()
        let stateDirectory = state.stateDir ?? "/var/lib/enforcer"
        do {
            if let held = try Enrolment.Credentials.load(stateDirectory: stateDirectory, layout: settings.layout) {
                throw FleetError.usage("this host is already enrolled in fleet \(held.fleet) as \(held.name) (slot \(held.slot)); remove \(Enrolment.Credentials.path(stateDirectory: stateDirectory, layout: settings.layout)) to enrol again")
            }
            let (id, login) = try FleetEnrolment.credentials(ofKey: key, layout: settings.layout)
            settings.credentials = login
            let keyStore = try settings.connect()
            let name = name ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
            let addresses = HostAddresses.current().filter(Enrolment.isReachable).sorted()
            let credentials: Enrolment.Credentials
            do {
                credentials = try waitFor { try await FleetEnrolment.enrol(id: id, name: name, addresses: addresses, keyStore: keyStore) }
            } catch {
                try? waitFor { await keyStore.close() }
                throw error
            }
            try? waitFor { await keyStore.close() }
            try credentials.save(stateDirectory: stateDirectory, layout: settings.layout)
            settings.credentials = EtcdCredentials(user: credentials.user, password: credentials.password)
            let hostStore = try settings.connect()
            defer { try? waitFor { await hostStore.close() } }
            try waitFor {
                let lease = try await hostStore.client.grantLease(ttl: 30).id
                try await hostStore.announceMember(slot: credentials.slot, name: credentials.name, addresses: addresses, lease: lease)
            }
            print("enrolled in fleet \(settings.layout.fleet) as \(credentials.name) (slot \(credentials.slot)) at \(addresses.map(\.description).joined(separator: ", "))"
                  + "; start `enforcer run --store \(settings.endpoints.joined(separator: ",")) --fleet \(settings.layout.fleet)` to stay enrolled")
        } catch let failure as FleetError {
            Output.error("enforcer: \(failure)")
            throw ExitCode(1)
        }
    }
}
