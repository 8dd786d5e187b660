import Compiler
import Foundation

/// The addresses configured on this host's interfaces.
public enum HostAddresses {
    public static func current() -> [IPAddress] {
        Host.current().addresses.compactMap { text in
            try? IPAddress.parse(text.split(separator: "%").first ?? "")
        }
    }
}
