package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Snapshot file format (all integers little-endian):
//
//	"CAIRNSNP" | version u32 | metaLen u32 | SnapshotMetadata | ctxLen u32 | context
//	| state machine data ...
//	| dataLen u64 | crc32c u32 of every byte before it | "CAIRNEND"
const (
	snapMagic     = "CAIRNSNP"
	snapEndMagic  = "CAIRNEND"
	snapVersion   = 1
	snapTrailer   = 8 + 4 + 8
	snapSuffix    = ".snap"
	partSuffix    = ".part"
	tmpSuffix     = ".tmp"
	maxHeaderPart = 64 << 20
)

// snapDir manages the snapshot files of a node.
type snapDir struct {
	fs  vfs.FS
	dir string
}

func openSnapDir(fs vfs.FS, dir string) (*snapDir, error) {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create snapshot dir %s: %w", dir, err)
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: read snapshot dir %s: %w", dir, err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, tmpSuffix) {
			fs.Remove(fs.PathJoin(dir, n)) // a snapshot being written when the process died
		}
	}
	return &snapDir{fs: fs, dir: dir}, nil
}

func (d *snapDir) path(term, index uint64) string {
	return d.fs.PathJoin(d.dir, fmt.Sprintf("%016x-%016x%s", term, index, snapSuffix))
}

func (d *snapDir) partPath(term, index uint64, size int64) string {
	return d.fs.PathJoin(d.dir, fmt.Sprintf("%016x-%016x-%016x%s", term, index, size, partSuffix))
}

// SnapshotFile is an open, verified snapshot file.
type SnapshotFile struct {
	Metadata *raftpb.SnapshotMetadata
	// Context is the opaque bytes the creator stored beside the metadata.
	Context []byte
	f       vfs.File
	data    *io.SectionReader
}

// Data returns a reader over the state machine's data.
func (f *SnapshotFile) Data() io.Reader { return f.data }

// DataSize is the size of the state machine's data in bytes.
func (f *SnapshotFile) DataSize() int64 { return f.data.Size() }

// Close closes the file.
func (f *SnapshotFile) Close() error { return f.f.Close() }

// openVerified opens path and checks its framing and checksum.
func openVerified(fs vfs.FS, path string) (*SnapshotFile, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("storage: open snapshot %s: %w", path, err)
	}
	sf, err := verifyFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: snapshot %s: %v", ErrCorrupt, path, err)
	}
	return sf, nil
}

