package server_test

import (
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/servercluster"
	"github.com/cairn-db/cairn/server"
)

func startServer(t *testing.T, o server.Options) *server.Server {
	t.Helper()
	s, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ready():
	case <-s.Done():
		t.Fatalf("%s stopped: %v", o.Name, s.Err())
	case <-time.After(30 * time.Second):
		s.Shutdown()
		t.Fatalf("%s not ready after 30s", o.Name)
	}
	return s
}

// TestJoinAndRestart: a member started with Join adds itself and catches
// up; one added beforehand with MemberAdd takes the id it was given;
// restarted with the same options, each comes back with its data and id.
func TestJoinAndRestart(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 90*time.Second)
	cl := newClient(t, c.Endpoints()...)
	if _, err := cl.Put(ctx, "before", "join"); err != nil {
		t.Fatal(err)
	}
	joiner := func(name string) server.Options {
		o := c.Options("n1")
		o.Name = name
		o.InitialCluster = nil
		o.Join = c.Endpoints()
		o.ListenClient = "127.0.0.1:0"
		// The peer port is bound now: the address goes to the cluster
		// before the member starts.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		o.DB.Engine.ListenPeer, o.DB.Engine.PeerListener = l.Addr().String(), l
		o.DB.Engine.DataDir = t.TempDir()
		return o
	}
	// n4 adds itself.
	o4 := joiner("n4")
	s4 := startServer(t, o4)
	defer func() { s4.Shutdown() }()
	// n5 is added first, as with etcdctl member add, then started.
	o5 := joiner("n5")
	added, err := cl.MemberAdd(ctx, []string{"http://" + o5.DB.Engine.ListenPeer})
	if err != nil {
		t.Fatal(err)
	}
	s5 := startServer(t, o5)
	defer func() { s5.Shutdown() }()
	if s5.DB().Engine().ID() != added.Member.ID {
		t.Fatalf("n5 runs as %x, want the id it was added with, %x", s5.DB().Engine().ID(), added.Member.ID)
	}
	list, err := cl.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range list.Members {
		names[m.Name] = true
	}
	if len(list.Members) != 5 || !names["n4"] || !names["n5"] {
		t.Fatalf("members %v, want n1..n5", list.Members)
	}
	for _, s := range []*server.Server{s4, s5} {
		c4 := newClient(t, s.ClientAddr())
		got, err := c4.Get(ctx, "before", clientv3.WithSerializable())
		if err != nil || len(got.Kvs) != 1 {
			t.Fatalf("joined member's data: %v %v", got, err)
		}
	}
	// Restart n4 with the same options: same id, its data, no new member.
	id4 := s4.DB().Engine().ID()
	if err := s4.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "while", "down"); err != nil {
		t.Fatal(err)
	}
	o4.DB.Engine.PeerListener = nil // closed with the first run; listen on ListenPeer again
	s4 = startServer(t, o4)
	if s4.DB().Engine().ID() != id4 {
		t.Fatalf("restarted n4 runs as %x, want %x", s4.DB().Engine().ID(), id4)
	}
	c4 := newClient(t, s4.ClientAddr())
	got, err := c4.Get(ctx, "while")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("restarted n4 misses a write: %v %v", got, err)
	}
	if list, _ := cl.MemberList(ctx); len(list.Members) != 5 {
		t.Fatalf("%d members after the restart, want 5", len(list.Members))
	}
	// Remove n5 and n4: the cluster is back to three.
	for _, id := range []uint64{added.Member.ID, id4} {
		if _, err := cl.MemberRemove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Put(ctx, "after", "remove"); err != nil {
		t.Fatal(err)
	}
}

// TestRestartNeedsSameMember: a data directory refuses a member of another
// name, with an error naming both.
func TestRestartNeedsSameMember(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Nodes: 1})
	o := c.Options("n1")
	c.Stop(t, "n1")
	o.Name = "other"
	o.InitialCluster = nil
	s, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start()
	if err == nil {
		s.Shutdown()
		t.Fatal("a data directory of member n1 started as member other")
	}
	if want := `belongs to member "n1"`; !contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}
