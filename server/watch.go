package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/watch"
)

// watchServer is etcd's Watch service: many watches on one bidirectional
// stream, each created, canceled and asked for progress by the client.
type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// progressAll is the watch id of a progress notification for the whole
// stream (etcd's clientv3.InvalidWatchID).
const progressAll = -1

// watchStream is the state of one Watch call. Its receive loop owns the
// watchers map; one goroutine per watcher forwards the watcher's responses;
// one goroutine sends, since a gRPC stream takes one sender at a time.
type watchStream struct {
	s      *Server
	stream pb.Watch_WatchServer
	ctx    context.Context
	sendc  chan *pb.WatchResponse
	wg     sync.WaitGroup

	watchers map[int64]*watch.Watcher // by the stream's watch id
	nextID   int64
}

func (w *watchServer) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ws := &watchStream{
		s: w.s, stream: stream, ctx: ctx,
		sendc:    make(chan *pb.WatchResponse, 64),
		watchers: map[int64]*watch.Watcher{},
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- ws.sendLoop() }()
	recvErr := make(chan error, 1)
	go func() { recvErr <- ws.recvLoop() }()
	var err error
	select {
	case err = <-recvErr:
	case <-w.s.leaderLost(ctx, stream.Context()):
		// The client asked to hear of a lost leader (WithRequireLeader):
		// end the stream so that it moves to a member that has one. The
		// watchers end with ctx, the receiving goroutine with the stream.
		cancel()
		return rpctypes.ErrGRPCNoLeader
	}
	for _, wt := range ws.watchers {
		wt.Close()
	}
	cancel()
	ws.wg.Wait()
	if serr := <-sendErr; err == nil {
		err = serr
	}
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (ws *watchStream) sendLoop() error {
	for {
		select {
		case resp := <-ws.sendc:
			if err := ws.stream.Send(resp); err != nil {
				return err
			}
		case <-ws.ctx.Done():
			return nil
		}
	}
}

// send queues resp for the client; false once the stream is ending.
func (ws *watchStream) send(resp *pb.WatchResponse) bool {
	if resp.Header == nil {
		resp.Header = ws.s.header(nil)
	} else {
		resp.Header = ws.s.header(resp.Header)
	}
	select {
	case ws.sendc <- resp:
		return true
	case <-ws.ctx.Done():
		return false
	}
}

func (ws *watchStream) recvLoop() error {
	for {
		req, err := ws.stream.Recv()
		if err != nil {
			return err
		}
		switch {
		case req.GetCreateRequest() != nil:
			ws.create(req.GetCreateRequest())
		case req.GetCancelRequest() != nil:
			id := req.GetCancelRequest().GetWatchId()
			if wt, ok := ws.watchers[id]; ok {
				// Its forwarder sends the canceled response once the
				// watcher's channel is drained and closed.
				wt.Close()
				delete(ws.watchers, id)
			}
		case req.GetProgressRequest() != nil:
			if len(ws.watchers) == 0 {
				ws.send(&pb.WatchResponse{WatchId: progressAll})
			}
			for _, wt := range ws.watchers {
				wt.RequestProgress()
			}
		}
	}
}

func (ws *watchStream) create(req *pb.WatchCreateRequest) {
	id := req.GetWatchId()
	if id == 0 {
		for {
			id = ws.nextID
			ws.nextID++
			if _, taken := ws.watchers[id]; !taken {
				break
			}
		}
	} else if _, taken := ws.watchers[id]; taken || id < 0 {
		ws.send(&pb.WatchResponse{WatchId: id, Created: true, Canceled: true,
			CancelReason: fmt.Sprintf("etcdserver: duplicate or invalid watch id %d", id)})
		return
	}
	wt, err := ws.s.db.WatchRequest(ws.ctx, req)
	if rev, ok := watch.CompactRevision(err); ok {
		// As etcd: the watch is created, then canceled with the compact
		// revision, in two responses (clientv3 reads nothing but the
		// creation in a created response).
		if ws.send(&pb.WatchResponse{WatchId: id, Created: true}) {
			ws.send(&pb.WatchResponse{WatchId: id, Canceled: true, CompactRevision: rev, CancelReason: reason(err)})
		}
		return
	}
	if err != nil {
		ws.send(&pb.WatchResponse{WatchId: id, Created: true, Canceled: true, CancelReason: reason(err)})
		return
	}
	ws.watchers[id] = wt
	if !ws.send(&pb.WatchResponse{WatchId: id, Created: true}) {
		return
	}
	ws.wg.Add(1)
	go ws.forward(id, wt)
}

// forward relays one watcher's responses until it ends, then tells the
// client why it ended (unless the stream itself is ending).
func (ws *watchStream) forward(id int64, wt *watch.Watcher) {
	defer ws.wg.Done()
	for r := range wt.C() {
		resp := &pb.WatchResponse{
			Header:          &pb.ResponseHeader{Revision: r.Revision},
			WatchId:         id,
			Events:          r.Events,
			CompactRevision: r.CompactRevision,
			Canceled:        r.Canceled,
			CancelReason:    r.CancelReason,
			Fragment:        r.Fragment,
		}
		if !ws.send(resp) {
			return
		}
		if r.Canceled {
			return
		}
	}
	if ws.ctx.Err() != nil {
		return
	}
	resp := &pb.WatchResponse{WatchId: id, Canceled: true}
	// A close by the client needs no reason; the hub stopping does (its
	// error also matches ErrClosed).
	if err := wt.Err(); err != nil && (!errors.Is(err, watch.ErrClosed) || errors.Is(err, watch.ErrStopped)) {
		resp.CancelReason = reason(err)
	}
	ws.send(resp)
}

// reason is etcd's cancel reason for err: the bare message of its status,
// which clientv3 maps back to an rpctypes error.
func reason(err error) string { return status.Convert(toGRPC(err)).Message() }