func verifyFile(f vfs.File) (*SnapshotFile, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < int64(len(snapMagic))+12+snapTrailer {
		return nil, fmt.Errorf("truncated: %d bytes", size)
	}
	var trailer [snapTrailer]byte
	if _, err := f.ReadAt(trailer[:], size-snapTrailer); err != nil {
		return nil, fmt.Errorf("read trailer: %w", err)
	}
	if string(trailer[12:]) != snapEndMagic {
		return nil, errors.New("truncated: no end marker")
	}
	want := binary.LittleEndian.Uint32(trailer[8:12])
	h := crc32.New(crcTable)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size-12-8)); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	h.Write(trailer[0:8])
	if h.Sum32() != want {
		return nil, errBadChecksum
	}
	dataLen64 := binary.LittleEndian.Uint64(trailer[0:8])
	if dataLen64 > uint64(size) {
		return nil, fmt.Errorf("framing: data length %d exceeds the file size %d", dataLen64, size)
	}
	dataLen := int64(dataLen64)
	r := bufio.NewReader(io.NewSectionReader(f, 0, size))
	var head [len(snapMagic) + 8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	if string(head[:len(snapMagic)]) != snapMagic {
		return nil, errors.New("not a snapshot file (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(head[8:]); v != snapVersion {
		return nil, fmt.Errorf("unsupported version %d", v)
	}
	metaLen := int64(binary.LittleEndian.Uint32(head[12:]))
	if metaLen > maxHeaderPart {
		return nil, fmt.Errorf("metadata length %d too large", metaLen)
	}
	metaBytes := make([]byte, metaLen)
	if _, err := io.ReadFull(r, metaBytes); err != nil {
		return nil, err
	}
	meta := &raftpb.SnapshotMetadata{}
	if err := proto.Unmarshal(metaBytes, meta); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	ctxLen := int64(binary.LittleEndian.Uint32(l[:]))
	if ctxLen > maxHeaderPart {
		return nil, fmt.Errorf("context length %d too large", ctxLen)
	}
	ctx := make([]byte, ctxLen)
	if _, err := io.ReadFull(r, ctx); err != nil {
		return nil, err
	}
	dataOff := int64(len(head)) + metaLen + 4 + ctxLen
	if dataOff+dataLen+snapTrailer != size {
		return nil, fmt.Errorf("framing: header %d + data %d + trailer %d != file size %d", dataOff, dataLen, snapTrailer, size)
	}
	return &SnapshotFile{Metadata: meta, Context: ctx, f: f, data: io.NewSectionReader(f, dataOff, dataLen)}, nil
}

// verify checks that the snapshot file for (term, index) exists and is intact.
func (d *snapDir) verify(term, index uint64) error {
	sf, err := d.open(term, index)
	if err != nil {
		return err
	}
	return sf.Close()
}

func (d *snapDir) open(term, index uint64) (*SnapshotFile, error) {
	path := d.path(term, index)
	sf, err := openVerified(d.fs, path)
	if err != nil {
		return nil, err
	}
	if sf.Metadata.GetTerm() != term || sf.Metadata.GetIndex() != index {
		sf.Close()
		return nil, fmt.Errorf("%w: snapshot %s holds term %d index %d", ErrCorrupt, path, sf.Metadata.GetTerm(), sf.Metadata.GetIndex())
	}
	return sf, nil
}

// prune removes snapshot files older than (term, index), and transfers that
// were interrupted at or below index.
func (d *snapDir) prune(index uint64) error {
	names, err := d.fs.List(d.dir)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		var t, i, sz uint64
		switch {
		case strings.HasSuffix(name, snapSuffix):
			if _, err := fmt.Sscanf(name, "%016x-%016x.snap", &t, &i); err == nil && i < index {
				d.fs.Remove(d.fs.PathJoin(d.dir, name))
			}
		case strings.HasSuffix(name, partSuffix):
			if _, err := fmt.Sscanf(name, "%016x-%016x-%016x.part", &t, &i, &sz); err == nil && i <= index {
				d.fs.Remove(d.fs.PathJoin(d.dir, name))
			}
		}
	}
	return nil
}

// SnapshotWriter writes a new snapshot file: the header goes out on
// creation, the state machine writes its data, and Finish seals it.
type SnapshotWriter struct {
	dir      *snapDir
	meta     *raftpb.SnapshotMetadata
	tmp      string
	f        vfs.File
	w        *bufio.Writer
	crc      hash.Hash32
	dataLen  int64
	finished bool
}

// CreateSnapshot starts a snapshot file for meta. The context bytes are
// stored beside the metadata and returned by OpenSnapshotFile.
func (s *Store) CreateSnapshot(meta *raftpb.SnapshotMetadata, context []byte) (*SnapshotWriter, error) {
	final := s.snaps.path(meta.GetTerm(), meta.GetIndex())
	tmp := final + tmpSuffix
	f, err := s.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("storage: create snapshot %s: %w", tmp, err)
	}
	w := &SnapshotWriter{dir: s.snaps, meta: meta, tmp: tmp, f: f, crc: crc32.New(crcTable)}
	w.w = bufio.NewWriterSize(io.MultiWriter(w.crc, &privateWriter{f: f}), 1<<20)
	metaBytes, err := proto.Marshal(meta)
	if err != nil {
		w.Abort()
		return nil, fmt.Errorf("storage: encode snapshot metadata: %w", err)
	}
	var hdr bytes.Buffer
	hdr.WriteString(snapMagic)
	binary.Write(&hdr, binary.LittleEndian, uint32(snapVersion))
	binary.Write(&hdr, binary.LittleEndian, uint32(len(metaBytes)))
	hdr.Write(metaBytes)
	binary.Write(&hdr, binary.LittleEndian, uint32(len(context)))
	hdr.Write(context)
	if _, err := w.w.Write(hdr.Bytes()); err != nil {
		w.Abort()
		return nil, fmt.Errorf("storage: write snapshot %s: %w", tmp, err)
	}
	return w, nil
}

