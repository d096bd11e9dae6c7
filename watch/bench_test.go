package watch

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// BenchmarkNotify measures fan-out through the hub to 10,000 watchers, all
// on one key (every revision goes to every watcher) or on distinct keys (each
// revision goes to one watcher), with one reading goroutine per watcher.
// Each revision is one put; they are notified `batch` at a time.
//
//   - saturated: the producer notifies as fast as Notify returns; the
//     latency then includes the time events wait in watchers' buffers.
//   - closed-loop: the producer waits until every event of a Notify has been
//     received before the next one: the latency of the fan-out alone.
//
// It reports delivered events/s, the notify-to-receive latency (from just
// before Notify to the reader holding the event) p50 and p99, the overflows
// (watchers sent to catch up from History after falling a full buffer
// behind) and the History reads they made. buffer=1 forces the catch-up
// path for every watcher.
//
//	go test -run '^$' -bench BenchmarkNotify -benchtime 2s ./watch/
func BenchmarkNotify(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts fanout
	}{
		{"watchers=10000/one-key/saturated", fanout{}},
		{"watchers=10000/one-key/closed-loop", fanout{closedLoop: true}},
		{"watchers=10000/one-key/buffer=1/saturated", fanout{buffer: 1}},
		{"watchers=10000/distinct-keys/saturated", fanout{distinct: true}},
		{"watchers=10000/distinct-keys/closed-loop", fanout{distinct: true, closedLoop: true}},
		{"watchers=10000/distinct-keys/batch=100/saturated", fanout{distinct: true, batch: 100}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchFanout(b, 10_000, tc.opts) })
	}
}

type fanout struct {
	buffer     int // WatcherBufferSize; 0: the default
	distinct   bool
	batch      int
	closedLoop bool
}

// latencies collects latencies from many readers: each buffers a few and
// flushes them into one of a few shared histograms.
type latencies struct {
	shards [16]struct {
		sync.Mutex
		h *hdrhistogram.Histogram
	}
}

func newLatencies() *latencies {
	l := &latencies{}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(1, int64(time.Minute), 3)
	}
	return l
}

func (l *latencies) flush(shard int, ns []int64) {
	s := &l.shards[shard%len(l.shards)]
	s.Lock()
	for _, v := range ns {
		_ = s.h.RecordValue(v) // out of range only past a minute: ignore
	}
	s.Unlock()
}

func (l *latencies) merged() *hdrhistogram.Histogram {
	h := hdrhistogram.New(1, int64(time.Minute), 3)
	for i := range l.shards {
		h.Merge(l.shards[i].h)
	}
	return h
}

func benchFanout(b *testing.B, watchers int, o fanout) {
	o.batch = max(o.batch, 1)
	store := newStore()
	hub, err := New(store, Config{MaxWatchers: watchers, WatcherBufferSize: o.buffer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	key := func(i int) string {
		if o.distinct {
			return fmt.Sprintf("key/%05d", i%watchers)
		}
		return "key"
	}
	perRev := int64(1)
	if !o.distinct {
		perRev = int64(watchers)
	}
	expected := perRev * int64(b.N)

	var (
		stamps    = make([]atomic.Int64, b.N+1) // by revision: when it was notified
		delivered atomic.Int64
		allDone   = make(chan struct{})
		failed    = make(chan string, 1)
		lat       = newLatencies()
		readers   sync.WaitGroup
	)
	for i := range watchers {
		w, err := hub.Watch(context.Background(), []byte(key(i)))
		if err != nil {
			b.Fatal(err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]int64, 0, 64)
			for resp := range w.C() {
				if resp.Canceled && resp.CompactRevision > 0 {
					select {
					case failed <- fmt.Sprintf("watcher %d fell behind the store's retained history: %s", w.ID(), resp.CancelReason):
					default:
					}
				}
				now := time.Now().UnixNano()
				for _, ev := range resp.Events {
					buf = append(buf, now-stamps[ev.Kv.ModRevision].Load())
				}
				if len(buf) >= cap(buf)-8 {
					lat.flush(i, buf)
					buf = buf[:0]
				}
				if delivered.Add(int64(len(resp.Events))) == expected {
					close(allDone)
				}
			}
			lat.flush(i, buf)
		}()
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	batch := make([]Revision, 0, o.batch)
	for i := 0; i < b.N; {
		batch = batch[:0]
		for ; i < b.N && len(batch) < o.batch; i++ {
			r, _ := store.apply(put(key(i), "value"))
			batch = append(batch, r)
		}
		// Keep the store's history bounded, as a compacting store would.
		store.trim(1 << 17)
		now := time.Now().UnixNano()
		for _, r := range batch {
			stamps[r.Rev].Store(now)
		}
		if err := hub.Notify(batch); err != nil {
			b.Fatal(err)
		}
		if o.closedLoop {
			for target := perRev * int64(i); delivered.Load() < target; {
				runtime.Gosched()
			}
		}
	}
	select {
	case <-allDone:
	case msg := <-failed:
		b.Fatal(msg)
	case <-time.After(5 * time.Minute):
		b.Fatalf("delivered %d of %d events", delivered.Load(), expected)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	st := hub.Stats()
	hub.Stop()
	readers.Wait()

	h := lat.merged()
	b.ReportMetric(float64(expected)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1e3, "p50-µs")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1e3, "p99-µs")
	b.ReportMetric(float64(st.Overflows), "overflows")
	store.mu.Lock()
	b.ReportMetric(float64(store.reads), "history-reads")
	store.mu.Unlock()
}
