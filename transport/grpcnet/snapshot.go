package grpcnet

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/grpcnet/peerpb"
)

// chunkSize is the snapshot data carried by one SnapshotChunk. Each chunk is
// compressed and decompressed in one piece by the goroutine that sends or
// receives it; at 256 KiB that takes a few milliseconds, so the Bulk
// goroutines block on flow control often and do not hold a CPU for long,
// while per-message costs stay negligible and a broken transfer loses little.
const chunkSize = 256 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errNoSnapshotStore = errors.New("grpcnet: no SnapshotStore configured")

// enqueueSnapshot starts a goroutine that sends the MsgSnap m, unless the
// peer is stopped or already has Bulk.QueueSize snapshots pending.
func (p *peer) enqueueSnapshot(m *raftpb.Message) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.stopped || p.mu.snapshots >= p.t.opts.Network.Bulk.QueueSize {
		return false
	}
	p.mu.snapshots++
	// Added under p.mu, which stop takes before it waits: no Add after Wait.
	p.wg.Add(1)
	go p.sendSnapshot(m)
	return true
}

// sendSnapshot sends m and its data, and reports the outcome exactly once.
func (p *peer) sendSnapshot(m *raftpb.Message) {
	defer p.wg.Done()
	ok := false
	defer func() {
		p.mu.Lock()
		p.mu.snapshots--
		p.mu.Unlock()
		p.t.handler().ReportSnapshot(p.id, ok)
	}()
	meta := m.GetSnapshot().GetMetadata()
	log := p.t.log.With("peer", p.id, "term", meta.GetTerm(), "index", meta.GetIndex())

	select {
	case p.t.snapshotSlots <- struct{}{}:
		defer func() { <-p.t.snapshotSlots }()
	case <-p.ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.t.opts.Network.Bulk.RequestTimeout())
	defer cancel()
	start := time.Now()
	sent, err := p.streamSnapshot(ctx, m)
	if err != nil {
		log.Warn("grpcnet: snapshot not sent", "sent_bytes", sent, "err", err)
		var local localError
		if !errors.As(err, &local) && p.ctx.Err() == nil {
			p.bulkState(false)
		}
		return
	}
	log.Info("grpcnet: snapshot sent", "sent_bytes", sent)
	p.bulkState(true)
	p.t.handler().SnapshotTransferred(transport.SnapshotTransfer{
		Peer: p.id, Term: meta.GetTerm(), Index: meta.GetIndex(), Bytes: sent, Duration: time.Since(start),
	})
	ok = true
}

// bulkState reports the Bulk class's state to the handler if it changed:
// Bulk keeps no stream open, so its state is that of the last transfer.
func (p *peer) bulkState(up bool) {
	p.mu.Lock()
	changed := !p.mu.bulkReported || p.mu.bulkUp != up
	p.mu.bulkReported, p.mu.bulkUp = true, up
	p.mu.Unlock()
	if changed {
		p.t.handler().PeerState(p.id, transport.Bulk, up)
	}
}

// localError marks a failure of this node's side of a transfer (its
// snapshot store), which says nothing about the connection.
type localError struct{ error }

func (e localError) Unwrap() error { return e.error }

