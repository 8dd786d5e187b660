import Glibc

/// One wait over many descriptors (poll(2)).
enum Poll {
    struct Interest {
        var fileDescriptor: Int32
        var writable: Bool
    }

    struct Readiness: OptionSet {
        let rawValue: UInt8
        static let readable = Readiness(rawValue: 1)
        static let writable = Readiness(rawValue: 2)
        /// Hung up or failed: a read or write says which.
        static let closed = Readiness(rawValue: 4)
    }

    /// Waits until one of `interests` is ready (or `timeoutMilliseconds`, -1 for none); returns
    /// each one's readiness, in order. An interrupted wait returns none ready.
    static func wait(_ interests: [Interest], timeoutMilliseconds: Int32) throws(SystemError) -> [Readiness] {
        var entries = interests.map { pollfd(fd: $0.fileDescriptor, events: Int16(POLLIN) | ($0.writable ? Int16(POLLOUT) : 0), revents: 0) }
        let ready = poll(&entries, nfds_t(entries.count), timeoutMilliseconds)
        if ready < 0 {
            if errno == EINTR { return interests.map { _ in [] } }
            throw SystemError(operation: "poll", errno: errno)
        }
        return entries.map { entry in
            var readiness: Readiness = []
            if entry.revents & Int16(POLLIN) != 0 { readiness.insert(.readable) }
            if entry.revents & Int16(POLLOUT) != 0 { readiness.insert(.writable) }
            if entry.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { readiness.insert(.closed) }
            return readiness
        }
    }
}
