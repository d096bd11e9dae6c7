package watch

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every hub
// a test starts is stopped, and every catch-up goroutine must end with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in the tests: a broken hub fails, never hangs.
const waitTimeout = 30 * time.Second

// fakeStore is an in-memory MVCC store: the model the tests compare
// watchers against, and the History the hub reads. It keeps every revision
// ever created (the model), and refuses History at or below its compact
// revision.
type fakeStore struct {
	mu       sync.Mutex
	revs     []Revision // every revision created, in order
	kv       map[string]*mvccpb.KeyValue
	rev      int64
	compact  int64
	maxAsked int           // the largest maxEvents History was asked for
	reads    int           // History calls
	fail     error         // returned by the next History calls, if set
	block    chan struct{} // if set, History waits for it to be closed
}

func newStore() *fakeStore { return &fakeStore{kv: map[string]*mvccpb.KeyValue{}} }

func (s *fakeStore) History(from int64, maxEvents int) ([]Revision, error) {
	s.mu.Lock()
	s.reads++
	block := s.block
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxAsked = max(s.maxAsked, maxEvents)
	if s.fail != nil {
		return nil, s.fail
	}
	if from <= s.compact {
		return nil, fmt.Errorf("fake store: history from %d: %w", from, &CompactedError{CompactRev: s.compact})
	}
	i := sort.Search(len(s.revs), func(i int) bool { return s.revs[i].Rev >= from })
	var out []Revision
	n := 0
	for ; i < len(s.revs) && n < maxEvents; i++ {
		out = append(out, s.revs[i])
		n += len(s.revs[i].Events)
	}
	return out, nil
}

func (s *fakeStore) Rev() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

func (s *fakeStore) CompactRev() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.compact
}

func (s *fakeStore) Compact(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compact = max(s.compact, rev)
}

// trim drops all but the last keep revisions, compacting the store below
// them: a long benchmark's memory stays bounded.
func (s *fakeStore) trim(keep int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.revs) <= 2*keep {
		return
	}
	s.revs = append([]Revision(nil), s.revs[len(s.revs)-keep:]...)
	s.compact = max(s.compact, s.revs[0].Rev-1)
}

// model returns every revision ever created, compacted ones included.
func (s *fakeStore) model() []Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Revision(nil), s.revs...)
}

type op struct {
	del      bool
	key, val string
}

func put(k, v string) op { return op{key: k, val: v} }
func del(k string) op    { return op{del: true, key: k} }

// apply makes one revision of ops (a txn when there are several) and returns
// it; ok is false if the ops changed nothing (no revision is created, as in
// etcd). Keys must be distinct.
func (s *fakeStore) apply(ops ...op) (Revision, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rev := s.rev + 1
	r := Revision{Rev: rev}
	for _, o := range ops {
		prev := s.kv[o.key]
		if o.del {
			if prev == nil {
				continue
			}
			delete(s.kv, o.key)
			r.Events = append(r.Events, &mvccpb.Event{
				Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(o.key), ModRevision: rev}, PrevKv: prev,
			})
			continue
		}
		kv := &mvccpb.KeyValue{Key: []byte(o.key), Value: []byte(o.val), CreateRevision: rev, ModRevision: rev, Version: 1}
		if prev != nil {
			kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
		}
		s.kv[o.key] = kv
		r.Events = append(r.Events, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv, PrevKv: prev})
	}
	if len(r.Events) == 0 {
		return Revision{}, false
	}
	s.rev = rev
	s.revs = append(s.revs, r)
	return r, true
}