// streamSnapshot runs the sender's side of a Bulk stream and returns the
// number of data bytes it sent.
func (p *peer) streamSnapshot(ctx context.Context, m *raftpb.Message) (int64, error) {
	store := p.t.opts.Snapshots
	if store == nil {
		return 0, localError{errNoSnapshotStore}
	}
	meta := m.GetSnapshot().GetMetadata()
	if meta == nil {
		return 0, localError{fmt.Errorf("%w: MsgSnap without snapshot metadata", errProtocol)}
	}
	r, err := store.OpenSnapshot(meta.GetTerm(), meta.GetIndex())
	if err != nil {
		return 0, localError{fmt.Errorf("grpcnet: open snapshot %d/%d: %w", meta.GetTerm(), meta.GetIndex(), err)}
	}
	defer r.Close()
	size := r.Size()

	stream, err := peerpb.NewPeerClient(p.conns[transport.Bulk]).Bulk(ctx)
	if err != nil {
		return 0, fmt.Errorf("grpcnet: open bulk stream to peer %d at %s: %w", p.id, p.addr, fromStatus(err))
	}
	hdr := &peerpb.SnapshotRequest{Body: &peerpb.SnapshotRequest_Header{Header: &peerpb.SnapshotHeader{
		Header: p.header(), Message: m, Size: size,
	}}}
	if err := stream.Send(hdr); err != nil {
		return 0, streamError("send snapshot header", stream, err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return 0, streamError("receive snapshot offset", stream, err)
	}
	offset := resp.GetAccept().GetOffset()
	if resp.GetAccept() == nil || offset < 0 || offset > size {
		return 0, fmt.Errorf("%w: peer answered %v to a snapshot of %d bytes", errProtocol, resp, size)
	}
	if _, err := r.Seek(offset, io.SeekStart); err != nil {
		return 0, localError{fmt.Errorf("grpcnet: seek snapshot to %d: %w", offset, err)}
	}
	limit := int64(min(chunkSize, p.t.opts.Network.Bulk.MaxMessageSize-batchHeadroom))
	sent, err := sendChunks(stream, r, offset, size, limit)
	if err != nil {
		return sent, err
	}
	if err := stream.CloseSend(); err != nil {
		return sent, streamError("close snapshot stream", stream, err)
	}
	if resp, err = stream.Recv(); err != nil {
		return sent, streamError("receive snapshot outcome", stream, err)
	}
	if resp.GetDone() == nil {
		return sent, fmt.Errorf("%w: peer answered %v instead of done", errProtocol, resp)
	}
	// Read the status too, so that the stream ends cleanly on both sides.
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return sent, streamError("end snapshot stream", stream, err)
	}
	return sent, nil
}

// sendChunks streams r from offset to size in chunks of at most limit bytes.
func sendChunks(stream grpc.BidiStreamingClient[peerpb.SnapshotRequest, peerpb.SnapshotResponse],
	r io.Reader, offset, size, limit int64) (int64, error) {
	var sent int64
	for off := offset; off < size; {
		// A fresh buffer per chunk: grpc-go may refer to a sent message
		// after Send returns.
		buf := make([]byte, min(limit, size-off))
		if _, err := io.ReadFull(r, buf); err != nil {
			return sent, localError{fmt.Errorf("grpcnet: read snapshot at %d of %d: %w", off, size, err)}
		}
		chunk := &peerpb.SnapshotRequest{Body: &peerpb.SnapshotRequest_Chunk{Chunk: &peerpb.SnapshotChunk{
			Offset: off, Data: buf, Crc32C: crc32.Checksum(buf, castagnoli),
		}}}
		if err := stream.Send(chunk); err != nil {
			return sent, streamError(fmt.Sprintf("send snapshot chunk at %d", off), stream, err)
		}
		off += int64(len(buf))
		sent += int64(len(buf))
	}
	return sent, nil
}

// streamError explains a failed step of a Bulk stream: io.EOF from Send only
// means the peer ended the stream, and Recv returns its reason.
func streamError(step string, stream grpc.ClientStream, err error) error {
	if errors.Is(err, io.EOF) {
		if rerr := stream.RecvMsg(new(peerpb.SnapshotResponse)); rerr != nil && !errors.Is(rerr, io.EOF) {
			err = rerr
		} else {
			err = errStreamEnded
		}
	}
	return fmt.Errorf("grpcnet: %s: %w", step, fromStatus(err))
}

