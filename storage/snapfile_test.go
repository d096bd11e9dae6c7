package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// go test ./storage/ -run TestSnapshotFileFormat -args -update rewrites the
// golden file, for an intended change of the snapshot format.
var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// pattern returns n deterministic, non-repeating-looking bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestSnapshotFileRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ctx  []byte
		data []byte
	}{
		{"empty", nil, nil},
		{"context only", []byte("membership"), nil},
		{"small", []byte("ctx"), []byte("hello")},
		// More than the writer's 1 MiB buffer, written in odd-sized chunks.
		{"3 MiB", pattern(1000), pattern(3<<20 + 7)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			meta := snapMeta(42, 7, 1, 2, 3)
			meta.ConfState.Learners = []uint64{9}
			w, err := s.CreateSnapshot(meta, tt.ctx)
			if err != nil {
				t.Fatal(err)
			}
			for rest := tt.data; len(rest) > 0; {
				n := min(len(rest), 100_003)
				if k, err := w.Write(rest[:n]); err != nil || k != n {
					t.Fatalf("Write = %d, %v", k, err)
				}
				rest = rest[n:]
			}
			// Nothing under the final name until Finish.
			if _, err := s.OpenSnapshotFile(7, 42); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("OpenSnapshotFile before Finish: %v", err)
			}
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			w.Abort() // after Finish: no-op
			if names := snapDirNames(t, s); !slices.Equal(names, []string{"0000000000000007-000000000000002a.snap"}) {
				t.Fatalf("snap dir holds %v", names)
			}
			for range 2 { // twice: the file is not consumed
				sf, err := s.OpenSnapshotFile(7, 42)
				if err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(sf.Metadata, meta) {
					t.Fatalf("Metadata = %v, want %v", sf.Metadata, meta)
				}
				if !bytes.Equal(sf.Context, tt.ctx) {
					t.Fatalf("Context = %q, want %q", sf.Context, tt.ctx)
				}
				if sf.DataSize() != int64(len(tt.data)) {
					t.Fatalf("DataSize = %d, want %d", sf.DataSize(), len(tt.data))
				}
				if got := readAll(t, sf.Data()); !bytes.Equal(got, tt.data) {
					t.Fatalf("data differs: %d bytes, want %d", len(got), len(tt.data))
				}
				if err := sf.Close(); err != nil {
					t.Fatal(err)
				}
			}
			// The file survives a restart (a .snap is not a leftover).
			s = reopen(t, s, Options{})
			sf, err := s.OpenSnapshotFile(7, 42)
			if err != nil {
				t.Fatal(err)
			}
			sf.Close()
		})
	}
}

// A snapshot file opened under another (term, index) than it holds is
// refused: a renamed or misplaced file is never served.
func TestOpenSnapshotFileWrongName(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	path := writeSnapFile(t, s, snapMeta(10, 2), nil, []byte("x"))
	other := s.snaps.path(2, 11)
	if err := os.Rename(path, other); err != nil {
		t.Fatal(err)
	}
	_, err := s.OpenSnapshotFile(2, 11)
	errContains(t, err, ErrCorrupt, other, "index 10")
	errContains(t, s.SetSnapshot(snapMeta(11, 2)), ErrCorrupt, other)
	if snap, _ := s.Snapshot(); snap.GetMetadata().GetIndex() != 0 {
		t.Fatalf("refused snapshot recorded: %v", snap)
	}
}

