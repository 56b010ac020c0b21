// Package pgproxy is a test-only TCP proxy for PostgreSQL. It sits between a
// database driver and a real server, forwards every byte unchanged in both
// directions, and parses the client-to-server (frontend) protocol v3 to count
// round trips and record the SQL text that clients send.
//
// A round trip is one client message after which the server answers with
// ReadyForQuery: a Sync ('S') or a simple Query ('Q'). Messages of the
// connection startup phase (SSLRequest, StartupMessage, authentication 'p'
// messages, CancelRequest) are never counted.
//
// Neither are the liveness pings of pgx's database/sql driver, the simple
// query "-- ping", which it sends when it hands out a pooled connection whose
// last use is more than a second old (by its own clock, which tests cannot
// set): counted, they would make a measured operation cost one more round
// trip whenever the test machine was slow. Pings counts them instead.
//
// Connect through the proxy with sslmode=disable: if the client negotiates
// TLS or GSS encryption the traffic is opaque, and that connection is only
// forwarded, never counted.
//
// This package is meant for tests only; it is not part of the pgstore API.
package pgproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request codes that may appear in the untyped first messages of a connection.
const (
	codeCancel = 80877102
	codeSSL    = 80877103
	codeGSSENC = 80877104
)

// maxStartupLen bounds an untyped startup-phase message (the server uses 10000).
const maxStartupLen = 10000

// Proxy is a test-only PostgreSQL proxy that counts round trips. Create it
// with Start and stop it with Close. All methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // canceled by Close; aborts dials in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	roundTrips atomic.Int64
	pings      atomic.Int64

	mu      sync.Mutex
	closed  bool
	conns   map[net.Conn]struct{}
	stmts   []string
	waiters []waiter
	lose    string // LoseReply's armed substring; "" when not armed
	refuse  int    // connections Refuse still has to close
	refused chan struct{}
}

// waiter is an Await in progress.
type waiter struct {
	substr string
	seen   chan struct{}
}

// Start listens on 127.0.0.1:0 and forwards each accepted connection to
// target ("host:port"). It is test-only.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pgproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the address the proxy listens on, such as "127.0.0.1:54321".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// RoundTrips returns the number of Sync and Query messages that clients have
// sent since Start or the last Reset, excluding the connection startup phase.
// A message is counted before it is forwarded, so once a client has its
// answer the count already includes it.
func (p *Proxy) RoundTrips() int64 { return p.roundTrips.Load() }

// Pings returns the number of pgx liveness pings (the simple query
// "-- ping") sent since Start or the last Reset. They are not round trips
// and not statements.
func (p *Proxy) Pings() int64 { return p.pings.Load() }

// Reset sets the round-trip and ping counters to zero and forgets recorded
// statements.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roundTrips.Store(0)
	p.pings.Store(0)
	p.stmts = nil
}

// Statements returns, in the order seen, the SQL text of every Parse ('P')
// and simple Query ('Q') message sent since Start or the last Reset, except
// pgx's pings.
func (p *Proxy) Statements() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stmts...)
}

// Await returns a channel that is closed when a client sends a statement
// (a Parse or simple Query, pings aside) whose SQL contains substr, after
// this call. The statement has then been read and is on its way to the
// server: tests use it to act once an operation has started, instead of
// sleeping and hoping it has.
func (p *Proxy) Await(substr string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := waiter{substr: substr, seen: make(chan struct{})}
	p.waiters = append(p.waiters, w)
	return w.seen
}

// LoseReply arms the proxy to lose the server's reply to the next statement
// (a Parse or simple Query) whose SQL contains substr: the statement reaches
// the server and runs, committing if it runs outside a transaction, then
// the client's connection is cut before any byte of the reply reaches it,
// as when the network fails between a commit and its acknowledgement.
// Replies are lost only for statements a client sends without a Flush
// (every driver's one-shot and prepared queries): the server then answers
// after the Sync, once the statement is done.
func (p *Proxy) LoseReply(substr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose = substr
}

// Refuse makes the proxy close the next n connections as soon as they are
// accepted, before any byte reaches the server, as a server that is
// restarting refuses them. The returned channel is closed once the nth is
// closed.
func (p *Proxy) Refuse(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse, p.refused = n, make(chan struct{})
	if n <= 0 {
		close(p.refused)
	}
	return p.refused
}

