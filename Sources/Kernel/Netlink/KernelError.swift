import Glibc

/// Errors of the netlink socket itself (not the kernel's answers to messages).
public struct NetlinkError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var errno: Int32
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// What a request asked of the kernel (an nf_tables message, or the batch as a whole).
public enum KernelOperation: Hashable, Sendable {
    case addTable, deleteTable, getTable, getGeneration, addChain, deleteChain, flushChain, addRule, addSet, deleteSet, addElements, deleteElements
    case addCounter, deleteCounter, getCounters
    /// The batch itself (refused before any of its messages, e.g. without permission).
    case transaction

    /// As nft says it: "add rule", "delete elements", "the transaction". (Not a
    /// `description`: the case name it is spelled from is what `String(describing:)` gives
    /// only while the type has none.)
    public var words: String {
        guard self != .transaction else { return "the transaction" }
        return String(String(describing: self).flatMap { $0.isUppercase ? [" ", Character($0.lowercased())] : [$0] })
    }
}

/// The kernel refused a transaction; nothing of it took effect.
public struct KernelRejection: Error, CustomStringConvertible, Sendable {
    public struct Refusal: Sendable {
        /// What the refused message came from ("rule 3 of chain input: …", "set …").
        public var origin: String
        public var operation: KernelOperation
        public var errno: Int32
        /// The kernel's extended-ACK text, when it gave one.
        public var kernelMessage: String?
    }
    public var refusals: [Refusal]

    /// The batch was sent on the condition of a ruleset generation (see
    /// `NFTablesConnection.knownGeneration`) and another process had committed since.
    public var isGenerationMoved: Bool {
        refusals.contains { $0.operation == .transaction && $0.errno == ERESTART }
    }

    public var description: String {
        refusals.map { refusal in
            if refusal.operation == .transaction && refusal.errno == ERESTART {
                return "the kernel refused the transaction: another process changed the ruleset since enforcer read it"
            }
            var text = "the kernel refused \(refusal.operation.words) (\(refusal.origin)): \(String(cString: strerror(refusal.errno)))"
            if let message = refusal.kernelMessage, !message.isEmpty { text += " (\(message))" }
            return text
        }.joined(separator: "\n")
    }
}

public enum KernelError: Error, CustomStringConvertible, Sendable {
    case socket(NetlinkError)
    case rejected(KernelRejection)
    /// The ruleset cannot be put into messages (nothing was sent).
    case encoding(EncodeError)
    /// The kernel stopped answering before every message of the batch was acknowledged.
    case incompleteAcknowledgement(expected: Int, received: Int)

    public var description: String {
        switch self {
        case .socket(let error): "netlink: \(error)"
        case .rejected(let rejection): rejection.description
        case .encoding(let error): "cannot encode the ruleset for the kernel: \(error)"
        case let .incompleteAcknowledgement(expected, received):
            "the kernel acknowledged \(received) of \(expected) messages; the outcome of the transaction is unknown"
        }
    }
}

public enum EncodeError: Error, Equatable, CustomStringConvertible, Sendable {
    case unknownInterface(String)

    public var description: String {
        switch self {
        case .unknownInterface(let name): "interface '\(name)' does not exist in this network namespace"
        }
    }
}