func (s *fakeStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ks []string
	for k := range s.kv {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// env is a store and a hub over it, stopped when the test ends.
type env struct {
	t     testing.TB
	store *fakeStore
	hub   *Hub
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	s := newStore()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := New(s, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(h.Stop)
	return &env{t: t, store: s, hub: h}
}

// commit applies ops as one revision and notifies the hub of it.
func (e *env) commit(ops ...op) Revision {
	e.t.Helper()
	r, ok := e.store.apply(ops...)
	if !ok {
		e.t.Fatalf("commit %v: no change", ops)
	}
	if err := e.hub.Notify([]Revision{r}); err != nil {
		e.t.Fatalf("Notify(%d): %v", r.Rev, err)
	}
	return r
}

// puts commits n revisions, one put each, cycling over keys.
func (e *env) puts(n int, keys ...string) {
	e.t.Helper()
	for i := range n {
		e.commit(put(keys[i%len(keys)], fmt.Sprintf("v%d", i)))
	}
}

func (e *env) watch(key string, opts ...Option) *Watcher {
	e.t.Helper()
	w, err := e.hub.Watch(context.Background(), []byte(key), opts...)
	if err != nil {
		e.t.Fatalf("Watch(%q): %v", key, err)
	}
	e.t.Cleanup(w.Close)
	return w
}

// recorder reads a watcher's channel into a slice until it is closed. It can
// be paused, to play a reader that stalls.
type recorder struct {
	w       *Watcher
	changed chan struct{} // signaled on every response and on close
	done    chan struct{} // closed when the reading goroutine returns

	mu     sync.Mutex
	resps  []Response
	closed bool
	paused bool
	resume chan struct{}
}

func record(t testing.TB, w *Watcher) *recorder {
	r := &recorder{w: w, changed: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	t.Cleanup(func() {
		w.Close()
		r.unpause()
		<-r.done
	})
	return r
}

func (r *recorder) run() {
	defer close(r.done)
	for {
		r.mu.Lock()
		for r.paused {
			c := r.resume
			r.mu.Unlock()
			<-c
			r.mu.Lock()
		}
		r.mu.Unlock()
		resp, ok := <-r.w.C()
		r.mu.Lock()
		if ok {
			r.resps = append(r.resps, resp)
		} else {
			r.closed = true
		}
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
		if !ok {
			return
		}
	}
}

// pause stops reading (after at most one more response).
func (r *recorder) pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.paused {
		r.paused, r.resume = true, make(chan struct{})
	}
}

func (r *recorder) unpause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paused {
		r.paused = false
		close(r.resume)
	}
}

func (r *recorder) snapshot() ([]Response, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Response(nil), r.resps...), r.closed
}

// waitFor waits until cond holds for what has been read so far.
func (r *recorder) waitFor(t testing.TB, what string, cond func(resps []Response, closed bool) bool) []Response {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		resps, closed := r.snapshot()
		if cond(resps, closed) {
			return resps
		}
		if closed {
			t.Fatalf("watcher %d closed (%v) before %s; read %s", r.w.ID(), r.w.Err(), what, fmtResps(resps))
		}
		select {
		case <-r.changed:
		case <-timer.C:
			t.Fatalf("watcher %d: timed out waiting for %s; read %s", r.w.ID(), what, fmtResps(resps))
		}
	}
}

// syncTo requests a progress notification and waits for one at rev or later:
// then, by the bookmark guarantee, everything up to rev has been read. It
// returns early, with closed set, if the watcher ends.
func (r *recorder) syncTo(t testing.TB, rev int64) (resps []Response, closed bool) {
	t.Helper()
	r.w.RequestProgress()
	resps = r.waitFor(t, fmt.Sprintf("progress at %d", rev), func(rs []Response, c bool) bool {
		closed = c
		for _, x := range rs {
			if x.ProgressNotify && x.Revision >= rev {
				return true
			}
		}
		return c
	})
	return resps, closed
}

// waitClosed waits for the watcher's channel to be closed.
func (r *recorder) waitClosed(t testing.TB) []Response {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		resps, closed := r.snapshot()
		if closed {
			return resps
		}
		select {
		case <-r.changed:
		case <-timer.C:
			t.Fatalf("watcher %d: timed out waiting for close; read %s", r.w.ID(), fmtResps(resps))
		}
	}
}

// drain reads w until its channel is closed, bounded in time.
func drain(t testing.TB, w *Watcher) []Response {
	t.Helper()
	var out []Response
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case r, ok := <-w.C():
			if !ok {
				return out
			}
			out = append(out, r)
		case <-timer.C:
			t.Fatalf("watcher %d: channel not closed; read %s", w.ID(), fmtResps(out))
		}
	}
}

func allEvents(resps []Response) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, r := range resps {
		out = append(out, r.Events...)
	}
	return out
}

func fmtResps(resps []Response) string {
	const show = 12
	s := fmt.Sprintf("%d responses [", len(resps))
	for i, r := range resps {
		if i == show {
			s += fmt.Sprintf(" …%d more", len(resps)-show)
			break
		}
		s += " " + fmtResp(r)
	}
	return s + " ]"
}

func fmtResp(r Response) string {
	s := fmt.Sprintf("{rev %d", r.Revision)
	for _, ev := range r.Events {
		s += " " + fmtEvent(ev)
	}
	switch {
	case r.ProgressNotify:
		s += " progress"
	case r.Canceled:
		s += fmt.Sprintf(" canceled compact=%d", r.CompactRevision)
	}
	if r.Fragment {
		s += " frag"
	}
	return s + "}"
}

func fmtEvent(ev *mvccpb.Event) string {
	t := "put"
	if ev.Type == mvccpb.Event_DELETE {
		t = "del"
	}
	return fmt.Sprintf("%s(%s@%d)", t, ev.Kv.GetKey(), ev.Kv.GetModRevision())
}

// waitSynced waits until no watcher of h is catching up.
func waitSynced(t testing.TB, h *Hub) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for h.Stats().Unsynced > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("watchers still catching up: %+v", h.Stats())
		}
		time.Sleep(time.Millisecond) // a catch-up goroutine rejoins on its own; nothing to wait on
	}
}

func stringsContain(s, sub string) bool { return strings.Contains(s, sub) }
