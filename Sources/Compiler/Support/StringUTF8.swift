extension String {
    /// The UTF-8 bytes appended in one copy (appending `utf8` goes byte by byte through
    /// String's indices).
    public func appendUTF8(to bytes: inout [UInt8]) {
        let span = utf8.span
        span.withUnsafeBufferPointer { bytes.append(contentsOf: $0) }
    }

    /// Whether the UTF-8 form holds `byte`, read through a span: `utf8.contains` walks
    /// String's indices, which the worker's path would pay for every host name.
    public func containsUTF8(_ byte: UInt8) -> Bool {
        let bytes = utf8.span
        for index in bytes.indices where bytes[index] == byte { return true }
        return false
    }
}
