// Byte-level parsing shared by the address and port parsers. Parsing works on the UTF-8
// bytes (no Character iteration, no allocation on success) so that loading block lists of
// millions of addresses stays cheap; only the error path converts a byte offset into the
// character offset that `ValueError` promises.

/// A parse failure located by UTF-8 byte offset; turned into a `ValueError` at the API edge.
@usableFromInline
struct NetParseFailure: Error {
    enum Message {
        case text(String)
        /// "unexpected character 'x' in <context>", with the character taken from the input,
        /// so a multi-byte character is quoted whole.
        case unexpectedCharacter(context: String)
    }

    var message: Message
    var byteOffset: Int

    init(_ message: String, at byteOffset: Int) {
        self.message = .text(message)
        self.byteOffset = byteOffset
    }

    static func unexpected(at byteOffset: Int, in context: String) -> NetParseFailure {
        var failure = NetParseFailure("", at: byteOffset)
        failure.message = .unexpectedCharacter(context: context)
        return failure
    }

    @usableFromInline
    func valueError(in text: String) -> ValueError {
        // Find the character containing the failing byte.
        var characters = 0
        var bytes = 0
        var culprit: Character?
        for character in text {
            let width = character.utf8.count
            if bytes + width > byteOffset {
                culprit = character
                break
            }
            bytes += width
            characters += 1
        }
        switch message {
        case .text(let text):
            return ValueError(text, at: characters)
        case .unexpectedCharacter(let context):
            guard let culprit else { return ValueError("unexpected end of \(context)", at: characters) }
            let what = culprit.isWhitespace ? "whitespace" : "character '\(culprit)'"
            return ValueError("unexpected \(what) in \(context)", at: characters)
        }
    }
}

/// Byte constants and classifiers for the ASCII-only address and port syntax.
enum NetSyntax {
    static let colon = UInt8(ascii: ":")
    static let dot = UInt8(ascii: ".")
    static let slash = UInt8(ascii: "/")
    static let dash = UInt8(ascii: "-")
    static let percent = UInt8(ascii: "%")
    static let openBracket = UInt8(ascii: "[")
    static let zero = UInt8(ascii: "0")

    @inline(__always)
    static func digit(_ byte: UInt8) -> UInt8? {
        let value = byte &- zero
        return value < 10 ? value : nil
    }

    @inline(__always)
    static func hexDigit(_ byte: UInt8) -> UInt8? {
        if let value = digit(byte) { return value }
        let lower = byte | 0x20  // folds 'A'...'F' onto 'a'...'f'
        let letter = lower &- UInt8(ascii: "a")
        return letter < 6 ? letter + 10 : nil
    }

    @inline(__always)
    static func isLetter(_ byte: UInt8) -> Bool {
        (byte | 0x20) &- UInt8(ascii: "a") < 26
    }
}

@usableFromInline
typealias NetBytes = UnsafeBufferPointer<UInt8>

extension NetSyntax {
    /// The bytes in `range` as text, for quoting in messages.
    static func text(_ bytes: NetBytes, _ range: Range<Int>) -> String {
        String(decoding: NetBytes(rebasing: bytes[range]), as: UTF8.self)
    }

    static func text(_ bytes: NetBytes) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A sub-buffer whose offsets restart at 0; used for a prefix, so offsets still match.
    static func slice(_ bytes: NetBytes, _ range: Range<Int>) -> NetBytes { NetBytes(rebasing: bytes[range]) }

    /// Reads an unsigned decimal number starting at `start`; returns its value (saturated at
    /// `limit + 1` so huge inputs cannot overflow) and the offset after the last digit.
    @inline(__always)
    static func scanDecimal(_ bytes: NetBytes, from start: Int, limit: Int) -> (value: Int, end: Int) {
        var index = start
        var value = 0
        while index < bytes.count, let digit = NetSyntax.digit(bytes[index]) {
            if value <= limit { value = value * 10 + Int(digit) }
            index += 1
        }
        return (min(value, limit + 1), index)
    }
}

/// Runs a byte-level parser over `text`, converting its failure into a `ValueError`.
/// Inlinable so that callers in other modules get it specialized for their string type.
@inlinable
func parseNetText<T>(
    _ text: some StringProtocol, _ parser: (NetBytes) throws(NetParseFailure) -> T
) throws(ValueError) -> T {
    let body = { (bytes: NetBytes) -> Result<T, NetParseFailure> in
        Result { () throws(NetParseFailure) -> T in try parser(bytes) }
    }
    let result: Result<T, NetParseFailure>
    if let contiguous = text.utf8.withContiguousStorageIfAvailable(body) {
        result = contiguous
    } else {
        // Bridged or otherwise non-contiguous text: copy once into a native string.
        var copy = String(text)
        result = copy.withUTF8(body)
    }
    switch result {
    case .success(let value): return value
    case .failure(let failure): throw failure.valueError(in: String(text))
    }
}

/// Runs a byte-level parser over each item of `text` (UTF-8 offsets, as the loader splits a
/// list value), handing `each` the item's index and its value or error: one pass over the
/// text's storage, no string per item.
func parseNetItems<T>(
    _ text: String, _ items: [Range<Int>], _ parser: (NetBytes) throws(NetParseFailure) -> T,
    _ each: (Int, Result<T, ValueError>) -> Void
) {
    var text = text
    text.withUTF8 { all in
        for (index, range) in items.enumerated() {
            let bytes = NetBytes(rebasing: all[range])
            do throws(NetParseFailure) {
                each(index, .success(try parser(bytes)))
            } catch {
                each(index, .failure(error.valueError(in: String(decoding: bytes, as: UTF8.self))))
            }
        }
    }
}
