package grpcnet

import (
	"errors"
	"fmt"
	"io"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/grpcnet/peerpb"
)

// Each class's server registers a service that implements only its own RPC;
// the others answer Unimplemented, so a stream on the wrong connection is
// refused instead of sharing that connection's windows.

type controlService struct {
	peerpb.UnimplementedPeerServer
	t *Transport
}

func (s *controlService) Control(stream grpc.ClientStreamingServer[peerpb.Batch, peerpb.Ack]) error {
	return toStatus(s.t.receive(stream, transport.Control))
}

type dataService struct {
	peerpb.UnimplementedPeerServer
	t *Transport
}

func (s *dataService) Data(stream grpc.ClientStreamingServer[peerpb.Batch, peerpb.Ack]) error {
	return toStatus(s.t.receive(stream, transport.Data))
}

type bulkService struct {
	peerpb.UnimplementedPeerServer
	t *Transport
}

func (s *bulkService) Bulk(stream grpc.BidiStreamingServer[peerpb.SnapshotRequest, peerpb.SnapshotResponse]) error {
	return toStatus(s.t.receiveSnapshot(stream))
}

// receive serves one Control or Data stream: it checks the header, accepts
// the stream by sending the response headers (the sender waits for them
// before it counts the stream as open), and delivers every message until the
// sender closes the stream.
func (t *Transport) receive(stream grpc.ClientStreamingServer[peerpb.Batch, peerpb.Ack], c transport.Class) error {
	b, err := stream.Recv()
	if err != nil {
		return err
	}
	hdr := b.GetHeader()
	if err := t.checkHeader(hdr); err != nil {
		t.log.Warn("grpcnet: refused stream", "class", c.String(), "err", err)
		return err
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	from := hdr.GetFrom()
	h := t.handler()
	for {
		for _, m := range b.GetMessages() {
			if err := t.checkMessage(m, from, c); err != nil {
				t.log.Warn("grpcnet: refused message", "class", c.String(), "peer", from, "err", err)
				return err
			}
			h.Deliver(m)
		}
		b, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&peerpb.Ack{})
		}
		if err != nil {
			return err
		}
	}
}

// checkHeader refuses a stream of another cluster or for another node.
func (t *Transport) checkHeader(hdr *peerpb.Header) error {
	if hdr == nil {
		return errMissingHeader
	}
	if hdr.GetClusterId() != t.opts.ClusterID {
		return fmt.Errorf("%w: node %d is in cluster %#x, this node %d in cluster %#x",
			transport.ErrWrongCluster, hdr.GetFrom(), hdr.GetClusterId(), t.opts.NodeID, t.opts.ClusterID)
	}
	if hdr.GetTo() != t.opts.NodeID {
		return fmt.Errorf("%w: node %d addressed node %d, this is node %d",
			transport.ErrWrongNode, hdr.GetFrom(), hdr.GetTo(), t.opts.NodeID)
	}
	return nil
}

// checkMessage refuses a message that does not belong on the stream. A
// MsgSnap outside Bulk matters most: it would reach raft without its data.
func (t *Transport) checkMessage(m *raftpb.Message, from uint64, c transport.Class) error {
	if m.GetTo() != t.opts.NodeID {
		return fmt.Errorf("%w: %s from node %d addressed node %d, this is node %d",
			transport.ErrWrongNode, m.GetType(), from, m.GetTo(), t.opts.NodeID)
	}
	if m.GetFrom() != from {
		return fmt.Errorf("%w: %s from node %d on the stream of node %d", errProtocol, m.GetType(), m.GetFrom(), from)
	}
	if mc := transport.ClassOf(m); mc != c {
		return fmt.Errorf("%w: %s belongs to class %s, received on %s", errProtocol, m.GetType(), mc, c)
	}
	return nil
}

// stopServer lets a server finish its handlers for up to grace, then stops
// it hard.
func stopServer(srv *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		srv.Stop()
		<-done
	}
}
