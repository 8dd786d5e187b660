import Compiler
import Foundation

/// The portal's listener and its visitors' connections, as event sources of the daemon's
/// loop. Nothing a visitor does can hold the loop: reads and writes never block, a
/// request head or form body over `Portal.maxRequest` is answered and closed, a visitor
/// idle for `idleTimeout` or unfinished after `requestTimeout` is dropped, and past
/// `maxConnections` the connection waiting longest makes room for the new one. An answered
/// connection is closed gracefully: its writing side first, then what the visitor still
/// sends is read and dropped for up to `lingerTimeout` (closing with unread bytes would
/// reset the connection, and the visitor could lose the answer, a 431 above all).
final class PortalServer {
    struct Limits {
        var idleTimeout = 5.0
        var requestTimeout = 10.0
        var maxConnections = 64
        var lingerTimeout = 1.0
    }

    private let loop: EventLoop
    private let listener: Listener
    /// What answers a complete request: the portal's pages, or the metrics endpoint's text
    /// (the same non-blocking connections serve both).
    private var respond: (_ request: [UInt8], _ now: Date) -> Portal.Answer?
    /// How long an acknowledgement holds (the portal's; nothing else is acknowledged).
    private var acknowledgeFor: TimeInterval = 0
    let limits: Limits
    private var connections: [Connection] = []
    /// A visitor pressed the acknowledge button of `rule`.
    var onAcknowledge: (_ client: IPAddress, _ rule: String, _ until: Date) -> Void = { _, _, _ in }
    private let now: () -> Date

    convenience init(socket: ListeningSocket, portal: Portal, loop: EventLoop, limits: Limits = Limits(), now: @escaping () -> Date = Date.init) {
        self.init(socket: socket, loop: loop, limits: limits, now: now, respond: portal.answer)
        acknowledgeFor = portal.acknowledgeFor
    }

    init(socket: ListeningSocket, loop: EventLoop, limits: Limits = Limits(), now: @escaping () -> Date = Date.init,
         respond: @escaping (_ request: [UInt8], _ now: Date) -> Portal.Answer?) {
        self.loop = loop
        self.respond = respond
        self.limits = limits
        self.now = now
        listener = Listener(socket: socket)
        listener.server = self
        loop.add(listener)
    }

    /// The rules of a reloaded policy; visitors mid-request get the new pages.
    func replace(_ portal: Portal) {
        respond = portal.answer
        acknowledgeFor = portal.acknowledgeFor
    }

    var openConnections: Int { connections.count }

    func stop() {
        loop.remove(listener)
        for connection in connections { loop.remove(connection) }
        connections.removeAll()
    }

    fileprivate func accept(now: Double) {
        while let (stream, peer) = listener.socket.accept() {
            if connections.count >= limits.maxConnections, let oldest = connections.min(by: { $0.openedAt < $1.openedAt }) {
                close(oldest)
            }
            let connection = Connection(stream: stream, peer: peer, openedAt: now, limits: limits)
            connection.server = self
            connections.append(connection)
            loop.add(connection)
        }
    }

    fileprivate func answer(_ connection: Connection) -> [UInt8]? {
        guard let answer = respond(connection.received, now()) else { return nil }
        if let rule = answer.acknowledged {
            onAcknowledge(connection.peer, rule, now().addingTimeInterval(acknowledgeFor))
        }
        return answer.response
    }

    fileprivate func close(_ connection: Connection) {
        loop.remove(connection)
        connections.removeAll { $0 === connection }
    }

    fileprivate final class Listener: EventSource {
        let socket: ListeningSocket
        weak var server: PortalServer?
        init(socket: ListeningSocket) { self.socket = socket }
        var fileDescriptor: Int32 { socket.fileDescriptor }
        func wake(_ readiness: Poll.Readiness, now: Double) { server?.accept(now: now) }
    }

    /// One visitor: reading its request, then writing the answer, then closed.
    fileprivate final class Connection: EventSource {
        let stream: StreamConnection
        let peer: IPAddress
        let openedAt: Double
        private let limits: Limits
        private var lastActivity: Double
        private(set) var received: [UInt8] = []
        private var outbox: ArraySlice<UInt8> = []
        private var answered = false
        /// Answered and shut for writing: waiting for the visitor's end of file.
        private var lingeringSince: Double?
        /// The request's whole length once its head is in.
        private var expectedLength: Int?
        weak var server: PortalServer?

        init(stream: StreamConnection, peer: IPAddress, openedAt: Double, limits: Limits) {
            self.stream = stream
            self.peer = peer
            self.openedAt = openedAt
            self.limits = limits
            lastActivity = openedAt
        }

        var fileDescriptor: Int32 { stream.fileDescriptor }
        var wantsWritable: Bool { !outbox.isEmpty }
        var deadline: Double? {
            if let lingeringSince { return lingeringSince + limits.lingerTimeout }
            return min(lastActivity + limits.idleTimeout, openedAt + limits.requestTimeout)
        }

        func wake(_ readiness: Poll.Readiness, now: Double) {
            guard let server else { return }
            if readiness.isEmpty {
                // Idle too long, or too slow overall: dropped without an answer.
                server.close(self)
                return
            }
            if readiness.contains(.readable) || readiness.contains(.closed) {
                guard let bytes = stream.read(max: Portal.maxRequest + 1024) else { return server.close(self) }
                // After the answer, what else arrives is read and dropped (left unread, it
                // would wake the loop again and again until the answer is written).
                if !answered, !bytes.isEmpty {
                    lastActivity = now
                    received += bytes
                    respondWhenComplete(newBytes: bytes, server: server)
                }
            }
            if !outbox.isEmpty {
                guard let written = stream.write(outbox) else { return server.close(self) }
                if written > 0 { lastActivity = now }
                outbox = outbox.dropFirst(written)
            }
            if answered && outbox.isEmpty && lingeringSince == nil {
                stream.shutdownWriting()
                lingeringSince = now
            }
        }

        /// A head can only end at a line feed, and a body only when all of it is in: the
        /// request is parsed then (or when it reached the size limit), not on every read,
        /// so a visitor sending a byte at a time costs little.
        private func respondWhenComplete(newBytes: [UInt8], server: PortalServer) {
            let full = received.count >= Portal.maxRequest
            if expectedLength == nil, newBytes.contains(10) || full { expectedLength = Portal.requestLength(received) }
            guard full || expectedLength.map({ received.count >= $0 }) == true || (expectedLength == nil && newBytes.contains(10)) else { return }
            if let response = server.answer(self) {
                answered = true
                outbox = response[...]
            }
        }
    }
}
