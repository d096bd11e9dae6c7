// Package benchutil holds what cairn's benchmarks share: latency
// histograms reported as p50/p99, and a logger that does not break the
// result lines benchstat parses.
package benchutil

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// maxLatencyNs bounds what a histogram records: one minute.
const maxLatencyNs = int64(time.Minute)

// Latencies records latencies from n goroutines, each into its own
// histogram (no lock on the hot path), merged when reported.
type Latencies struct{ hists []*hdrhistogram.Histogram }

// NewLatencies returns a recorder for n goroutines.
func NewLatencies(n int) *Latencies {
	l := &Latencies{hists: make([]*hdrhistogram.Histogram, n)}
	for i := range l.hists {
		l.hists[i] = hdrhistogram.New(1, maxLatencyNs, 3)
	}
	return l
}

// Record adds d to goroutine i's histogram, clamped into its range. Only
// goroutine i may call it with i.
func (l *Latencies) Record(i int, d time.Duration) {
	_ = l.hists[i].RecordValue(min(max(d.Nanoseconds(), 1), maxLatencyNs))
}

// Count is the number of latencies recorded.
func (l *Latencies) Count() int64 {
	var n int64
	for _, h := range l.hists {
		n += h.TotalCount()
	}
	return n
}

// Report merges the histograms and reports p50 and p99 in microseconds.
func (l *Latencies) Report(b *testing.B) {
	all := hdrhistogram.New(1, maxLatencyNs, 3)
	for _, h := range l.hists {
		all.Merge(h)
	}
	b.ReportMetric(float64(all.ValueAtQuantile(50))/1e3, "p50-µs")
	b.ReportMetric(float64(all.ValueAtQuantile(99))/1e3, "p99-µs")
}

// Logger returns a Warn-level logger for the nodes of a benchmark. It
// writes through tb.Log, which prints after the result line, so that a
// warning never splits a line benchstat must parse; once tb has finished,
// to stderr.
func Logger(tb testing.TB) *slog.Logger {
	w := &tbWriter{tb: tb}
	// Registered before the cluster's own cleanup, so it runs after it.
	tb.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct {
	tb   testing.TB
	done atomic.Bool // tb has finished: tb.Log may no longer be used
}

func (w *tbWriter) Write(p []byte) (int, error) {
	if w.done.Load() {
		os.Stderr.Write(p)
	} else {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Run splits b.N calls across len(clients) goroutines, times them together
// with the benchmark timer on, records each call's latency, and reports
// ops/s (under unit) and p50/p99. clients[w](i) makes client w's i-th call.
// The first error fails the benchmark.
func Run(b *testing.B, unit string, clients []func(i int) error) {
	lat := NewLatencies(len(clients))
	errs := make([]error, len(clients))
	var ready, done sync.WaitGroup
	startc := make(chan struct{})
	for w, call := range clients {
		ops := b.N / len(clients)
		if w < b.N%len(clients) {
			ops++
		}
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-startc
			for i := range ops {
				t0 := time.Now()
				err := call(i)
				took := time.Since(t0)
				if err != nil {
					errs[w] = fmt.Errorf("client %d, call %d: %w", w, i, err)
					return
				}
				lat.Record(w, took)
			}
		}()
	}
	ready.Wait()

	b.ReportAllocs()
	b.ResetTimer()
	b.StartTimer()
	start := time.Now()
	close(startc)
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	if got := lat.Count(); got != int64(b.N) {
		b.Fatalf("recorded %d latencies for %d calls", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
	lat.Report(b)
}
