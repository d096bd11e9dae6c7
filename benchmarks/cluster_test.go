package benchmarks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/benchutil"
	"github.com/cairn-db/cairn/internal/dbcluster"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/kv"
)

const (
	valueBytes = 256
	// A 10 ms tick and a 30-tick (300 ms) election timeout, as in the
	// engine's benchmarks: no election fires while the machine is saturated.
	tickMs        = 10
	electionTick  = 30
	heartbeatTick = 2
	// Latencies are recorded in nanoseconds, from 1 ns to one minute, with
	// three significant digits, and reported in microseconds.
	maxLatencyNs = int64(time.Minute)
	// benchTimeout bounds one benchmark run's requests.
	benchTimeout = 20 * time.Minute
)

// cluster is n DB nodes on an in-memory network, each with its data in its
// own directory on disk (the benchmark's temp dir), with the default
// persistence strategy (DiskFirst: every entry is fsynced before it counts).
type cluster struct {
	dbs    []*cairn.DB
	leader *cairn.DB
	term   uint64 // the leader's term once the cluster was ready
}

// startCluster starts the nodes with kvOpts, waits until one leads and every
// node has caught up, and registers their stop with tb's cleanup.
func startCluster(tb testing.TB, n int, kvOpts kv.Options) *cluster {
	tb.Helper()
	logger := benchutil.Logger(tb)
	kvOpts.Watch.Logger = logger
	dc := dbcluster.New(tb, dbcluster.Options{
		Nodes: n,
		Raft:  engine.RaftConfig{TickMs: tickMs, ElectionTick: electionTick, HeartbeatTick: heartbeatTick},
		KV:    kvOpts, Logger: logger,
	})
	c := &cluster{}
	for id := uint64(1); id <= uint64(n); id++ {
		c.dbs = append(c.dbs, dc.DBs[id])
	}
	c.leader = waitLeader(tb, c.dbs)
	c.term = c.leader.Engine().Status().Term
	return c
}

// checkLeader warns when leadership changed since the cluster was ready.
func (c *cluster) checkLeader(tb testing.TB) {
	if st := c.leader.Engine().Status(); st.Role != engine.Leader || st.Term != c.term {
		tb.Logf("warning: leadership changed during the run (term %d -> %d, role %v): results include an election", c.term, st.Term, st.Role)
	}
}

// waitLeader waits until exactly one node leads, in the highest term any
// node knows, and every node is ready and has applied what the leader has.
func waitLeader(tb testing.TB, dbs []*cairn.DB) *cairn.DB {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var leader *cairn.DB
		var leaderTerm, maxTerm uint64
		leaders := 0
		for _, db := range dbs {
			st := db.Engine().Status()
			maxTerm = max(maxTerm, st.Term)
			if st.Role == engine.Leader {
				leader, leaderTerm = db, st.Term
				leaders++
			}
		}
		if leaders != 1 || leaderTerm != maxTerm {
			continue
		}
		applied := leader.Engine().Status().Applied
		caughtUp := true
		for _, db := range dbs {
			select {
			case <-db.Ready():
			default:
				caughtUp = false
			}
			caughtUp = caughtUp && db.Engine().Status().Applied >= applied
		}
		if caughtUp {
			return leader
		}
	}
	tb.Fatalf("no stable leader with caught-up followers within 20s")
	return nil
}

// putAll writes value to every key through db, from up to 64 goroutines at
// once (so that the writes share fsyncs), and returns the first error.
func putAll(ctx context.Context, db *cairn.DB, keys []string, value string) error {
	const writers = 64
	var next atomic.Int64
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range min(writers, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(keys)); i = next.Add(1) - 1 {
				if _, err := db.Put(ctx, keys[i], value); err != nil {
					errs <- fmt.Errorf("put %s: %w", keys[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// benchValue is a 256-byte value of random letters: not trivially
// compressible.
func benchValue() string {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]byte, valueBytes)
	for i := range v {
		v[i] = 'a' + byte(r.IntN(26))
	}
	return string(v)
}

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, maxLatencyNs, 3) }

// recordNs records d, clamped into the histogram's range.
func recordNs(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(d.Nanoseconds(), 1), maxLatencyNs))
}

// reportLatency reports h's p50 and p99 in microseconds.
func reportLatency(b *testing.B, h *hdrhistogram.Histogram) {
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1e3, "p50-µs")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1e3, "p99-µs")
}
