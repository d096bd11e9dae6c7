package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/watch"
)

// BenchmarkWatchFanout measures the delivery of events to 10,000 watchers of
// one node's DB, each read by its own goroutine, all on one key (every put
// goes to every watcher) or on 10,000 distinct keys (each put goes to one
// watcher).
//
// One op is one round: one Put of the single key, or one Put of each of
// the 10,000 keys, issued by 64 writers at once (so that they share
// fsyncs). A round ends when every watcher has received its event of the
// round; the next round starts then (closed loop: no event waits in a
// watcher's buffer behind another round's).
//
// It reports the events delivered per second over the timed region, and the
// put-to-event latency p50 and p99: the time from the Put call to a
// watcher's goroutine holding the event, over every event delivered. That
// latency includes the put's commit (an fsync) and apply; with one key its
// spread is the time the hub and the scheduler take to reach all 10,000
// goroutines.
func BenchmarkWatchFanout(b *testing.B) {
	b.Run("watchers=10000/keys=1", func(b *testing.B) { runFanoutBench(b, 10_000, 1) })
	b.Run("watchers=10000/keys=10000", func(b *testing.B) { runFanoutBench(b, 10_000, 10_000) })
}

const fanoutWriters = 64

// runFanoutBench opens watchers watchers spread evenly on nkeys keys, with
// the timer stopped, then runs b.N rounds.
func runFanoutBench(b *testing.B, watchers, nkeys int) {
	b.StopTimer()
	c := startCluster(b, 1, kv.Options{Watch: watch.Config{MaxWatchers: watchers}})
	db := c.leader
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	value := benchValue()
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("watch/%05d", i)
	}

	var (
		stamps    = make([]atomic.Int64, nkeys) // by key: when its put of this round was called (UnixNano)
		remaining atomic.Int64                  // events of this round not yet received
		roundDone = make(chan struct{}, 1)
		failed    = make(chan error, 1)
		lat       = newShardedHistogram()
		readers   sync.WaitGroup
		ws        []cairn.Watcher
	)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	// Cleanups run last-in first-out: the readers end before the node stops.
	b.Cleanup(func() {
		for _, w := range ws {
			w.Close()
		}
		readers.Wait()
	})
	for i := range watchers {
		k := i % nkeys
		w, err := db.Watch(ctx, keys[k])
		if err != nil {
			b.Fatalf("watcher %d: %v", i, err)
		}
		ws = append(ws, w)
		readers.Add(1)
		go func() {
			defer readers.Done()
			for resp := range w.C() {
				now := time.Now().UnixNano()
				for _, ev := range resp.Events {
					if ev.Type != mvccpb.PUT || string(ev.Kv.Key) != keys[k] {
						fail(fmt.Errorf("watcher %d on %s received %v %s", i, keys[k], ev.Type, ev.Kv.Key))
						continue
					}
					lat.record(i, time.Duration(now-stamps[k].Load()))
				}
				if n := len(resp.Events); n > 0 && remaining.Add(-int64(n)) == 0 {
					roundDone <- struct{}{}
				}
			}
			if err := w.Err(); err != nil && !errors.Is(err, watch.ErrClosed) {
				fail(fmt.Errorf("watcher %d on %s ended: %w", i, keys[k], err))
			}
		}()
	}

	// One round: every key's put, by up to fanoutWriters goroutines.
	writers := min(fanoutWriters, nkeys)
	round := func() error {
		remaining.Store(int64(watchers))
		var next atomic.Int64
		errs := make(chan error, writers)
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := next.Add(1) - 1; k < int64(nkeys); k = next.Add(1) - 1 {
					stamps[k].Store(time.Now().UnixNano())
					if _, err := db.Put(ctx, keys[k], value); err != nil {
						errs <- fmt.Errorf("put %s: %w", keys[k], err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		select {
		case <-roundDone:
			return nil
		case err := <-failed:
			return err
		case <-time.After(2 * time.Minute):
			return fmt.Errorf("round: %d of %d events not delivered within 2m", remaining.Load(), watchers)
		}
	}
	// A warm-up round, not recorded.
	if err := round(); err != nil {
		b.Fatal(err)
	}
	lat.reset()

	b.ReportAllocs()
	b.ResetTimer()
	b.StartTimer()
	start := time.Now()
	for range b.N {
		if err := round(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()

	select {
	case err := <-failed:
		b.Fatal(err)
	default:
	}
	h := lat.merged()
	if want := int64(b.N) * int64(watchers); h.TotalCount() != want {
		b.Fatalf("recorded %d latencies for %d events", h.TotalCount(), want)
	}
	c.checkLeader(b)
	b.ReportMetric(float64(b.N)*float64(watchers)/elapsed.Seconds(), "events/s")
	reportLatency(b, h)
}

// shardedHistogram collects latencies from many goroutines into a few
// histograms, each behind its own lock.
type shardedHistogram struct {
	shards [64]struct {
		sync.Mutex
		h *hdrhistogram.Histogram
	}
}

func newShardedHistogram() *shardedHistogram {
	s := &shardedHistogram{}
	for i := range s.shards {
		s.shards[i].h = newHistogram()
	}
	return s
}

func (s *shardedHistogram) record(shard int, d time.Duration) {
	sh := &s.shards[shard%len(s.shards)]
	sh.Lock()
	recordNs(sh.h, d)
	sh.Unlock()
}

func (s *shardedHistogram) reset() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.Lock()
		sh.h.Reset()
		sh.Unlock()
	}
}

func (s *shardedHistogram) merged() *hdrhistogram.Histogram {
	h := newHistogram()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.Lock()
		h.Merge(sh.h)
		sh.Unlock()
	}
	return h
}
