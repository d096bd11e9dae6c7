package server_test

import (
	"context"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-db/cairn/internal/servercluster"
)

func rawConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// recvWatch receives the next response, failing the test after 10s.
func recvWatch(t *testing.T, stream pb.Watch_WatchClient) *pb.WatchResponse {
	t.Helper()
	type res struct {
		r   *pb.WatchResponse
		err error
	}
	ch := make(chan res, 1)
	go func() {
		r, err := stream.Recv()
		ch <- res{r, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("watch recv: %v", r.err)
		}
		return r.r
	case <-time.After(10 * time.Second):
		t.Fatal("no watch response in 10s")
		return nil
	}
}

// TestWatchStreamProtocol checks the Watch service message by message, as
// etcd defines it: created responses, client-chosen and automatic ids,
// several watches on one stream, progress requests, cancel, and a watch
// from a compacted revision canceled with the compact revision.
func TestWatchStreamProtocol(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Nodes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := rawConn(t, c.Endpoints()[0])
	kvc := pb.NewKVClient(conn)
	stream, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	create := func(req *pb.WatchCreateRequest) {
		t.Helper()
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}}); err != nil {
			t.Fatal(err)
		}
	}
	create(&pb.WatchCreateRequest{Key: []byte("a")})
	if r := recvWatch(t, stream); !r.Created || r.WatchId != 0 || r.Header.GetRevision() == 0 {
		t.Fatalf("first create: %+v, want created with id 0", r)
	}
	create(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("c"), WatchId: 7, PrevKv: true})
	if r := recvWatch(t, stream); !r.Created || r.WatchId != 7 {
		t.Fatalf("create with id 7: %+v", r)
	}
	create(&pb.WatchCreateRequest{Key: []byte("x"), WatchId: 7})
	if r := recvWatch(t, stream); !r.Canceled || r.WatchId != 7 || r.CancelReason == "" {
		t.Fatalf("create with a taken id: %+v, want canceled with a reason", r)
	}
	create(&pb.WatchCreateRequest{Key: []byte("a")})
	if r := recvWatch(t, stream); !r.Created || r.WatchId != 1 {
		t.Fatalf("second automatic id: %+v, want 1", r)
	}
	put1, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("b1"), Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("b1"), Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	// Watch 7 sees b1 twice (the second with its prev kv); watches 0 and 1
	// see a once each.
	got := map[int64][]*mvccpb.Event{}
	for len(got[7]) < 2 || len(got[0]) < 1 || len(got[1]) < 1 {
		r := recvWatch(t, stream)
		got[r.WatchId] = append(got[r.WatchId], r.Events...)
	}
	if e := got[7]; string(e[0].Kv.Value) != "1" || e[0].Kv.ModRevision != put1.Header.Revision ||
		string(e[1].Kv.Value) != "2" || e[1].PrevKv == nil || string(e[1].PrevKv.Value) != "1" {
		t.Fatalf("watch 7 events %v", e)
	}
	if string(got[0][0].Kv.Value) != "3" || string(got[1][0].Kv.Value) != "3" {
		t.Fatalf("watches on a: %v %v", got[0], got[1])
	}
	// A progress request answers every watch with the current revision.
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}); err != nil {
		t.Fatal(err)
	}
	progress := map[int64]int64{}
	for len(progress) < 3 {
		r := recvWatch(t, stream)
		if len(r.Events) != 0 || r.Created || r.Canceled {
			t.Fatalf("want progress notifications, got %+v", r)
		}
		progress[r.WatchId] = r.Header.Revision
	}
	for id, rev := range progress {
		if rev != put1.Header.Revision+2 {
			t.Errorf("progress of watch %d at %d, want %d", id, rev, put1.Header.Revision+2)
		}
	}
	// Cancel: a canceled response for that id, then nothing more for it.
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 7}}}); err != nil {
		t.Fatal(err)
	}
	if r := recvWatch(t, stream); !r.Canceled || r.WatchId != 7 {
		t.Fatalf("cancel: %+v", r)
	}
	if _, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("b2"), Value: []byte("4")}); err != nil {
		t.Fatal(err)
	}
	last, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("5")})
	if err != nil {
		t.Fatal(err)
	}
	for seen := 0; seen < 2; {
		r := recvWatch(t, stream)
		if r.WatchId == 7 {
			t.Fatalf("canceled watch 7 still receives %+v", r)
		}
		seen += len(r.Events)
	}
	// Compact, then watch from below the compaction.
	if _, err := kvc.Compact(ctx, &pb.CompactionRequest{Revision: last.Header.Revision}); err != nil {
		t.Fatal(err)
	}
	create(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: put1.Header.Revision})
	// Created first, alone (clientv3 reads nothing else in a created
	// response), then the cancel with the compact revision.
	if r := recvWatch(t, stream); !r.Created || r.Canceled {
		t.Fatalf("watch from a compacted revision: first %+v, want created only", r)
	}
	r := recvWatch(t, stream)
	if !r.Canceled || r.Created || r.CompactRevision != last.Header.Revision {
		t.Fatalf("watch from a compacted revision: %+v, want canceled with compact revision %d", r, last.Header.Revision)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

// TestWatchProgressThroughClientV3: clientv3's RequestProgress on a stream with
// watches gets a progress notification at the current revision.
func TestWatchProgressThroughClientV3(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Nodes: 1})
	ctx := ctxT(t, 30*time.Second)
	cl := newClient(t, c.Endpoints()...)
	put, err := cl.Put(ctx, "p", "1")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wch := cl.Watch(wctx, "q")
	time.Sleep(100 * time.Millisecond) // let the watch be created
	if err := cl.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-wch:
		if !r.IsProgressNotify() || r.Header.Revision != put.Header.Revision {
			t.Fatalf("got %+v, want a progress notification at %d", r, put.Header.Revision)
		}
	case <-ctx.Done():
		t.Fatal("no progress notification")
	}
}
