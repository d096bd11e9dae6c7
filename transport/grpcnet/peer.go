package grpcnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/grpcnet/peerpb"
)

// Reopening a broken stream backs off from minRetry to maxRetry: fast enough
// that a restarted peer rejoins within a second, slow enough that a dead one
// costs nothing.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = time.Second
)

// batchOverhead is what framing adds to a message inside a Batch (tag and
// length); batchHeadroom keeps a full batch clear of the gRPC message limit.
const (
	batchOverhead = 16
	batchHeadroom = 4 << 10
)

// peer owns everything the transport keeps for one remote node: a connection
// per class, a queue and a sending goroutine per streamed class, and the
// goroutines of the snapshots being sent to it.
type peer struct {
	t     *Transport
	id    uint64
	addr  string
	conns [len(transport.Classes)]*grpc.ClientConn
	// queues holds Control and Data messages; Bulk is not queued here (see
	// enqueueSnapshot).
	queues [transport.Bulk]chan *raftpb.Message

	ctx    context.Context // canceled by stop: aborts every stream to the peer
	cancel context.CancelFunc
	wg     sync.WaitGroup // the stream goroutines and the snapshot senders

	mu struct {
		sync.Mutex
		stopped bool
		// snapshots counts the MsgSnap accepted and not yet reported.
		snapshots int
		// bulkReported and bulkUp are the Bulk class's state as last
		// reported to the handler (PeerState), from snapshot transfers.
		bulkReported, bulkUp bool
	}
}

func newPeer(t *Transport, id uint64, addr string) (*peer, error) {
	p := &peer{t: t, id: id, addr: addr}
	for _, c := range transport.Classes {
		// NewClient does not connect: the first stream does, so a peer that
		// is down costs nothing until it is needed.
		conn, err := grpc.NewClient("passthrough:///"+addr,
			dialOptions(c, t.opts.Network.Class(c), t.opts.Compression.Class(c))...)
		if err != nil {
			for _, open := range p.conns[:c] {
				open.Close()
			}
			return nil, fmt.Errorf("grpcnet: client for peer %d at %s (%s): %w", id, addr, c, err)
		}
		p.conns[c] = conn
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for _, c := range []transport.Class{transport.Control, transport.Data} {
		p.queues[c] = make(chan *raftpb.Message, t.opts.Network.Class(c).QueueSize)
		p.wg.Add(1)
		go p.runStream(c)
	}
	return p, nil
}

// enqueue queues m without blocking and reports whether it was taken.
func (p *peer) enqueue(m *raftpb.Message) bool {
	c := transport.ClassOf(m)
	if c == transport.Bulk {
		return p.enqueueSnapshot(m)
	}
	select {
	case p.queues[c] <- m:
		return true
	default:
		return false
	}
}

// stop cancels the peer's streams, waits for its goroutines and closes its
// connections. Messages still queued are dropped without a report: the
// peer is gone.
func (p *peer) stop() {
	p.mu.Lock()
	p.mu.stopped = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	for _, conn := range p.conns {
		conn.Close()
	}
}

// runStream sends the queue of class c over one long-lived stream, reopening
// it when it breaks. Messages that cannot be sent are dropped and reported.
func (p *peer) runStream(c transport.Class) {
	defer p.wg.Done()
	log := p.t.log.With("peer", p.id, "class", c.String())
	q := p.queues[c]
	maxBytes := p.t.opts.Network.Class(c).MaxMessageSize - batchHeadroom
	var (
		s     *outStream
		retry time.Duration
		next  *raftpb.Message // taken from q but left out of the last batch
		down  bool            // logged as down; the next success is logged
		known bool            // a state was reported to the handler
	)
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	fail := func(err error, lost []*raftpb.Message) bool {
		if s != nil {
			s.close()
			s = nil
		}
		for _, m := range lost {
			p.t.drop(p.id, m)
		}
		if !down {
			log.Warn("grpcnet: stream to peer down", "err", err)
			down = true
			if p.ctx.Err() == nil { // not the peer's own shutdown
				p.t.handler().PeerState(p.id, c, false)
				known = true
			}
		} else {
			log.Debug("grpcnet: stream to peer still down", "err", err)
		}
		retry = min(max(2*retry, minRetry), maxRetry)
		return p.dropFor(jitter(retry), q)
	}
	for {
		if s == nil {
			var err error
			if s, err = p.openStream(c); err != nil {
				if !fail(err, nil) {
					return
				}
				continue
			}
			if down {
				log.Info("grpcnet: stream to peer up")
			}
			if down || !known {
				p.t.handler().PeerState(p.id, c, true)
				down, known = false, true
			}
		}
		m := next
		if m == nil {
			select {
			case <-p.ctx.Done():
				return
			case m = <-q:
			case err := <-s.ended:
				// The peer ended the stream, or the connection broke, while
				// nothing was to be sent: noticed now rather than at the
				// next message.
				if !fail(s.endedErr(err), nil) {
					return
				}
				continue
			}
		}
		var batch []*raftpb.Message
		batch, next = collect(m, q, maxBytes)
		if len(batch) == 0 {
			// m alone exceeds the message limit: no stream can carry it.
			log.Warn("grpcnet: message too large, dropped", "type", m.GetType().String(), "bytes", proto.Size(m), "limit", maxBytes)
			p.t.drop(p.id, m)
			continue
		}
		if err := s.send(batch); err != nil {
			if !fail(err, batch) {
				return
			}
			continue
		}
		retry = 0
	}
}

// collect batches first and whatever else q holds right now, up to maxBytes.
// It returns the message that did not fit, if any, to start the next batch.
// An empty batch means first alone is too large.
func collect(first *raftpb.Message, q <-chan *raftpb.Message, maxBytes int) ([]*raftpb.Message, *raftpb.Message) {
	size := proto.Size(first) + batchOverhead
	if size > maxBytes {
		return nil, nil
	}
	batch := []*raftpb.Message{first}
	for {
		select {
		case m := <-q:
			n := proto.Size(m) + batchOverhead
			if size+n > maxBytes {
				return batch, m
			}
			size += n
			batch = append(batch, m)
		default:
			return batch, nil
		}
	}
}

// dropFor waits d while dropping what arrives on q, so that the raft node
// hears at once that the peer is unreachable instead of filling the queue
// with messages that would be stale when the stream is back. It returns
// false when the peer is stopped.
func (p *peer) dropFor(d time.Duration, q <-chan *raftpb.Message) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return false
		case <-timer.C:
			return true
		case m := <-q:
			p.t.drop(p.id, m)
		}
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// errStreamEnded is a stream the peer ended without an error, which it does
// only when it shuts down.
var errStreamEnded = errors.New("grpcnet: stream ended by peer")

