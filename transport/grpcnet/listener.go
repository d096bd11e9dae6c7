package grpcnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-db/cairn/transport"
)

// tagTimeout bounds how long an accepted connection may take to name its
// class; a connection that says nothing must not hold a goroutine for long.
const tagTimeout = 2 * time.Second

// tagBase is the class tag of Control; Data and Bulk follow. The values are
// far from 'P', the first byte of the HTTP/2 preface, so a plain gRPC client
// that dials the port by mistake is refused instead of misrouted.
const tagBase byte = 0xC0

func classTag(c transport.Class) byte { return tagBase + byte(c) }

func classOfTag(b byte) (transport.Class, bool) {
	for _, c := range transport.Classes {
		if classTag(c) == b {
			return c, true
		}
	}
	return 0, false
}

// dialer returns the grpc.WithContextDialer function of class c: it connects
// and writes the class tag before gRPC starts HTTP/2 on the connection.
func dialer(c transport.Class, o transport.ClassOptions) func(context.Context, string) (net.Conn, error) {
	d := net.Dialer{
		Timeout:   o.ConnectTimeout(),
		KeepAlive: time.Duration(o.TCPKeepaliveSecs) * time.Second,
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("grpcnet: dial %s connection to %s: %w", c, addr, err)
		}
		deadline := time.Now().Add(o.ConnectTimeout())
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = conn.SetWriteDeadline(deadline)
		if _, err := conn.Write([]byte{classTag(c)}); err != nil {
			conn.Close()
			return nil, fmt.Errorf("grpcnet: write class tag to %s: %w", addr, err)
		}
		_ = conn.SetWriteDeadline(time.Time{})
		return conn, nil
	}
}

// demux accepts the TCP connections of the node's one port and routes each
// to the listener of the class it names.
type demux struct {
	ln        net.Listener
	classes   [len(transport.Classes)]*classListener
	keepalive [len(transport.Classes)]time.Duration
	log       *slog.Logger

	// accepted counts the connections routed to each class.
	accepted [len(transport.Classes)]atomic.Int64

	stopc chan struct{}
	wg    sync.WaitGroup // the accept loop and the routing goroutines
	once  sync.Once

	mu struct {
		sync.Mutex
		// pending holds the connections whose tag is being read, so that
		// close does not wait for their deadline.
		pending map[net.Conn]struct{}
	}
}

func newDemux(ln net.Listener, network transport.NetworkOptions, log *slog.Logger) *demux {
	d := &demux{ln: ln, log: log, stopc: make(chan struct{})}
	for _, c := range transport.Classes {
		d.classes[c] = newClassListener(ln.Addr())
		d.keepalive[c] = time.Duration(network.Class(c).TCPKeepaliveSecs) * time.Second
	}
	d.mu.pending = make(map[net.Conn]struct{})
	return d
}

// start runs the accept loop until close.
func (d *demux) start() {
	d.wg.Add(1)
	go d.acceptLoop()
}

func (d *demux) acceptLoop() {
	defer d.wg.Done()
	var delay time.Duration
	for {
		conn, err := d.ln.Accept()
		if err != nil {
			select {
			case <-d.stopc:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			d.log.Warn("grpcnet: accept failed", "err", err, "retry_in", delay)
			select {
			case <-d.stopc:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		d.mu.Lock()
		d.mu.pending[conn] = struct{}{}
		d.mu.Unlock()
		d.wg.Add(1)
		go d.route(conn)
	}
}

func (d *demux) route(conn net.Conn) {
	defer d.wg.Done()
	c, err := readTag(conn)
	d.mu.Lock()
	delete(d.mu.pending, conn)
	d.mu.Unlock()
	if err != nil {
		d.log.Debug("grpcnet: refused connection", "remote", conn.RemoteAddr().String(), "err", err)
		conn.Close()
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && d.keepalive[c] > 0 {
		_ = tc.SetKeepAlive(true)
		_ = tc.SetKeepAlivePeriod(d.keepalive[c])
	}
	d.accepted[c].Add(1)
	if !d.classes[c].handOff(conn, d.stopc) {
		conn.Close()
	}
}

func readTag(conn net.Conn) (transport.Class, error) {
	if err := conn.SetReadDeadline(time.Now().Add(tagTimeout)); err != nil {
		return 0, fmt.Errorf("set deadline: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return 0, fmt.Errorf("read class tag: %w", err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return 0, fmt.Errorf("clear deadline: %w", err)
	}
	c, ok := classOfTag(b[0])
	if !ok {
		return 0, fmt.Errorf("unknown class tag %#x", b[0])
	}
	return c, nil
}

// close stops accepting, closes the class listeners and waits for the
// routing goroutines. It is idempotent.
func (d *demux) close() {
	d.once.Do(func() {
		close(d.stopc)
		d.ln.Close()
		d.mu.Lock()
		for conn := range d.mu.pending {
			conn.Close()
		}
		d.mu.Unlock()
		for _, l := range d.classes {
			l.Close()
		}
	})
	d.wg.Wait()
}

// classListener is the net.Listener a class's grpc.Server serves: it yields
// the connections the demux routed to the class.
type classListener struct {
	addr  net.Addr
	conns chan net.Conn // unbuffered: a hand-off happens only into a live Accept
	done  chan struct{}
	once  sync.Once
}

func newClassListener(addr net.Addr) *classListener {
	return &classListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *classListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close is idempotent: both the demux and grpc.Server close it.
func (l *classListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *classListener) Addr() net.Addr { return l.addr }

// handOff gives conn to the server and reports whether it was taken.
func (l *classListener) handOff(conn net.Conn, stopc <-chan struct{}) bool {
	select {
	case l.conns <- conn:
		return true
	case <-l.done:
		return false
	case <-stopc:
		return false
	}
}
