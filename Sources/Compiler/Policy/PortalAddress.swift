import Foundation

/// Where a gateway's clients are sent for the portal. The worker answers a client's HTTP
/// request with a redirect to `portal_url`, so its host must be an address the *client* can
/// reach: the gateway's address on the clients' network. 127.0.0.1 is every client's own
/// loopback, where no portal answers.
extension PolicySet {
    /// The gateways of the gateway policies, each with the senders it routes for.
    var gatewayClients: [(gateway: SystemDefinition, clients: [SystemDefinition])] {
        var order: [String] = []
        var clients: [String: [SystemDefinition]] = [:]
        for policy in policies {
            guard case .gateway(let name, _) = policy.reach else { continue }
            if clients[name] == nil { order.append(name) }
            clients[name, default: []] += policy.senders.flatMap { systems(tagged: $0) }
        }
        return order.compactMap { name in system(named: name).map { ($0, clients[name] ?? []) } }
    }

    /// The address of `gateway` on its clients' network: of its single addresses, the one
    /// closest to a client's address, counted in the bits after their common prefix (so an
    /// IPv4 /24 and an IPv6 /64 compare fairly; IPv4 first on a tie, as a URL reads better
    /// with one; then the order written). nil when it has no single address but loopback.
    public func clientSideAddress(of gateway: SystemDefinition) -> IPAddress? {
        let clients = gatewayClients.first { $0.gateway.name == gateway.name }?.clients ?? []
        let clientAddresses = clients.flatMap(\.addresses).map(\.address)
        let own = gateway.addresses.filter { $0.prefixLength == $0.address.family.bitWidth && !$0.address.isLoopback }.map(\.address)
        func closeness(_ address: IPAddress) -> Int {
            clientAddresses.filter { $0.family == address.family }.map { address.commonPrefixLength(with: $0) - address.family.bitWidth }.max() ?? Int.min
        }
        return own.enumerated().max { a, b in
            (closeness(a.element), a.element.family == .v4 ? 1 : 0, -a.offset) < (closeness(b.element), b.element.family == .v4 ? 1 : 0, -b.offset)
        }?.element
    }

    /// This policy as `host` runs it: when `host` is a gateway and enforcer.conf does not set
    /// `portal_url`, the default is the portal's usual port on the host's client-side address.
    public func resolvingPortalURL(for host: SystemDefinition) -> PolicySet {
        // Whether the host routes for any policy first: the clients are found by scanning
        // every system for each gateway policy's tags, which a daemon reloading a fleet's
        // policy on a host that is no gateway need not pay for.
        guard config.portalURLLocation == nil,
              policies.contains(where: { if case .gateway(let name, _) = $0.reach { name == host.name } else { false } }),
              gatewayClients.contains(where: { $0.gateway.name == host.name }),
              let address = clientSideAddress(of: host) else { return self }
        var resolved = self
        resolved.config.portalURL = Config.portalURL(on: address)
        return resolved
    }

    /// `check`'s warnings about the portal: a gateway that serves it would send its clients to
    /// a loopback address (`portal_url` written so, or no address to derive the default from).
    func portalWarnings() -> [Diagnostic] {
        // The portal first: finding the gateways' clients scans every system.
        guard config.servesPortal(webRules: webRules) else { return [] }
        let gateways = gatewayClients.map(\.gateway)
        guard !gateways.isEmpty else { return [] }
        if let location = config.portalURLLocation {
            guard let host = Config.portalHost(config.portalURL), Config.isLoopbackHost(host) else { return [] }
            let example = gateways.first.flatMap { clientSideAddress(of: $0) }.map { ", such as \"\(Config.portalURL(on: $0))\"" } ?? ""
            return [.warning(location, "portal_url's host \(host) is a loopback address: the gateway redirects its clients there, and on a "
                + "client that is the client itself, where no portal answers; use the gateway's address on its clients' network\(example), "
                + "or leave portal_url out to have it derived")]
        }
        return gateways.filter { clientSideAddress(of: $0) == nil }.map { gateway in
            .warning(gateway.location, "gateway '\(gateway.name)' has no single address that is not loopback, so the portal's default "
                + "address stays \(Config().portalURL), which each client reads as itself; give it its address on the clients' network, "
                + "or set [web] portal_url")
        }
    }
}

extension Config {
    /// The default portal URL on `address`: `http://ADDRESS:8088/`, brackets for IPv6.
    public static func portalURL(on address: IPAddress) -> String {
        address.family == .v6 ? "http://[\(address)]:8088/" : "http://\(address):8088/"
    }

    /// The host of a URL (brackets of an IPv6 address removed), without user or port.
    static func portalHost(_ url: String) -> String? {
        guard let scheme = url.range(of: "://") else { return nil }
        var authority = url[scheme.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if authority.hasPrefix("[") { return authority.dropFirst().prefix { $0 != "]" }.lowercased() }
        return authority.prefix { $0 != ":" }.lowercased()
    }

    /// Whether a URL's host names the machine that reads it: a loopback address, or
    /// `localhost` (which resolves to one everywhere).
    static func isLoopbackHost(_ host: String) -> Bool {
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        return (try? IPAddress.parse(host))?.isLoopback ?? false
    }
}

extension IPAddress {
    /// 127.0.0.0/8 or ::1 (and an IPv4 loopback address mapped into IPv6).
    public var isLoopback: Bool {
        switch family {
        case .v4: value >> 24 == 127
        case .v6: value == 1 || value >> 32 == 0xffff && (value >> 24) & 0xff == 127
        }
    }

    /// How many leading bits this address has in common with `other` (same family).
    func commonPrefixLength(with other: IPAddress) -> Int {
        let differing = value ^ other.value
        let leading = differing.leadingZeroBitCount - (128 - family.bitWidth)
        return min(leading, family.bitWidth)
    }
}
