package engine_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/benchutil"
	"github.com/cairn-db/cairn/internal/testcluster"
)

type nopReporter struct{}

func (nopReporter) Report(engine.Event) {}

// BenchmarkProposeEvents measures what events cost a proposal: one node on
// memnet, MemFirst (no fsync in the way), one proposer, with no Reporter
// (no event is built), a no-op Reporter, and the recording eventLog of the
// tests (which keeps every event). ns/op and allocs/op are per proposal,
// for the whole process.
func BenchmarkProposeEvents(b *testing.B) {
	for _, bc := range []struct {
		name string
		r    func() engine.Reporter
	}{
		{"reporter=nil", func() engine.Reporter { return nil }},
		{"reporter=nop", func() engine.Reporter { return nopReporter{} }},
		{"reporter=recording", func() engine.Reporter { return &eventLog{} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.StopTimer()
			c := testcluster.New(b, 1, testcluster.Options{Configure: func(cfg *engine.Config) {
				cfg.Persistence = engine.PersistenceConfig{Strategy: engine.MemFirst, FlushPolicy: engine.DefaultFlushPolicy()}
				cfg.Snapshot = engine.SnapshotConfig{Threshold: benchSnapshotThreshold}
				cfg.Raft.TickMs, cfg.Raft.ElectionTick, cfg.Raft.HeartbeatTick = benchTickMs, benchElectionTck, 2
				cfg.Logger = benchutil.Logger(b)
				cfg.Reporter = bc.r()
			}})
			leader := c.Node(c.WaitLeader(10 * time.Second)).Engine
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			value := benchValue()
			for i := range benchWarmup {
				if _, err := leader.Propose(ctx, memkv.Set("warmup-"+strconv.Itoa(i), value)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.StartTimer()
			for i := range b.N {
				if _, err := leader.Propose(ctx, memkv.Set("k"+strconv.Itoa(i), value)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
		})
	}
}
