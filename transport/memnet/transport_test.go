package memnet

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/transport"
)

func TestStartErrors(t *testing.T) {
	n := New(1)
	defer n.Close()
	tr := n.Transport(1, nil)
	if err := tr.Start(nil); err == nil {
		t.Error("Start(nil) succeeded")
	}
	if err := tr.Start(&recorder{}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := tr.Start(&recorder{}); err == nil {
		t.Error("second Start succeeded")
	}
	tr.Close()
	if err := tr.Start(&recorder{}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

func TestCloseStopsDelivery(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	c.sendApps(1, 2, 10)
	eventually(t, "delivery", func() bool { return c.recs[2].count() == 10 })

	if err := c.ts[2].Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.ts[2].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	before := c.net.Stats()
	c.sendApps(1, 2, 10)
	// Send on a closed endpoint neither blocks nor panics.
	c.sendApps(2, 1, 10)
	s := quiesce(t, c.net)
	if s.Unreachable-before.Unreachable != 20 || s.Delivered != before.Delivered {
		t.Fatalf("stats = %+v (before %+v), want 20 more unreachable, no delivery", s, before)
	}
	eventually(t, "ReportUnreachable(2)", func() bool { return c.recs[1].unreachableCount(2) > 0 })
	if c.recs[2].count() != 10 || c.recs[1].count() != 0 {
		t.Fatal("a closed endpoint delivered or sent a message")
	}
}

func TestCloseDropsPending(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	// Messages that would take an hour: Close must not wait for them.
	c.net.SetLinkFaults(1, 2, Faults{MinDelay: time.Hour, MaxDelay: time.Hour})
	c.sendApps(1, 2, 50)
	start := time.Now()
	c.ts[2].Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v with delayed messages pending", d)
	}
	s := quiesce(t, c.net)
	if s.Unreachable != 50 || s.Delivered != 0 {
		t.Fatalf("stats = %+v, want 50 unreachable, none delivered", s)
	}
	eventually(t, "ReportUnreachable(2)", func() bool { return c.recs[1].unreachableCount(2) > 0 })
}

func TestRestart(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	old := c.recs[2]
	// Messages delayed for an hour die with the endpoint, and the
	// restarted one does not wait behind them.
	c.net.SetLinkFaults(1, 2, Faults{MinDelay: time.Hour, MaxDelay: time.Hour})
	c.sendApps(1, 2, 5)
	c.ts[2].Close()
	c.net.SetFaults(Faults{})
	c.start(t, 2, c.snaps[2])
	c.sendApps(1, 2, 5)
	eventually(t, "delivery to the restarted node", func() bool { return c.recs[2].count() == 5 })
	c.sendApps(2, 1, 5)
	eventually(t, "delivery from the restarted node", func() bool { return c.recs[1].count() == 5 })
	if old.count() != 0 {
		t.Fatal("the closed endpoint received messages")
	}
}

func TestTransportReplacesOpenEndpoint(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	stale := c.ts[2]
	staleRec := c.recs[2]
	c.start(t, 2, nil) // without closing the old endpoint: a crash
	if stale.running() {
		t.Fatal("the replaced endpoint is still running")
	}
	c.sendApps(1, 2, 5)
	eventually(t, "delivery to the new endpoint", func() bool { return c.recs[2].count() == 5 })
	if staleRec.count() != 0 {
		t.Fatal("the replaced endpoint received messages")
	}
}

func TestNetworkClose(t *testing.T) {
	n := New(1)
	a, b := n.Transport(1, nil), n.Transport(2, nil)
	a.AddPeer(2, Addr(2))
	recA, recB := &recorder{}, &recorder{}
	if err := a.Start(recA); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(recB); err != nil {
		t.Fatal(err)
	}
	n.SetFaults(Faults{MinDelay: time.Hour, MaxDelay: time.Hour})
	a.Send([]*raftpb.Message{app(1, 2, 0)})
	n.Close()
	n.Close()
	if a.running() || b.running() {
		t.Fatal("Network.Close left an endpoint running")
	}
	late := n.Transport(3, nil)
	if err := late.Start(&recorder{}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Start of an endpoint made after Network.Close = %v, want ErrClosed", err)
	}
	a.Send([]*raftpb.Message{app(1, 2, 1)})
	if recB.count() != 0 {
		t.Fatal("delivery after Network.Close")
	}
}
