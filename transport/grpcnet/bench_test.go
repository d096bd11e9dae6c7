package grpcnet

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkSendData measures Data-class throughput between two transports on
// loopback: 1 KiB MsgApp messages, reported as msgs/s. The sender keeps at
// most half a queue in flight, so that the figure counts delivered messages,
// not drops.
func BenchmarkSendData(b *testing.B) {
	a, r := newNode(b, 1), newNode(b, 2)
	connect(a, r)
	var delivered atomic.Int64
	r.rec.onDeliver = func(*raftpb.Message) { delivered.Add(1) }
	r.rec.discard = true
	payload := bytes.Repeat([]byte("p"), 1<<10)
	const window, burst = 2048, 64

	a.Send([]*raftpb.Message{appendMsg(1, 2, 1, payload)})
	waitFor(b, 5*time.Second, "warm-up", func() bool { return delivered.Load() == 1 })
	delivered.Store(0)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := int64(0)
	for sent < int64(b.N) {
		for sent-delivered.Load() > window {
			time.Sleep(20 * time.Microsecond)
		}
		n := min(burst, int64(b.N)-sent)
		msgs := make([]*raftpb.Message, n)
		for i := range msgs {
			msgs[i] = appendMsg(1, 2, uint64(sent)+uint64(i)+2, payload)
		}
		a.Send(msgs)
		sent += n
	}
	for delivered.Load() < int64(b.N) {
		if a.rec.unreachableCount(2) > 0 {
			b.Fatal("messages were dropped")
		}
		time.Sleep(20 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
