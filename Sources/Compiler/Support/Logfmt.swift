/// logfmt, the form of every log line enforcer writes: `key=value` pairs, a value bare when it
/// is one plain word, else in double quotes. One rule for the daemon's lines
/// (`Enforcement/Output/Log`) and the worker's per-flow lines (`NFQueue/Worker/LineWriter`,
/// which writes bytes without building strings), so both read back alike.
public enum Logfmt {
    /// Whether `byte` keeps a value from standing bare: a space or control byte, `"`, `=`, `\`.
    @inlinable
    public static func needsQuotes(_ byte: UInt8) -> Bool {
        byte <= 0x20 || byte == 0x7f || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "\\")
    }

    /// What `byte` is written as inside the quotes: `"` and `\` behind a backslash, line breaks
    /// and tabs as `\n`, `\r`, `\t`, other control bytes as `?` (so a value never ends a line
    /// or forges one), everything else as it is. At most two bytes.
    @inlinable
    public static func escaped(_ byte: UInt8) -> (UInt8, UInt8?) {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): (UInt8(ascii: "\\"), byte)
        case UInt8(ascii: "\n"): (UInt8(ascii: "\\"), UInt8(ascii: "n"))
        case UInt8(ascii: "\r"): (UInt8(ascii: "\\"), UInt8(ascii: "r"))
        case UInt8(ascii: "\t"): (UInt8(ascii: "\\"), UInt8(ascii: "t"))
        case 0..<0x20, 0x7f: (UInt8(ascii: "?"), nil)
        default: (byte, nil)
        }
    }

    /// `value` as a logfmt value.
    public static func quoted(_ value: String) -> String {
        let bytes = Array(value.utf8)
        if !bytes.isEmpty && !bytes.contains(where: needsQuotes) { return value }
        var out: [UInt8] = [UInt8(ascii: "\"")]
        out.reserveCapacity(2 * bytes.count + 2)
        for byte in bytes {
            let (first, second) = escaped(byte)
            out.append(first)
            if let second { out.append(second) }
        }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }
}