// privateWriter hands f.Write a copy of each buffer: vfs.File.Write may
// modify its argument, which must reach the checksum intact and, when bufio
// passes a large write through, belongs to the state machine.
type privateWriter struct {
	f   vfs.File
	buf []byte
}

func (w *privateWriter) Write(p []byte) (n int, err error) {
	for len(p) > 0 {
		c := min(len(p), 1<<20)
		w.buf = append(w.buf[:0], p[:c]...)
		m, err := w.f.Write(w.buf)
		n += m
		if err != nil {
			return n, err
		}
		p = p[c:]
	}
	return n, nil
}

// Write appends state machine data.
func (w *SnapshotWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.dataLen += int64(n)
	return n, err
}

// Finish writes the trailer, syncs the file and gives it its final name.
func (w *SnapshotWriter) Finish() error {
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], uint64(w.dataLen))
	if _, err := w.w.Write(t[:]); err != nil {
		w.Abort()
		return fmt.Errorf("storage: write snapshot %s: %w", w.tmp, err)
	}
	if err := w.w.Flush(); err != nil {
		w.Abort()
		return fmt.Errorf("storage: write snapshot %s: %w", w.tmp, err)
	}
	var end [12]byte
	binary.LittleEndian.PutUint32(end[:4], w.crc.Sum32())
	copy(end[4:], snapEndMagic)
	if _, err := w.f.Write(end[:]); err != nil {
		w.Abort()
		return fmt.Errorf("storage: write snapshot %s: %w", w.tmp, err)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("storage: sync snapshot %s: %w", w.tmp, err)
	}
	if err := w.f.Close(); err != nil {
		w.Abort()
		return fmt.Errorf("storage: close snapshot %s: %w", w.tmp, err)
	}
	final := strings.TrimSuffix(w.tmp, tmpSuffix)
	if err := w.dir.fs.Rename(w.tmp, final); err != nil {
		w.dir.fs.Remove(w.tmp)
		return fmt.Errorf("storage: rename snapshot %s: %w", w.tmp, err)
	}
	w.finished = true
	return w.dir.sync()
}

// Abort discards the unfinished file.
func (w *SnapshotWriter) Abort() {
	if w.finished {
		return
	}
	w.f.Close()
	w.dir.fs.Remove(w.tmp)
	w.finished = true
}

// OpenSnapshotFile opens the verified snapshot file for (term, index).
func (s *Store) OpenSnapshotFile(term, index uint64) (*SnapshotFile, error) {
	return s.snaps.open(term, index)
}

// SetSnapshot records that the snapshot file for meta is complete and is now
// the node's latest snapshot, and removes older snapshot files. It does not
// compact the log; see Compact.
func (s *Store) SetSnapshot(meta *raftpb.SnapshotMetadata) error {
	if err := s.snaps.verify(meta.GetTerm(), meta.GetIndex()); err != nil {
		return err
	}
	meta = proto.CloneOf(meta)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	if meta.GetIndex() <= s.mu.snapshot.GetMetadata().GetIndex() {
		s.mu.Unlock()
		return nil
	}
	hs := raiseCommit(s.mu.hardState, meta.GetIndex())
	s.mu.Unlock()
	snap := &raftpb.Snapshot{Metadata: meta}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(snapshotKey, sealProto(snap), nil); err != nil {
		return err
	}
	if err := b.Set(hardStateKey, sealProto(hs), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("storage: record snapshot %d in %s: %w", meta.GetIndex(), s.dbDir, err)
	}
	s.mu.Lock()
	s.mu.snapshot = snap
	s.mu.hardState = hs
	s.mu.Unlock()
	return s.snaps.prune(meta.GetIndex())
}

// sync makes the directory's entries (creations, renames) durable.
func (d *snapDir) sync() error { return syncDir(d.fs, d.dir) }

func syncDir(fs vfs.FS, dir string) error {
	f, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("storage: open dir %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("storage: sync dir %s: %w", dir, err)
	}
	return nil
}
