import ArgumentParser
import Enforcement
import Foundation

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a starter policy directory for this host.",
        discussion: """
            Writes enforcer.conf, rules.d/10-inventory.policy (this host with the addresses found on its interfaces, \
            tagged servers) and rules.d/20-ssh.policy (SSH to it from the systems tagged --ssh-from, with one admin \
            system: the client of the SSH session init runs in, else a placeholder to replace). Every host is \
            default-deny inbound until a policy grants a flow: ping, SSH and monitoring included. Refuses, writing \
            nothing, when the directory already holds enforcer.conf or a policy file.
            """)

    @OptionGroup var directory: PolicyDirectoryOption
    @Option(help: ArgumentHelp("This host's system name (default: its host name, up to the first dot).", valueName: "NAME"))
    var name: String?
    @Option(help: ArgumentHelp("The tag whose systems may log in over SSH.", valueName: "TAG"))
    var sshFrom = "admins"

    func run() throws {
        let host = name ?? String(ProcessInfo.processInfo.hostName.prefix { $0 != "." })
        let starter = StarterDirectory(name: host, addresses: StarterDirectory.usableAddresses(HostAddresses.current()),
                                       sshFrom: sshFrom, session: SSHSession.current())
        do {
            for path in try starter.write(into: directory.dir) { print("wrote \(path)") }
        } catch {
            throw Output.report(error)
        }
        let addresses = starter.addresses.map(\.description).joined(separator: ", ")
        print("system '\(starter.name)' (\(addresses)) may be reached over SSH from the systems tagged '\(sshFrom)': "
            + "admin-workstation at \(starter.admin.address) for now, \(starter.admin.origin)")
        let dir = directory.dir == "/etc/enforcer" ? "" : " --dir \(directory.dir)"
        print("next: enforcer check\(dir); enforcer apply --dry-run\(dir); then enforcer apply --confirm 2m\(dir) and enforcer confirm")
    }
}