func TestSnapshotAbort(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	w, err := s.CreateSnapshot(snapMeta(5, 1), []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pattern(2 << 20)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort() // twice: no-op
	if names := snapDirNames(t, s); len(names) != 0 {
		t.Fatalf("Abort left %v", names)
	}
	if _, err := s.OpenSnapshotFile(1, 5); err == nil {
		t.Fatal("aborted snapshot opens")
	}
}

// A .tmp file left by a crash in the middle of CreateSnapshot is removed at
// Open; finished snapshots and transfers in progress are kept.
func TestOpenRemovesTempFiles(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	writeSnapFile(t, s, snapMeta(5, 1), nil, nil)
	pw, err := s.ReceiveSnapshot(1, 12, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write([]byte("part")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	closeStore(t, s)
	// What a crash in the middle of CreateSnapshot leaves behind.
	tmp := s.snaps.path(1, 9) + tmpSuffix
	if err := os.WriteFile(tmp, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, s.Dir(), Options{})
	want := []string{"0000000000000001-0000000000000005.snap", "0000000000000001-000000000000000c-0000000000000064.part"}
	slices.Sort(want)
	if names := snapDirNames(t, s); !slices.Equal(names, want) {
		t.Fatalf("snap dir after Open: %v, want %v", names, want)
	}
}

func TestSetSnapshot(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	appendEnts(t, s, index(1).terms(repeat(1, 30)...))
	write(t, s, true, Update{HardState: hardState(1, 1, 3)})
	for _, i := range []uint64{5, 10, 15, 20} {
		writeSnapFile(t, s, snapMeta(i, 1, 1), nil, []byte{byte(i)})
	}
	for _, p := range []struct {
		idx  uint64
		size int64
	}{{8, 100}, {10, 100}, {12, 100}} {
		pw, err := s.ReceiveSnapshot(1, p.idx, p.size)
		if err != nil {
			t.Fatal(err)
		}
		pw.Close()
	}
	// A snapshot file that is not there is refused and nothing changes.
	err := s.SetSnapshot(snapMeta(25, 1, 1))
	errContains(t, err, fs.ErrNotExist, s.snaps.path(1, 25))

	if err := s.SetSnapshot(snapMeta(10, 1, 1, 2)); err != nil {
		t.Fatal(err)
	}
	// Older snapshots and transfers at or below 10 are pruned; newer ones stay.
	want := []string{
		"0000000000000001-000000000000000a.snap",
		"0000000000000001-000000000000000c-0000000000000064.part",
		"0000000000000001-000000000000000f.snap",
		"0000000000000001-0000000000000014.snap",
	}
	if names := snapDirNames(t, s); !slices.Equal(names, want) {
		t.Fatalf("after SetSnapshot(10): %v, want %v", names, want)
	}
	snap, _ := s.Snapshot()
	if !proto.Equal(snap.GetMetadata(), snapMeta(10, 1, 1, 2)) {
		t.Fatalf("Snapshot() = %v", snap)
	}
	// SetSnapshot raises the commit index to the snapshot and does not
	// compact the log.
	if st := s.Status(); st != (Status{FirstIndex: 1, LastIndex: 30, SnapshotIndex: 10, Commit: 10}) {
		t.Fatalf("Status = %+v", st)
	}
	// An older snapshot than the latest changes nothing.
	if err := s.SetSnapshot(snapMeta(10, 1, 9)); err != nil {
		t.Fatal(err)
	}
	if snap, _ := s.Snapshot(); !proto.Equal(snap.GetMetadata(), snapMeta(10, 1, 1, 2)) {
		t.Fatalf("Snapshot() after an older SetSnapshot = %v", snap)
	}
	if err := s.SetSnapshot(snapMeta(20, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if names := snapDirNames(t, s); !slices.Equal(names, []string{"0000000000000001-0000000000000014.snap"}) {
		t.Fatalf("after SetSnapshot(20): %v", names)
	}
	s = reopen(t, s, Options{})
	if st := s.Status(); st != (Status{FirstIndex: 1, LastIndex: 30, SnapshotIndex: 20, Commit: 20}) {
		t.Fatalf("Status after restart = %+v", st)
	}
}

// Installing a snapshot through Write prunes older snapshot files too.
func TestWriteSnapshotPrunes(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for _, i := range []uint64{5, 10} {
		writeSnapFile(t, s, snapMeta(i, 1, 1), nil, nil)
	}
	meta := snapMeta(10, 1, 1)
	write(t, s, true, Update{Snapshot: &raftpb.Snapshot{Metadata: meta}})
	if names := snapDirNames(t, s); !slices.Equal(names, []string{"0000000000000001-000000000000000a.snap"}) {
		t.Fatalf("after installing 10: %v", names)
	}
}

// A corrupt file is refused by SetSnapshot and never becomes the latest.
func TestSetSnapshotCorrupt(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	appendEnts(t, s, index(1).terms(1, 1, 1, 1, 1))
	path := writeSnapFile(t, s, snapMeta(5, 1), nil, pattern(1000))
	flipByte(t, path, 500)
	errContains(t, s.SetSnapshot(snapMeta(5, 1)), ErrCorrupt, path)
	if st := s.Status(); st.SnapshotIndex != 0 || st.Commit != 0 {
		t.Fatalf("Status after refused SetSnapshot = %+v", st)
	}
}

// encodeSnapshotFile writes the documented format by hand. It pins the
// on-disk format: CreateSnapshot must produce exactly these bytes.
func encodeSnapshotFile(t testing.TB, meta *raftpb.SnapshotMetadata, ctx, data []byte) []byte {
	t.Helper()
	mb, err := proto.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	b = append(b, "CAIRNSNP"...)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(mb)))
	b = append(b, mb...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ctx)))
	b = append(b, ctx...)
	b = append(b, data...)
	return sealSnapshotFile(b, uint64(len(data)))
}

// sealSnapshotFile appends the trailer to body: dataLen, the CRC-32C of body
// and dataLen, and the end marker.
func sealSnapshotFile(body []byte, dataLen uint64) []byte {
	b := binary.LittleEndian.AppendUint64(slices.Clone(body), dataLen)
	b = binary.LittleEndian.AppendUint32(b, crc32c(b))
	return append(b, "CAIRNEND"...)
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

func TestSnapshotFileFormat(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	meta := snapMeta(0x1234, 3, 1, 2, 3)
	path := writeSnapFile(t, s, meta, []byte("context"), []byte("state machine data"))
	got := readFile(t, path)
	if want := encodeSnapshotFile(t, meta, []byte("context"), []byte("state machine data")); !bytes.Equal(got, want) {
		t.Fatalf("CreateSnapshot wrote\n%x\nthe documented format is\n%x", got, want)
	}
	golden := filepath.Join("testdata", "snapshot-v1.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A file written by an earlier build still opens, with the same content.
	if want := readFile(t, golden); !bytes.Equal(got, want) {
		t.Fatalf("the snapshot format changed: %s differs (rerun with -update only if that is intended)", golden)
	}
}

// A transfer interrupted half-way resumes from the bytes kept: the second
// ReceiveSnapshot reports them as its Offset, and the committed file is
// byte-for-byte the sender's.
func TestReceiveSnapshotResume(t *testing.T) {
	src := openStore(t, t.TempDir(), Options{})
	dst := openStore(t, t.TempDir(), Options{})
	meta := snapMeta(100, 4, 1, 2, 3)
	srcPath := writeSnapFile(t, src, meta, []byte("ctx"), pattern(1<<20+333))
	want := readFile(t, srcPath)

	r, err := src.OpenSnapshot(4, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(want)) {
		t.Fatalf("reader Size = %d, file has %d", r.Size(), len(want))
	}

	w, err := dst.ReceiveSnapshot(4, 100, r.Size())
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("first attempt Offset = %d", w.Offset())
	}
	half := r.Size() / 2
	if n, err := io.CopyN(w, r, half); err != nil || n != half {
		t.Fatalf("copy first half: %d, %v", n, err)
	}
	// Too early: the transfer is incomplete and stays resumable.
	errContains(t, w.Commit(), nil, "received")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil { // twice: no-op
		t.Fatal(err)
	}

	w, err = dst.ReceiveSnapshot(4, 100, r.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Offset() != half {
		t.Fatalf("resumed Offset = %d, want %d", w.Offset(), half)
	}
	if _, err := r.Seek(w.Offset(), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if w.Offset() != r.Size() {
		t.Fatalf("Offset after copy = %d", w.Offset())
	}
	// Not one byte past the announced size.
	if n, err := w.Write([]byte{0}); err == nil || n != 0 {
		t.Fatalf("Write past the size = %d, %v", n, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	dstPath := dst.snaps.path(4, 100)
	if got := readFile(t, dstPath); !bytes.Equal(got, want) {
		t.Fatal("received file differs from the source")
	}
	if names := snapDirNames(t, dst); !slices.Equal(names, []string{filepath.Base(dstPath)}) {
		t.Fatalf("dst snap dir: %v", names)
	}
	sf, err := dst.OpenSnapshotFile(4, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if !proto.Equal(sf.Metadata, meta) || string(sf.Context) != "ctx" {
		t.Fatalf("received snapshot: %v %q", sf.Metadata, sf.Context)
	}
	// It can be installed and survives a restart.
	write(t, dst, true, Update{Snapshot: &raftpb.Snapshot{Metadata: meta}})
	dst = reopen(t, dst, Options{})
	checkLog(t, dst, 100, 4)
}

func TestReceiveSnapshotOversizedPartRestarts(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	part := s.snaps.partPath(2, 9, 50)
	if err := os.WriteFile(part, pattern(60), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := s.ReceiveSnapshot(2, 9, 50)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Offset() != 0 {
		t.Fatalf("Offset = %d with a .part larger than the snapshot, want 0", w.Offset())
	}
	if st, err := os.Stat(part); err != nil || st.Size() != 0 {
		t.Fatalf("oversized .part not emptied: %v, %v", st, err)
	}
	// The writer starts at byte 0 of the file.
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, part); string(got) != "abc" {
		t.Fatalf(".part holds %q", got)
	}
}

// A part of exactly the announced size can be committed without more data:
// an interrupted Commit is retried as is.
func TestReceiveSnapshotCompletePart(t *testing.T) {
	src := openStore(t, t.TempDir(), Options{})
	dst := openStore(t, t.TempDir(), Options{})
	body := readFile(t, writeSnapFile(t, src, snapMeta(3, 1), nil, []byte("data")))
	if err := os.WriteFile(dst.snaps.partPath(1, 3, int64(len(body))), body, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := dst.ReceiveSnapshot(1, 3, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Offset() != int64(len(body)) {
		t.Fatalf("Offset = %d, want %d", w.Offset(), len(body))
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestReceiveSnapshotBadSize(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for _, size := range []int64{0, -1} {
		if _, err := s.ReceiveSnapshot(1, 1, size); err == nil {
			t.Errorf("ReceiveSnapshot with size %d succeeded", size)
		}
	}
}

// A transfer whose bytes fail verification is not installed, and its .part
// is removed so the next attempt starts from zero.
func TestReceiveSnapshotCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		term    uint64 // announced; the file holds term 4, index 100
		index   uint64
		corrupt func(b []byte)
		parts   []string
	}{
		{"flipped data byte", 4, 100, func(b []byte) { b[len(b)/2] ^= 0x10 }, []string{"checksum"}},
		{"flipped header byte", 4, 100, func(b []byte) { b[9] ^= 0x01 }, []string{"checksum"}},
		{"flipped trailer", 4, 100, func(b []byte) { b[len(b)-3] ^= 0x01 }, []string{"end marker"}},
		{"other index", 4, 101, nil, []string{"index 100", "index 101"}},
		{"other term", 5, 100, nil, []string{"term 4", "term 5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := openStore(t, t.TempDir(), Options{})
			dst := openStore(t, t.TempDir(), Options{})
			body := readFile(t, writeSnapFile(t, src, snapMeta(100, 4, 1), []byte("ctx"), pattern(10_000)))
			if tt.corrupt != nil {
				tt.corrupt(body)
			}
			w, err := dst.ReceiveSnapshot(tt.term, tt.index, int64(len(body)))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if _, err := w.Write(body); err != nil {
				t.Fatal(err)
			}
			part := dst.snaps.partPath(tt.term, tt.index, int64(len(body)))
			errContains(t, w.Commit(), ErrCorrupt, append(tt.parts, part)...)
			if names := snapDirNames(t, dst); len(names) != 0 {
				t.Fatalf("failed transfer left %v", names)
			}
			if _, err := dst.OpenSnapshotFile(tt.term, tt.index); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("OpenSnapshotFile after a failed transfer: %v", err)
			}
			w2, err := dst.ReceiveSnapshot(tt.term, tt.index, int64(len(body)))
			if err != nil {
				t.Fatal(err)
			}
			defer w2.Close()
			if w2.Offset() != 0 {
				t.Fatalf("retry after a failed Commit resumes at %d, want 0", w2.Offset())
			}
		})
	}
}

func TestOpenSnapshotMissing(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	_, err := s.OpenSnapshot(1, 1)
	errContains(t, err, fs.ErrNotExist, s.snaps.path(1, 1))
	if !strings.Contains(err.Error(), "storage:") {
		t.Fatalf("error %q lacks the package prefix", err)
	}
}

// scribbleFS is a filesystem whose files' Write modifies the caller's
// buffer after copying it, as vfs.File's contract allows ("Unlike the
// specification for io.Writer.Write(), the vfs.File.Write() method *is*
// allowed to modify the slice passed in") and as Pebble's MemFS does in race
// builds.
type scribbleFS struct{ vfs.FS }

type scribbleFile struct{ vfs.File }

func (f scribbleFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	for i := range p {
		p[i] = 0xcc // not an involution: MemFS itself flips bits in race builds
	}
	return n, err
}

func (fs scribbleFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return scribbleFile{f}, nil
}

func (fs scribbleFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return scribbleFile{f}, nil
}

func (fs scribbleFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	if err != nil {
		return nil, err
	}
	return scribbleFile{f}, nil
}

// Snapshot files are written correctly on any vfs.FS, including one whose
// Write modifies its argument: the checksum covers the bytes written, and
// the state machine's buffers passed to SnapshotWriter.Write are left as
// they were (SnapshotWriter is an io.Writer, whose contract forbids
// modifying them).
func TestSnapshotWriterOnScribblingFS(t *testing.T) {
	fs := scribbleFS{vfs.NewMem()}
	s := openStore(t, "/data", Options{FS: fs})
	for i, size := range []int{0, 100, 3<<20 + 1} { // the last one bypasses the writer's buffer
		meta := snapMeta(uint64(10+i), 1, 1)
		data := pattern(size)
		ctx := []byte("context")
		w, err := s.CreateSnapshot(meta, ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, pattern(size)) || string(ctx) != "context" {
			t.Fatalf("%d bytes: SnapshotWriter modified the caller's buffers", size)
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		sf, err := s.OpenSnapshotFile(1, uint64(10+i))
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if got := readAll(t, sf.Data()); !bytes.Equal(got, data) || string(sf.Context) != "context" {
			t.Errorf("%d bytes: read back %d bytes, context %q", size, len(got), sf.Context)
		}
		sf.Close()
	}
	// A transfer into the same filesystem is byte-identical too.
	src := openStore(t, t.TempDir(), Options{})
	body := readFile(t, writeSnapFile(t, src, snapMeta(40, 2, 1), nil, pattern(10_000)))
	sent := bytes.Clone(body)
	pw, err := s.ReceiveSnapshot(2, 40, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	if _, err := pw.Write(sent); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sent, body) {
		t.Fatal("ReceiveSnapshot's writer modified the caller's buffer")
	}
	if err := pw.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestInstallWithoutSnapshotFileChangesNothing(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	appendEnts(t, s, index(1).terms(1, 1, 1))
	err := s.Write([]Update{{Snapshot: &raftpb.Snapshot{Metadata: snapMeta(10, 2, 1)}}}, true)
	if err == nil || !strings.Contains(err.Error(), "0000000000000002-000000000000000a.snap") {
		t.Fatalf("installing a snapshot with no file: %v, want an error naming the file", err)
	}
	checkLog(t, s, 0, 0, 1, 1, 1)
	s = reopen(t, s, Options{})
	checkLog(t, s, 0, 0, 1, 1, 1)
}
