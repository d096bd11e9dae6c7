package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/watch"
)

// watchBuffer is how many responses a watcher holds for a slow reader;
// clientv3 buffers the rest.
const watchBuffer = 16

// ErrCanceled: the server canceled a watch for a reason other than
// compaction (clientv3 does not pass such reasons on).
var ErrCanceled = errors.New("client: watch canceled by the server")

// errCreateTimeout ends a watch that the server did not create within the
// request timeout.
var errCreateTimeout = fmt.Errorf("client: watch not created within the request timeout: %w", context.DeadlineExceeded)

// Watch streams the changes to key (or a range, with WithPrefix, WithRange,
// WithFromKey), from WithRev's revision or from the next one, through
// clientv3's Watcher. It returns once the server has created the watch
// (within the request timeout, if set). The watch ends when ctx does, on
// Close, on the Client's Close, or with an error; see the package doc.
//
// RequestProgress asks the server for progress on the gRPC watch stream the
// watch shares with the client's other watches of the same context
// metadata: they may receive a progress notification too.
func (c *Client) Watch(ctx context.Context, key string, opts ...cairn.OpOption) (cairn.Watcher, error) {
	req := cairn.WatchRequest(key, opts...)
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()

	w := &watcher{id: c.nextID.Add(1), c: c, ctx: ctx, out: make(chan watch.Response, watchBuffer)}
	w.wctx, w.cancel = context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.ctx, func() { w.cancel(ErrClosed) })
	ch, last, err := w.create(req)
	if err != nil {
		stop()
		w.cancel(nil)
		c.wg.Done()
		return nil, err
	}
	go w.run(ch, last, stop)
	return w, nil
}

// watcher is a cairn.Watcher over one clientv3 watch. Its goroutine (run)
// turns clientv3's responses into watch.Responses on out; the Client waits
// for it at Close.
type watcher struct {
	id  int64
	c   *Client
	ctx context.Context // the caller's
	// wctx is the clientv3 watch's context: canceled with watch.ErrClosed
	// by Close, ErrClosed by the Client's Close, or by ctx.
	wctx   context.Context
	cancel context.CancelCauseFunc
	out    chan watch.Response // closed by run, after err is set
	err    atomic.Pointer[error]
}

func (w *watcher) ID() int64                { return w.id }
func (w *watcher) C() <-chan watch.Response { return w.out }
func (w *watcher) Close()                   { w.cancel(watch.ErrClosed) }
func (w *watcher) setErr(err error)         { w.err.CompareAndSwap(nil, &err) }

// Err is why the watch ended, nil while it runs. It is set before C is
// closed.
func (w *watcher) Err() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// RequestProgress asks for a progress notification.
func (w *watcher) RequestProgress() {
	if w.wctx.Err() != nil {
		return
	}
	// Errors mean the stream is ending; the watch then ends too.
	_ = w.c.etcd.RequestProgress(w.wctx)
}

// create starts the clientv3 watch and waits for the server to create it.
// It returns the watch's channel and the last revision already covered:
// events at or below it are not delivered.
func (w *watcher) create(req *pb.WatchCreateRequest) (clientv3.WatchChan, int64, error) {
	var timer *time.Timer
	if w.c.timeout > 0 {
		timer = time.AfterFunc(w.c.timeout, func() { w.cancel(errCreateTimeout) })
	}
	ch := w.c.etcd.Watch(w.wctx, string(req.GetKey()), watchOptions(req)...)
	first, ok := <-ch // WithCreatedNotify: the creation, or why it failed
	if timer != nil && !timer.Stop() {
		ok = false // timed out, even if the creation came in just then
	}
	switch {
	case !ok:
		return nil, 0, w.endErr()
	case first.Err() != nil:
		return nil, 0, w.responseErr(first)
	case !first.Created:
		return nil, 0, fmt.Errorf("client: watch %d: the server did not confirm its creation", w.id)
	}
	// A watch without a start revision sees the revisions after the
	// store's at creation; clientv3 may resume it from that one itself.
	last := req.GetStartRevision() - 1
	if req.GetStartRevision() == 0 {
		last = first.Header.GetRevision()
	}
	return ch, last, nil
}

