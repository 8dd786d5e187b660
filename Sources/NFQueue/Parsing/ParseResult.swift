/// The three answers a stream parser can give about the first bytes of a flow.
///
/// "Need more data" and "malformed" are kept apart on purpose: the first means the
/// bytes seen so far are a valid prefix and the worker should wait for the next
/// segment; the second means no continuation can make the input valid, so the caller
/// applies its configured fail verdict at once instead of waiting.
public enum ParseResult<Value> {
    case complete(Value)
    /// The input is a valid prefix. `atLeast` is a lower bound on how many more bytes
    /// are needed, when the parser can tell.
    case needMoreData(atLeast: Int?)
    case malformed(reason: String)
}

extension ParseResult: Sendable where Value: Sendable {}
extension ParseResult: Equatable where Value: Equatable {}
extension ParseResult: Hashable where Value: Hashable {}

extension ParseResult {
    /// The parsed value when the answer is `.complete`.
    public var value: Value? {
        if case .complete(let value) = self { return value }
        return nil
    }

    public var isNeedMoreData: Bool {
        if case .needMoreData = self { return true }
        return false
    }

    public var malformedReason: String? {
        if case .malformed(let reason) = self { return reason }
        return nil
    }
}

/// Thrown inside the parsers and turned into `.malformed(reason:)` at their entry
/// points; typed so that nothing else can escape.
struct MalformedInput: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