// outStream is one open Control or Data stream to a peer.
type outStream struct {
	stream grpc.ClientStreamingClient[peerpb.Batch, peerpb.Ack]
	cancel context.CancelFunc
	stall  *stallTimer
	// ended receives what the stream's one RecvMsg returns: the peer
	// answers only when the stream ends (its status), so a goroutine waits
	// in RecvMsg from the moment the stream opens (grpc-go allows RecvMsg
	// alongside SendMsg) to notice a broken stream that has nothing to send.
	ended chan error
}

// endedErr turns what the stream's RecvMsg returned into the reason it
// ended.
func (s *outStream) endedErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		err = errStreamEnded
	}
	return fmt.Errorf("grpcnet: stream ended: %w", fromStatus(err))
}

// openStream opens a stream of class c and waits until the peer accepts its
// header, so that a peer of another cluster is noticed before any message is
// lost to it.
func (p *peer) openStream(c transport.Class) (*outStream, error) {
	o := p.t.opts.Network.Class(c)
	ctx, cancel := context.WithCancel(p.ctx)
	s := &outStream{cancel: cancel, stall: newStallTimer(o.RequestTimeout(), cancel)}
	client := peerpb.NewPeerClient(p.conns[c])
	s.stall.arm()
	defer s.stall.disarm()
	var err error
	if c == transport.Control {
		s.stream, err = client.Control(ctx)
	} else {
		s.stream, err = client.Data(ctx)
	}
	if err == nil {
		err = s.stream.Send(&peerpb.Batch{Header: p.header()})
	}
	if err == nil || errors.Is(err, io.EOF) {
		// Header returns when the peer accepts the stream; it returns no
		// metadata when the peer refused it, and the status says why.
		md, herr := s.stream.Header()
		switch {
		case herr != nil:
			err = herr
		case md == nil || err != nil:
			if _, err = s.stream.CloseAndRecv(); err == nil {
				err = errStreamEnded
			}
		}
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("grpcnet: open %s stream to peer %d at %s: %w", c, p.id, p.addr, fromStatus(err))
	}
	s.ended = make(chan error, 1)
	p.wg.Add(1) // runStream, counted in p.wg, is running: no Add after Wait
	go func() {
		defer p.wg.Done()
		s.ended <- s.stream.RecvMsg(new(peerpb.Ack)) // returns once close cancels the stream, at the latest
	}()
	return s, nil
}

func (p *peer) header() *peerpb.Header {
	return &peerpb.Header{ClusterId: p.t.opts.ClusterID, From: p.t.opts.NodeID, To: p.id}
}

// send sends one batch. The batch is not touched afterwards: grpc-go may
// still refer to a message after SendMsg returns.
func (s *outStream) send(batch []*raftpb.Message) error {
	s.stall.arm()
	err := s.stream.Send(&peerpb.Batch{Messages: batch})
	if errors.Is(err, io.EOF) {
		// The peer ended the stream; its status says why, through the
		// RecvMsg waiting for it (bounded by the stall timer).
		err = <-s.ended
		if err == nil || errors.Is(err, io.EOF) {
			err = errStreamEnded
		}
	}
	s.stall.disarm()
	if err != nil {
		return fmt.Errorf("grpcnet: send %d messages: %w", len(batch), fromStatus(err))
	}
	return nil
}

func (s *outStream) close() {
	s.stall.disarm()
	s.cancel()
}

// reportLimiter lets through at most one unreachable report per peer per
// unreachableInterval: a dead peer drops every message, and raft needs to
// hear it once, not thousands of times a second.
type reportLimiter struct {
	mu   sync.Mutex
	last map[uint64]time.Time
}

const (
	unreachableInterval = 100 * time.Millisecond
	// maxReported bounds the limiter's memory when messages name many
	// unknown ids; forgetting them only lets one more report through.
	maxReported = 1024
)

func (l *reportLimiter) init() { l.last = make(map[uint64]time.Time) }

func (l *reportLimiter) allow(id uint64) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[id]; ok && now.Sub(last) < unreachableInterval {
		return false
	}
	if len(l.last) >= maxReported {
		clear(l.last)
	}
	l.last[id] = now
	return true
}