// watchOptions turns an etcd watch request into clientv3's options.
func watchOptions(req *pb.WatchCreateRequest) []clientv3.OpOption {
	opts := []clientv3.OpOption{clientv3.WithCreatedNotify()}
	switch end := req.GetRangeEnd(); {
	case len(end) == 1 && end[0] == 0:
		opts = append(opts, clientv3.WithFromKey())
	case len(end) > 0:
		opts = append(opts, clientv3.WithRange(string(end)))
	}
	if rev := req.GetStartRevision(); rev != 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	if req.GetPrevKv() {
		opts = append(opts, clientv3.WithPrevKV())
	}
	for _, f := range req.GetFilters() {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			opts = append(opts, clientv3.WithFilterPut())
		case pb.WatchCreateRequest_NODELETE:
			opts = append(opts, clientv3.WithFilterDelete())
		}
	}
	if req.GetProgressNotify() {
		opts = append(opts, clientv3.WithProgressNotify())
	}
	if req.GetFragment() {
		opts = append(opts, clientv3.WithFragment())
	}
	return opts
}

// run relays the watch's responses until it ends. last is the highest
// revision delivered (or covered): clientv3 resumes a watch from the
// revision after the last one it saw, and anything at or below last that a
// resumption brings again is dropped, so that each revision comes once.
func (w *watcher) run(ch clientv3.WatchChan, last int64, stop func() bool) {
	defer w.c.wg.Done()
	defer close(w.out)
	defer stop()
	defer w.cancel(nil) // releases clientv3's watch whichever way it ended
	for {
		var r clientv3.WatchResponse
		var ok bool
		select {
		case r, ok = <-ch:
		case <-w.wctx.Done():
		}
		if !ok {
			w.setErr(w.endErr())
			return
		}
		if r.Err() != nil {
			w.setErr(w.responseErr(r))
			w.send(watch.Response{
				WatchID: w.id, Revision: r.Header.GetRevision(), Canceled: true,
				CancelReason: r.CancelReason, CompactRevision: r.CompactRevision,
			})
			return
		}
		resp, ok := w.convert(r, &last)
		if !ok {
			continue
		}
		if !w.send(resp) {
			w.setErr(w.endErr())
			return
		}
	}
}

// send hands r to the reader; false if the watch ended first.
func (w *watcher) send(r watch.Response) bool {
	select {
	case w.out <- r:
		return true
	case <-w.wctx.Done():
		return false
	}
}

// convert turns a clientv3 response into the reader's, without the events
// at or below *last; false if nothing is left to deliver.
func (w *watcher) convert(r clientv3.WatchResponse, last *int64) (watch.Response, bool) {
	resp := watch.Response{WatchID: w.id, Revision: r.Header.GetRevision()}
	if r.IsProgressNotify() {
		resp.ProgressNotify = true
		return resp, true
	}
	for _, ev := range r.Events {
		if rev := ev.Kv.GetModRevision(); rev > *last {
			resp.Events = append(resp.Events, (*mvccpb.Event)(ev))
		}
	}
	if len(resp.Events) == 0 {
		return resp, false
	}
	*last = resp.Events[len(resp.Events)-1].Kv.GetModRevision()
	return resp, true
}

// endErr is why the watch ended once its context did, or clientv3 closed
// its channel on its own.
func (w *watcher) endErr() error {
	if w.wctx.Err() == nil {
		// The server canceled the watch for a reason other than
		// compaction; clientv3 drops the reason.
		return fmt.Errorf("client: watch %d: %w", w.id, ErrCanceled)
	}
	cause := context.Cause(w.wctx)
	if errors.Is(cause, watch.ErrClosed) || errors.Is(cause, errCreateTimeout) {
		return cause
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	return cause
}

// responseErr is the error a canceled response carries, as the embedded
// watcher would report it.
func (w *watcher) responseErr(r clientv3.WatchResponse) error {
	if r.CompactRevision != 0 {
		return fmt.Errorf("client: watch %d: %w", w.id, &watch.CompactedError{CompactRev: r.CompactRevision})
	}
	err := etcdError(r.Err())
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("client: watch %d: %w (%w)", w.id, watch.ErrCompacted, err)
	}
	return fmt.Errorf("client: watch %d: %w", w.id, err)
}

// etcdError recovers the rpctypes error from a cancel reason that holds a
// whole gRPC status text ("rpc error: code = … desc = etcdserver: …"),
// which clientv3 only recognises by its description.
func etcdError(err error) error {
	const prefix, desc = "rpc error: code = ", " desc = "
	s := err.Error()
	i := strings.Index(s, desc)
	if !strings.HasPrefix(s, prefix) || i < 0 {
		return err
	}
	var etcdErr rpctypes.EtcdError
	if e := rpctypes.Error(errors.New(s[i+len(desc):])); errors.As(e, &etcdErr) {
		return e
	}
	return err
}
