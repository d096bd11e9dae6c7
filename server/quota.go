package server

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// sizeRefresh is how stale the storage size used for the quota may be:
// reading Pebble's metrics on every write would cost more than the write.
const sizeRefresh = 250 * time.Millisecond

// quota raises the NOSPACE alarm when storage would grow past QuotaBytes,
// as etcd does: the write that would cross it is refused, and so are the
// writes after it until an operator frees space (compact, defragment) and
// disarms the alarm. Deletes, compactions and revocations always pass.
type quota struct {
	mu      sync.Mutex
	size    int64
	checked time.Time
}

// costs reports whether req can grow storage.
func costs(req *pb.InternalRaftRequest) bool {
	return req.Put != nil || req.Txn != nil || req.LeaseGrant != nil
}

// checkQuota refuses req, of reqSize encoded bytes, if it would take
// storage past the quota, raising the alarm on the way.
func (s *Server) checkQuota(ctx context.Context, req *pb.InternalRaftRequest, reqSize int) error {
	if !costs(req) {
		return nil
	}
	q := &s.quota
	q.mu.Lock()
	if time.Since(q.checked) > sizeRefresh {
		q.size, _ = s.db.Size()
		q.checked = time.Now()
	}
	size := q.size
	q.mu.Unlock()
	if size+int64(reqSize) <= s.opts.QuotaBytes {
		return nil
	}
	for _, a := range s.db.Alarms() {
		if a.GetAlarm() == pb.AlarmType_NOSPACE && a.GetMemberID() == s.db.Engine().ID() {
			return errNoSpace // raised already
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	_, err := s.db.Alarm(ctx, &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: s.db.Engine().ID(), Alarm: pb.AlarmType_NOSPACE,
	})
	if err != nil {
		s.log.Warn("raising the NOSPACE alarm", "err", err)
	}
	s.log.Warn("storage quota exceeded; writes refused until the NOSPACE alarm is disarmed",
		"size", size, "quota_bytes", s.opts.QuotaBytes)
	return errNoSpace
}
