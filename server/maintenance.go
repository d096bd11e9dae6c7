package server

import (
	"context"
	"io"
	"slices"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Version is the etcd API version cairn implements, reported by Status:
// clients gate features on it.
const Version = "3.7.0"

// snapshotChunk is the size of one Snapshot response.
const snapshotChunk = 32 * 1024

// maintenanceServer is etcd's Maintenance service.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

func (m *maintenanceServer) Alarm(ctx context.Context, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if req.GetAction() != pb.AlarmRequest_GET {
		ctx2, cancel := context.WithTimeout(ctx, m.s.requestTimeout())
		defer cancel()
		ctx = ctx2
	}
	resp, err := m.s.db.Alarm(ctx, req)
	if err != nil {
		return nil, err
	}
	resp.Header = m.s.header(resp.Header)
	return resp, nil
}

func (m *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	e := m.s.db.Engine()
	st := e.Status()
	total, inUse := m.s.db.Size()
	resp := &pb.StatusResponse{
		Header:           m.s.header(nil),
		Version:          Version,
		DbSize:           total,
		DbSizeInUse:      inUse,
		Leader:           st.Leader,
		RaftIndex:        st.Commit,
		RaftTerm:         st.Term,
		RaftAppliedIndex: st.Applied,
		IsLearner:        slices.Contains(st.Learners, st.ID),
		StorageVersion:   Version,
	}
	for _, a := range m.s.db.Alarms() {
		resp.Errors = append(resp.Errors, "memberID:"+formatID(a.GetMemberID())+" alarm:"+a.GetAlarm().String())
	}
	return resp, nil
}

func (m *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := m.s.db.Defragment(ctx); err != nil {
		return nil, err
	}
	return &pb.DefragmentResponse{Header: m.s.header(nil)}, nil
}

func (m *maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	resp, err := m.s.db.Hash(ctx)
	if err != nil {
		return nil, err
	}
	resp.Header = m.s.header(resp.Header)
	return resp, nil
}

func (m *maintenanceServer) HashKV(ctx context.Context, req *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	resp, err := m.s.db.HashKV(ctx, req.GetRevision())
	if err != nil {
		return nil, err
	}
	resp.Header = m.s.header(resp.Header)
	return resp, nil
}

// Snapshot streams a point-in-time copy of the state machine, ending with
// its SHA-256 (as etcd's stream does). `cairn snapshot restore` reads it.
func (m *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, stream pb.Maintenance_SnapshotServer) error {
	pr, pw := io.Pipe()
	go func() {
		_, err := m.s.db.Snapshot(stream.Context(), pw)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	buf := make([]byte, snapshotChunk)
	first := true
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			resp := &pb.SnapshotResponse{Blob: append([]byte(nil), buf[:n]...), RemainingBytes: 1, Version: Version}
			if first {
				resp.Header = m.s.header(nil)
				first = false
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return stream.Send(&pb.SnapshotResponse{RemainingBytes: 0, Version: Version})
		}
		if err != nil {
			return err
		}
	}
}

func (m *maintenanceServer) MoveLeader(ctx context.Context, req *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	e := m.s.db.Engine()
	if leader, _, _ := e.Leader(); leader != e.ID() {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	st := e.Status()
	if !slices.Contains(st.Voters, req.GetTargetID()) {
		return nil, rpctypes.ErrGRPCBadLeaderTransferee
	}
	ctx, cancel := context.WithTimeout(ctx, m.s.requestTimeout())
	defer cancel()
	if err := e.TransferLeadership(ctx, req.GetTargetID()); err != nil {
		return nil, err
	}
	return &pb.MoveLeaderResponse{Header: m.s.header(nil)}, nil
}

func formatID(id uint64) string { return strconv.FormatUint(id, 16) }
