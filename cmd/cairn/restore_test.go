package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/servercluster"
	"github.com/cairn-db/cairn/server"
)

// TestSnapshotSaveRestore: a snapshot saved from a running cluster starts a
// new one-member cluster holding the same data, whose revisions continue
// from the snapshot's; a corrupt file or a used directory is refused.
func TestSnapshotSaveRestore(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var last int64
	for i := range 20 {
		r, err := cli.Put(ctx, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "snap.db")
	cairnOK(t, c.Endpoints(), "", "snapshot", "save", file)

	data := filepath.Join(dir, "restored")
	out := cairnOK(t, nil, "", "snapshot", "restore", file, "--data-dir", data)
	if !strings.Contains(out, fmt.Sprintf("revision %d", last)) {
		t.Errorf("restore says %q, want revision %d", out, last)
	}
	cairnFails(t, nil, "", 1, []string{"not empty"}, "snapshot", "restore", file, "--data-dir", data)
	cairnFails(t, nil, "", 2, []string{"--data-dir"}, "snapshot", "restore", file)

	o := server.Options{Name: "r1", ListenClient: "127.0.0.1:0"}
	o.DB.Engine.DataDir = data
	o.DB.Engine.ListenPeer = "127.0.0.1:0"
	s, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	select {
	case <-s.Ready():
	case <-time.After(waitTimeout):
		t.Fatal("restored member not ready")
	}
	rc, err := clientv3.New(clientv3.Config{Endpoints: []string{s.ClientAddr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := rc.Get(ctx, "k", clientv3.WithPrefix())
	if err != nil || len(got.Kvs) != 20 || got.Header.Revision != last || string(got.Kvs[19].Value) != "19" {
		t.Fatalf("restored data: %v %v, want the 20 keys at revision %d", got, err, last)
	}
	put, err := rc.Put(ctx, "after", "restore")
	if err != nil || put.Header.Revision != last+1 {
		t.Fatalf("first write after the restore: %v %v, want revision %d", put, err, last+1)
	}
}
