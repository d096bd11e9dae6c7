package cairn

import (
	"context"
	"fmt"
	"io"
	"net/url"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"

	"github.com/cairn-db/cairn/kv"
)

// Maintenance: what etcd's Cluster and Maintenance services need beyond
// the key-value API. Requests that change state go through raft; the
// others answer from this node's state.

// PublishMember publishes this node's name and client URLs through raft
// (etcd's member attributes), replacing what it published before; every
// member sees them in MemberAttributes once applied. A name or at least
// one URL is required, and every URL must have a scheme.
func (db *DB) PublishMember(ctx context.Context, name string, clientURLs []string) error {
	if name == "" && len(clientURLs) == 0 {
		return fmt.Errorf("cairn: publish member: %w: a name or a client URL is required", kv.ErrBadRequest)
	}
	for _, u := range clientURLs {
		if p, err := url.Parse(u); err != nil || p.Scheme == "" {
			return fmt.Errorf("cairn: publish member: %w: client URL %q is not a URL with a scheme", kv.ErrBadRequest, u)
		}
	}
	_, err := db.propose(ctx, &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: db.e.ID(), MemberAttributes: &membershippb.Attributes{Name: name, ClientUrls: clientURLs},
	}})
	return err
}

// ForgetMember drops the attributes member id published (after removing
// it from the cluster). Forgetting a member that published nothing is not
// an error.
func (db *DB) ForgetMember(ctx context.Context, id uint64) error {
	if id == 0 {
		return fmt.Errorf("cairn: forget member: %w: member id 0", kv.ErrBadRequest)
	}
	_, err := db.propose(ctx, &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: id, MemberAttributes: &membershippb.Attributes{},
	}})
	return err
}

// MemberAttributes returns what every member published, by member id, as
// this node last applied it. The caller owns the map.
func (db *DB) MemberAttributes() map[uint64]kv.MemberAttributes { return db.sm.MemberAttributes() }

// Alarm is etcd's Maintenance.Alarm. GET answers from this node's state;
// ACTIVATE and DEACTIVATE go through raft and return the alarm affected
// (none when deactivating an alarm that is not active). Bad requests (an
// unknown action or alarm type, an activation for member 0) fail with
// kv.ErrBadRequest. While a NOSPACE
// alarm is active writes that would grow the store fail with
// kv.ErrNoSpace; while a CORRUPT alarm is active every write fails with
// kv.ErrCorrupt.
func (db *DB) Alarm(ctx context.Context, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if _, ok := pb.AlarmType_name[int32(req.GetAlarm())]; !ok {
		return nil, fmt.Errorf("cairn: alarm: %w: unknown alarm type %d", kv.ErrBadRequest, req.GetAlarm())
	}
	switch req.GetAction() {
	case pb.AlarmRequest_GET:
		return &pb.AlarmResponse{Header: db.header(), Alarms: db.sm.AlarmsOf(req.GetAlarm())}, nil
	case pb.AlarmRequest_ACTIVATE:
		if req.GetMemberID() == 0 && req.GetAlarm() != pb.AlarmType_NONE {
			return nil, fmt.Errorf("cairn: alarm: %w: alarm %s for member id 0", kv.ErrBadRequest, req.GetAlarm())
		}
	case pb.AlarmRequest_DEACTIVATE:
	default:
		return nil, fmt.Errorf("cairn: alarm: %w: unknown action %d", kv.ErrBadRequest, req.GetAction())
	}
	resp, err := db.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: req.GetAction(), MemberID: req.GetMemberID(), Alarm: req.GetAlarm(),
	}})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.AlarmResponse), nil
}

// Alarms lists the active alarms, by member then type, as this node last
// applied them.
func (db *DB) Alarms() []*pb.AlarmMember { return db.sm.Alarms() }

// HashKV is etcd's Maintenance.HashKV, from this node's store: the hash of
// the key-value history up to rev (0: the current revision) and the
// compacted revision; members at the same revision return the same hash.
// Errors match mvcc.ErrCompacted and mvcc.ErrFutureRev.
func (db *DB) HashKV(ctx context.Context, rev int64) (*pb.HashKVResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return db.sm.HashKV(rev)
}

// Hash is etcd's Maintenance.Hash: a hash of this node's whole state
// machine but its applied index.
func (db *DB) Hash(ctx context.Context) (*pb.HashResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return db.sm.Hash()
}

// Size reports this node's storage: total bytes on disk and an estimate of
// those in use (etcd's db_size and db_size_in_use).
func (db *DB) Size() (total, inUse int64) { return db.sm.Size() }

// Defragment compacts this node's storage, dropping what deletions and
// compactions left behind (etcd's Maintenance.Defragment). Reads and
// writes go on meanwhile.
func (db *DB) Defragment(ctx context.Context) error { return db.sm.Defragment(ctx) }

// Snapshot writes a consistent point-in-time copy of this node's state
// machine to w, followed by its SHA-256 (etcd's Maintenance.Snapshot; see
// kv.WriteBackup, and kv.VerifyBackup and kv.RestoreBackup for the way
// back), and returns the number of bytes written. It stops with ctx's
// error if ctx ends first.
func (db *DB) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return db.sm.WriteBackup(ctxWriter{ctx: ctx, w: w})
}

// ctxWriter fails writes once ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
