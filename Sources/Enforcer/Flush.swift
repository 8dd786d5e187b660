import ArgumentParser
import Compiler
import Foundation
import Kernel

struct Flush: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove everything enforcer owns from the kernel (its table), nothing else.",
        discussion: "Reads only enforcer.conf ([kernel] table, [state] directory), so it works while the policy files have errors. Applied generations stay in the state directory for `enforcer rollback`.")

    @OptionGroup var directory: PolicyDirectoryOption
    @OptionGroup var state: StateDirectoryOption

    func run() throws {
        let path = directory.dir + "/enforcer.conf"
        var config = Config()
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let (parsed, diagnostics) = Config.parse(file: path, text: text)
            if diagnostics.contains(where: { $0.severity == .error }) {
                Output.print(diagnostics)
                throw ExitCode(1)
            }
            config = parsed
        }
        do {
            try Applier(stateDirectory: state.stateDir ?? config.stateDirectory).flush(family: .inet, name: config.table)
            print("flushed: table inet \(config.table) and inet \(RecentTable.name(of: config.table)) removed (where they existed); other tables untouched")
        } catch {
            Output.error("enforcer: \(error)")
            throw ExitCode(1)
        }
    }
}
