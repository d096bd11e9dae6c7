package kv

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/mvcc"
)

// sourceEnv is a state machine with data, history, a compaction, a lease,
// member attributes and an alarm.
func sourceEnv(t *testing.T) *env {
	e := newEnv(t)
	for i := 0; i < 20; i++ {
		e.put("k"+string(rune('a'+i%5)), string(rune('A'+i)))
	}
	e.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 100}})
	e.must(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("leased"), Value: []byte("x"), Lease: 5}})
	e.must(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 10}})
	e.must(attrSet(1, "n1", "http://n1:2379"))
	e.must(alarmReq(pb.AlarmRequest_ACTIVATE, 1, nospace))
	return e
}

// newPebble opens an empty Pebble DB on its own in-memory filesystem.
func newPebble(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("restored", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestBackupRoundTrip: a backup verifies, restores into an empty store, and
// the restored state machine holds the same history, leases and alarms
// (member attributes belong to the old cluster and are dropped), at applied
// index 0, ready for a new cluster's log.
func TestBackupRoundTrip(t *testing.T) {
	src := sourceEnv(t)
	data := src.backup()
	if got, want := data[len(data)-sha256.Size:], sha256.Sum256(data[:len(data)-sha256.Size]); !bytes.Equal(got, want[:]) {
		t.Fatal("a backup does not end with the SHA-256 of what precedes it")
	}
	// Writes after the backup are not in it (NOSPACE lets a delete through).
	src.must(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("ka")}})

	info, err := VerifyBackup(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("VerifyBackup: %v", err)
	}
	if info.Rev != src.sm.Store().Rev()-1 || info.CompactRev != 10 || info.Size != int64(len(data)) {
		t.Fatalf("backup info %+v (store at %d)", info, src.sm.Store().Rev())
	}

	db := newPebble(t)
	rinfo, err := RestoreBackup(db, bytes.NewReader(data))
	if err != nil {
		_ = db.Close()
		t.Fatalf("RestoreBackup: %v", err)
	}
	if rinfo != info {
		t.Fatalf("RestoreBackup info %+v, VerifyBackup said %+v", rinfo, info)
	}
	dst := &env{t: t, db: db, sm: New(Options{})}
	t.Cleanup(dst.close)
	if err := dst.sm.UseStorage(db); err != nil {
		t.Fatal(err)
	}
	if idx, _ := dst.sm.AppliedIndex(); idx != 0 {
		t.Fatalf("restored applied index %d, want 0", idx)
	}
	if dst.sm.Store().Rev() != info.Rev || dst.sm.Store().CompactRev() != 10 {
		t.Fatalf("restored store at %d/%d", dst.sm.Store().Rev(), dst.sm.Store().CompactRev())
	}
	for rev := int64(10); rev <= info.Rev; rev++ {
		req := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev}
		want, err := src.sm.Store().Range(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dst.sm.Store().Range(req)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&pb.RangeResponse{Kvs: got.Kvs}, &pb.RangeResponse{Kvs: want.Kvs}) {
			t.Fatalf("restored store at revision %d differs", rev)
		}
	}
	if src.get("ka") != "" || dst.get("ka") == "" {
		t.Fatal("a write after the backup is in it")
	}
	if !dst.sm.Lessor().Exists(5) {
		t.Fatal("the lease is lost")
	}
	if keys, _ := dst.sm.Store().KeysWithLease(5); len(keys) != 1 {
		t.Fatalf("keys with lease 5: %q", keys)
	}
	requireAlarms(t, "restored alarms", dst.sm.Alarms(), alarmList(1, nospace))
	if m := dst.sm.MemberAttributes(); len(m) != 0 {
		t.Fatalf("restored member attributes %v, want none", m)
	}
	// HashKV agrees with the source at the backup's revision.
	want, err := src.sm.HashKV(info.Rev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dst.sm.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != want.Hash || got.HashRevision != info.Rev || got.CompactRevision != 10 {
		t.Fatalf("restored HashKV %v, source %v", got, want)
	}
	// The new cluster's entries apply from index 1.
	dst.must(alarmReq(pb.AlarmRequest_DEACTIVATE, 1, nospace))
	dst.put("new", "y")
	if dst.get("new") != "y" {
		t.Fatal("a write after the restore did not apply")
	}

	// A store that was written is not a restore target, and stays as it was.
	_, err = RestoreBackup(dst.db, bytes.NewReader(data))
	if err == nil || dst.get("new") != "y" {
		t.Fatalf("restore into a written store: %v", err)
	}
}

// TestBadBackupsAreRefused: a flipped byte anywhere, a truncated file,
// trailing bytes or something else entirely are refused by VerifyBackup
// and by RestoreBackup, naming the problem, and RestoreBackup then writes
// nothing.
func TestBadBackupsAreRefused(t *testing.T) {
	data := sourceEnv(t).backup()
	flip := func(at int) []byte {
		b := bytes.Clone(data)
		b[at] ^= 0x01
		return b
	}
	cases := []struct {
		name  string
		data  []byte
		parts []string
	}{
		{"flipped byte in the data", flip(len(data) / 2), []string{"SHA-256 mismatch", "corrupt"}},
		{"flipped byte in the magic", flip(0), []string{"SHA-256 mismatch", "bad magic"}},
		{"flipped byte in the SHA-256", flip(len(data) - 1), []string{"SHA-256 mismatch"}},
		{"truncated by 10 bytes", data[:len(data)-10], []string{"SHA-256 mismatch", "truncated"}},
		{"truncated to half", data[:len(data)/2], []string{"SHA-256 mismatch", "truncated"}},
		{"shorter than the SHA-256", data[:20], []string{"truncated", "20 bytes"}},
		{"empty", nil, []string{"truncated", "0 bytes"}},
		{"trailing byte", append(bytes.Clone(data), 0), []string{"SHA-256 mismatch"}},
		{"not a backup", bytes.Repeat([]byte("etcd"), 100), []string{"SHA-256 mismatch", "bad magic"}},
	}
	// A stream whose SHA-256 is right but whose own checks fail: the
	// stream's error is reported.
	good, err := VerifyBackup(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if good.Size%512 != sha256.Size || good.StreamSize > good.Size-sha256.Size {
		t.Fatalf("backup of %d bytes (stream %d): want the body padded to 512-byte blocks, then the SHA-256", good.Size, good.StreamSize)
	}
	inner := bytes.Clone(data[:len(data)-sha256.Size])
	inner[good.StreamSize-1] ^= 0x01 // the stream's CRC
	sum := sha256.Sum256(inner)
	cases = append(cases, struct {
		name  string
		data  []byte
		parts []string
	}{"right SHA-256, bad stream CRC", append(inner, sum[:]...), []string{"checksum mismatch"}})

	for _, tc := range cases {
		_, err := VerifyBackup(bytes.NewReader(tc.data))
		requireErr(t, err, ErrBadBackup, tc.parts...)
		db := newPebble(t)
		_, err = RestoreBackup(db, bytes.NewReader(tc.data))
		requireErr(t, err, ErrBadBackup, tc.parts...)
		s, oerr := mvcc.Open(db, mvcc.Options{})
		if oerr != nil || s.Rev() != 1 || s.AppliedIndex() != 0 {
			t.Fatalf("%s: a refused restore left the store at %v", tc.name, oerr)
		}
		it, _ := db.NewIter(nil)
		if it.First() {
			t.Fatalf("%s: a refused restore wrote %q", tc.name, it.Key())
		}
		_ = it.Close()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