// receiveSnapshot runs the receiver's side of a Bulk stream: it writes the
// verified chunks to the SnapshotStore, commits, and only then delivers the
// MsgSnap to raft.
func (t *Transport) receiveSnapshot(stream grpc.BidiStreamingServer[peerpb.SnapshotRequest, peerpb.SnapshotResponse]) error {
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	sh := req.GetHeader()
	if sh == nil {
		return errMissingHeader
	}
	start := time.Now()
	if err := t.checkHeader(sh.GetHeader()); err != nil {
		t.log.Warn("grpcnet: refused snapshot", "err", err)
		return err
	}
	from := sh.GetHeader().GetFrom()
	m := sh.GetMessage()
	if m.GetType() != raftpb.MsgSnap {
		return fmt.Errorf("%w: bulk stream carries %s, not MsgSnap", errProtocol, m.GetType())
	}
	if err := t.checkMessage(m, from, transport.Bulk); err != nil {
		return err
	}
	meta := m.GetSnapshot().GetMetadata()
	size := sh.GetSize()
	if meta == nil || size < 0 {
		return fmt.Errorf("%w: snapshot header without metadata or with size %d", errProtocol, size)
	}
	if t.opts.Snapshots == nil {
		return errNoSnapshotStore
	}
	key := snapshotKey{term: meta.GetTerm(), index: meta.GetIndex()}
	if !t.receiving.add(key) {
		// Two writers on one partial file would corrupt it (a sender that
		// timed out retries while its first stream is still being torn down,
		// or a new leader sends the same snapshot); the sender retries.
		return fmt.Errorf("%w: snapshot %d/%d is being received already", errProtocol, key.term, key.index)
	}
	defer t.receiving.remove(key)

	log := t.log.With("peer", from, "term", key.term, "index", key.index, "size", size)
	w, err := t.opts.Snapshots.ReceiveSnapshot(key.term, key.index, size)
	if err != nil {
		return fmt.Errorf("grpcnet: receive snapshot %d/%d: %w", key.term, key.index, err)
	}
	defer w.Close()
	offset := w.Offset()
	if offset < 0 || offset > size {
		return fmt.Errorf("grpcnet: snapshot store holds %d bytes of a %d-byte snapshot", offset, size)
	}
	if offset > 0 {
		log.Info("grpcnet: resuming snapshot", "offset", offset)
	}
	accept := &peerpb.SnapshotResponse{Body: &peerpb.SnapshotResponse_Accept{Accept: &peerpb.SnapshotAccept{Offset: offset}}}
	if err := stream.Send(accept); err != nil {
		return err
	}
	if err := receiveChunks(stream, w, offset, size); err != nil {
		log.Warn("grpcnet: snapshot transfer failed", "err", err)
		return err
	}
	if err := w.Commit(); err != nil {
		return fmt.Errorf("grpcnet: commit snapshot %d/%d: %w", key.term, key.index, err)
	}
	h := t.handler()
	h.SnapshotTransferred(transport.SnapshotTransfer{
		Peer: from, Received: true, Term: key.term, Index: key.index, Bytes: size - offset, Duration: time.Since(start),
	})
	h.Deliver(m)
	log.Info("grpcnet: snapshot received")
	done := &peerpb.SnapshotResponse{Body: &peerpb.SnapshotResponse_Done{Done: &peerpb.SnapshotDone{}}}
	return stream.Send(done)
}

// receiveChunks writes the chunks from offset to size to w, each only after
// its checksum matched, so that the bytes kept for a resume are all good.
func receiveChunks(stream grpc.BidiStreamingServer[peerpb.SnapshotRequest, peerpb.SnapshotResponse],
	w io.Writer, offset, size int64) error {
	for off := offset; off < size; {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: snapshot ended at %d of %d bytes", errProtocol, off, size)
		}
		if err != nil {
			return err
		}
		ch := req.GetChunk()
		switch {
		case ch == nil:
			return fmt.Errorf("%w: expected a snapshot chunk", errProtocol)
		case ch.GetOffset() != off:
			return fmt.Errorf("%w: snapshot chunk at %d, expected %d", errProtocol, ch.GetOffset(), off)
		case len(ch.GetData()) == 0 || int64(len(ch.GetData())) > size-off:
			return fmt.Errorf("%w: snapshot chunk of %d bytes at %d of %d", errProtocol, len(ch.GetData()), off, size)
		case crc32.Checksum(ch.GetData(), castagnoli) != ch.GetCrc32C():
			return fmt.Errorf("%w: chunk at %d (%d bytes)", transport.ErrSnapshotCheck, off, len(ch.GetData()))
		}
		if _, err := w.Write(ch.GetData()); err != nil {
			return fmt.Errorf("grpcnet: write snapshot at %d: %w", off, err)
		}
		off += int64(len(ch.GetData()))
	}
	return nil
}

// snapshotKey names a snapshot, and so the partial file its transfers share.
type snapshotKey struct{ term, index uint64 }

// receivingSet holds the snapshot transfers in progress.
type receivingSet struct {
	mu sync.Mutex
	m  map[snapshotKey]struct{}
}

func (s *receivingSet) init() { s.m = make(map[snapshotKey]struct{}) }

func (s *receivingSet) add(k snapshotKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		return false
	}
	s.m[k] = struct{}{}
	return true
}

func (s *receivingSet) remove(k snapshotKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
}