// DropConnections closes every live connection, on both the client and the
// server side, as a network cut would. The proxy keeps accepting new ones.
func (p *Proxy) DropConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops listening, closes all live connections and waits until every
// goroutine of the proxy has returned. Calling it again does nothing.
func (p *Proxy) Close() error {
	var err error
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		err = p.ln.Close()
		p.DropConnections()
		p.wg.Wait()
	})
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed by Close, or a listener failure a test will notice
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers c so DropConnections and Close can reach it. It returns
// false, and closes c, when the proxy is already closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// refusing reports whether Refuse wants the connection just accepted
// closed, and counts it.
func (p *Proxy) refusing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse <= 0 {
		return false
	}
	p.refuse--
	if p.refuse == 0 {
		close(p.refused)
	}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// serve handles one client connection until either side goes away.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if p.refusing() || !p.track(client) {
		client.Close()
		return
	}
	defer p.untrack(client)
	d := net.Dialer{Timeout: 10 * time.Second}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)

	in := bufio.NewReader(client)
	out := bufio.NewWriter(server)
	parse, err := p.startup(in, out, server, client)
	if err != nil {
		return
	}
	var cut atomic.Bool // set by messages when this connection's next reply is to be lost
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && cut.Load() {
				break // the reply to LoseReply's statement: drop it and the connection
			}
			if n > 0 {
				if _, werr := client.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		client.Close() // server gone: make the client side fail too
		server.Close()
	}()
	if parse {
		p.messages(in, out, &cut) // returns when either side fails or closes
	} else {
		io.Copy(server, in) // encrypted or a cancel request: forward blindly
	}
	server.Close() // client gone: stop the server-to-client copy
	client.Close()
}

// startup forwards the untyped messages that open a connection. It reports
// parse=true once a StartupMessage has been forwarded, and parse=false when
// the rest of the stream cannot or need not be parsed (encryption was
// accepted, or this is a CancelRequest).
func (p *Proxy) startup(in *bufio.Reader, out *bufio.Writer, server io.Reader, client io.Writer) (parse bool, err error) {
	for {
		first, err := in.Peek(1)
		if err != nil {
			return false, err
		}
		if first[0] == 0x16 { // a TLS record: direct SSL negotiation
			return false, nil
		}
		var hdr [8]byte
		if _, err := io.ReadFull(in, hdr[:]); err != nil {
			return false, err
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		code := binary.BigEndian.Uint32(hdr[4:])
		if n < 8 || n > maxStartupLen {
			return false, fmt.Errorf("pgproxy: bad startup message length %d", n)
		}
		out.Write(hdr[:])
		if _, err := io.CopyN(out, in, int64(n)-8); err != nil {
			return false, err
		}
		if err := out.Flush(); err != nil {
			return false, err
		}
		switch {
		case code == codeSSL || code == codeGSSENC:
			// The server answers with one byte: 'N' means go on in clear text.
			var b [1]byte
			if _, err := io.ReadFull(server, b[:]); err != nil {
				return false, err
			}
			if _, err := client.Write(b[:]); err != nil {
				return false, err
			}
			if b[0] != 'N' {
				return false, nil
			}
		case code == codeCancel:
			return false, nil
		case code>>16 == 3: // StartupMessage, protocol 3.x
			return true, nil
		default:
			return false, errors.New("pgproxy: unknown startup request code")
		}
	}
}

// messages forwards typed frontend messages, counting and recording them.
func (p *Proxy) messages(in *bufio.Reader, out *bufio.Writer, cut *atomic.Bool) error {
	var hdr [5]byte
	for {
		// Flush only when the client has nothing more buffered, so pipelined
		// messages reach the server in one write, as the client sent them.
		if in.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return err
			}
		}
		if _, err := io.ReadFull(in, hdr[:]); err != nil {
			return err
		}
		n := int64(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 {
			return fmt.Errorf("pgproxy: bad length in %q message", hdr[0])
		}
		out.Write(hdr[:])
		switch hdr[0] {
		case 'S':
			p.roundTrips.Add(1)
		case 'Q', 'P':
			body := make([]byte, n)
			if _, err := io.ReadFull(in, body); err != nil {
				return err
			}
			if p.record(hdr[0], body) {
				cut.Store(true)
			}
			out.Write(body)
			continue
		}
		if _, err := io.CopyN(out, in, n); err != nil {
			return err
		}
	}
}

// pingSQL is what pgconn's Ping sends as a simple query.
const pingSQL = "-- ping"

// record notes the SQL of a Query or Parse message and counts a Query, or a
// ping. It reports whether the statement's reply is to be lost
// (LoseReply).
func (p *Proxy) record(typ byte, body []byte) (lose bool) {
	if typ == 'P' { // Parse: statement name, then the query, both C strings
		if i := bytes.IndexByte(body, 0); i >= 0 {
			body = body[i+1:]
		}
	}
	if i := bytes.IndexByte(body, 0); i >= 0 {
		body = body[:i]
	}
	p.mu.Lock()
	if typ == 'Q' && string(body) == pingSQL {
		p.pings.Add(1)
		p.mu.Unlock()
		return false
	}
	sql := string(body)
	p.stmts = append(p.stmts, sql)
	if typ == 'Q' {
		p.roundTrips.Add(1)
	}
	waiting := p.waiters[:0]
	for _, w := range p.waiters {
		if strings.Contains(sql, w.substr) {
			close(w.seen)
		} else {
			waiting = append(waiting, w)
		}
	}
	p.waiters = waiting
	if p.lose != "" && strings.Contains(sql, p.lose) {
		p.lose, lose = "", true
	}
	p.mu.Unlock()
	return lose
}
