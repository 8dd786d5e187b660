import Compiler

/// What enforcer last put into the kernel: the table's sets and chains, and the kernel
/// elements of every set. Enough to compute a delta and to restore it (rollback).
public struct Snapshot: Sendable, Equatable {
    /// The table with every set's model elements dropped (they are in `elements`).
    public var table: Table
    public var elements: [String: KernelElements]

    public init(_ ruleset: Ruleset) {
        var table = ruleset.table
        var elements: [String: KernelElements] = [:]
        for index in table.sets.indices {
            elements[table.sets[index].name] = RulesetEncoder.kernelElements(table.sets[index].elements, of: table.sets[index])
            table.sets[index].elements = []
        }
        self.table = table
        self.elements = elements
    }

    public init(table: Table, elements: [String: KernelElements]) {
        self.table = table
        self.elements = elements
    }
}
