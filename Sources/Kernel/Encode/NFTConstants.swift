import Compiler

/// Values of linux/netfilter/nf_tables.h that the encoder uses, spelled out so the model
/// layer does not need the C module.
enum NFTConstants {
    static let regVerdict: UInt32 = 0
    static func reg32(_ word: UInt32) -> UInt32 { 8 + word }
    static let accept: UInt32 = 1
    static let drop: UInt32 = 0
    static let verdictJump: Int32 = -3
    static let verdictGoto: Int32 = -4
    static let verdictReturn: Int32 = -5
    static let dataVerdict: UInt32 = 0xffff_ff00

    static let setAnonymous: UInt32 = 0x1
    static let setConstant: UInt32 = 0x2
    static let setInterval: UInt32 = 0x4
    static let setMap: UInt32 = 0x8
    static let setTimeout: UInt32 = 0x10
    /// NFT_SET_EVAL: rules add and update elements (a dynamic set).
    static let setEvaluate: UInt32 = 0x20
    static let setConcat: UInt32 = 0x80
    static let elementIntervalEnd: UInt32 = 0x1

    static let cmpEq: UInt32 = 0
    static let cmpNeq: UInt32 = 1
    static let networkHeader: UInt32 = 1
    static let transportHeader: UInt32 = 2

    static let metaMark: UInt32 = 3
    static let metaIIF: UInt32 = 4
    static let metaNFProto: UInt32 = 15
    static let metaL4Proto: UInt32 = 16
    static let ctState: UInt32 = 0
    static let ctMark: UInt32 = 3
    static let ctDirection: UInt32 = 1

    static let rejectTCPReset: UInt32 = 1
    static let rejectICMPX: UInt32 = 2
    static let icmpxPortUnreachable: UInt8 = 1
    static let icmpxAdminProhibited: UInt8 = 3

    static let queueBypass: UInt16 = 0x1
    static let xtQueueBypass: UInt16 = 0x1
}

extension UInt32 {
    var signed: Int32 { Int32(bitPattern: self) }
}

extension TableFamily {
    public var number: UInt8 {
        switch self {
        case .inet: 1
        case .ip: 2
        case .ip6: 10
        }
    }
}

extension Hook {
    var number: UInt32 {
        switch self {
        case .prerouting: 0
        case .input: 1
        case .forward: 2
        case .output: 3
        case .postrouting: 4
        }
    }
}

extension KeyType {
    /// nft's datatype numbers (src/datatype.h), which `nft list` uses to print keys.
    var datatype: UInt32 {
        switch self {
        case .ipv4Address: 7
        case .ipv6Address: 8
        case .inetProtocol: 12
        case .inetService: 13
        case .mark: 19
        }
    }
}

extension ConntrackState {
    var bit: UInt32 {
        switch self {
        case .invalid: 1
        case .established: 2
        case .related: 4
        case .new: 8
        case .untracked: 0x40
        }
    }
}
