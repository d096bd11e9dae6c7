package storage

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeEntry feeds arbitrary bytes to the decoder of log records. It
// must return an error or an entry whose index matches its key, never panic.
//
//	go test ./storage/ -run '^$' -fuzz FuzzDecodeEntry -fuzztime 30s
func FuzzDecodeEntry(f *testing.F) {
	valid := func(e *raftpb.Entry) []byte {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		return seal(b)
	}
	f.Add(uint64(5), valid(entry(5, 2, "payload")))
	f.Add(uint64(5), valid(&raftpb.Entry{Index: new(uint64(5)), Term: new(uint64(2)), Type: new(raftpb.EntryType_EntryConfChangeV2)}))
	f.Add(uint64(6), valid(entry(5, 2, "wrong key")))
	f.Add(uint64(0), valid(&raftpb.Entry{}))
	f.Add(uint64(1), []byte{})
	f.Add(uint64(1), []byte{1, 2, 3})
	f.Add(uint64(1), seal(nil))
	f.Add(uint64(1), seal([]byte{0xff, 0xff, 0xff, 0xff}))
	f.Add(uint64(1), seal([]byte{0x22, 0x80, 0x80, 0x80, 0x80, 0x08})) // Data with an absurd length
	f.Fuzz(func(t *testing.T, idx uint64, v []byte) {
		orig := bytes.Clone(v)
		payload, uerr := unseal(v)
		if uerr == nil && !bytes.Equal(seal(payload), v) {
			t.Fatalf("unseal accepted %x, which seal does not produce", v)
		}
		e, err := decodeEntry(idx, v)
		if !bytes.Equal(v, orig) {
			t.Fatal("decodeEntry modified its input")
		}
		if uerr != nil && err == nil {
			t.Fatalf("decodeEntry accepted %x that unseal refuses: %v", v, uerr)
		}
		if err != nil {
			if e != nil {
				t.Fatalf("decodeEntry returned an entry with error %v", err)
			}
			return
		}
		if e.GetIndex() != idx {
			t.Fatalf("decodeEntry(%d) returned index %d", idx, e.GetIndex())
		}
	})
}

// FuzzVerifySnapshot feeds arbitrary files to the snapshot verifier that Open,
// OpenSnapshotFile and a transfer's Commit rely on. With seal set, the input
// is given a correct trailer (length and checksum), so that the parser behind
// the checksum is exercised as well. The verifier must return an error or a
// file whose parts fit the file exactly, never panic.
//
//	go test ./storage/ -run '^$' -fuzz FuzzVerifySnapshot -fuzztime 30s
func FuzzVerifySnapshot(f *testing.F) {
	good := encodeSnapshotFile(f, snapMeta(10, 2, 1, 2, 3), []byte("ctx"), []byte("data"))
	body := good[:len(good)-snapTrailer]
	f.Add(good, false, uint64(0))
	f.Add(body, true, uint64(4))
	f.Add(good[:len(good)-1], false, uint64(0))
	f.Add([]byte{}, false, uint64(0))
	f.Add([]byte("CAIRNSNP"), true, uint64(0))
	f.Add(bytes.Repeat([]byte{0xff}, 64), true, uint64(0))
	f.Add(body, true, uint64(5))                   // dataLen disagrees with the framing
	f.Add(body, true, ^uint64(0))                  // dataLen negative as int64
	f.Add(overlappingSnapshot(), false, uint64(0)) // context reaching into the trailer
	f.Fuzz(func(t *testing.T, in []byte, sealIt bool, dataLen uint64) {
		file := in
		if sealIt {
			file = sealSnapshotFile(in, dataLen)
		}
		fs := vfs.NewMem()
		writeMemFile(t, fs, "f.snap", file)
		sf, err := openVerified(fs, "f.snap")
		if err != nil {
			return
		}
		defer sf.Close()
		checkSnapshotFraming(t, file, sf)
	})
}

// checkSnapshotFraming asserts what a verified snapshot file promises: the
// header, the data and the trailer tile the file exactly, and Data reads
// DataSize bytes, the ones between the header and the trailer.
func checkSnapshotFraming(t *testing.T, file []byte, sf *SnapshotFile) {
	t.Helper()
	if sf.DataSize() < 0 {
		t.Fatalf("verified file has data size %d", sf.DataSize())
	}
	metaLen := int64(binary.LittleEndian.Uint32(file[12:]))
	ctxLen := int64(len(sf.Context))
	dataOff := 20 + metaLen + ctxLen
	if dataOff+sf.DataSize()+snapTrailer != int64(len(file)) {
		t.Fatalf("header %d + data %d + trailer %d != file size %d", dataOff, sf.DataSize(), snapTrailer, len(file))
	}
	got := readAll(t, sf.Data())
	if !bytes.Equal(got, file[dataOff:dataOff+sf.DataSize()]) {
		t.Fatalf("Data() read %d bytes that are not the file's data", len(got))
	}
	mb, err := proto.Marshal(sf.Metadata)
	if err != nil || int64(len(mb)) > metaLen {
		t.Fatalf("metadata re-encodes to %d bytes (%v), header says %d", len(mb), err, metaLen)
	}
}

func writeMemFile(t testing.TB, fs vfs.FS, name string, b []byte) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	// vfs.File.Write may modify its argument (MemFS does, in race builds).
	if _, err := f.Write(bytes.Clone(b)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// overlappingSnapshot is a file with a correct checksum whose context length
// reaches 5 bytes into the trailer. Its framing equation only holds with a
// data length of -5.
func overlappingSnapshot() []byte {
	mb, _ := proto.Marshal(snapMeta(10, 2, 1))
	var b []byte
	b = append(b, "CAIRNSNP"...)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(mb)))
	b = append(b, mb...)
	b = binary.LittleEndian.AppendUint32(b, 5) // the context is the first 5 trailer bytes
	minus5 := int64(-5)
	return sealSnapshotFile(b, uint64(minus5))
}

// A verified snapshot file never reports a negative data size: a file whose
// header reaches into its trailer is refused, even with a valid checksum.
// (A peer's snapshot passes this check in Commit before it is installed.)
func TestVerifyRefusesHeaderOverlappingTrailer(t *testing.T) {
	file := overlappingSnapshot()
	path := filepath.Join(t.TempDir(), "f.snap")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	sf, err := openVerified(vfs.Default, path)
	if err == nil {
		defer sf.Close()
		t.Fatalf("verified a file whose context overlaps the trailer: data size %d", sf.DataSize())
	}
	errContains(t, err, ErrCorrupt, path)

	// Through the transport: such a file is not installed.
	s := openStore(t, t.TempDir(), Options{})
	w, err := s.ReceiveSnapshot(2, 10, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(file); err != nil {
		t.Fatal(err)
	}
	errContains(t, w.Commit(), ErrCorrupt)
}

// The verifier does not trust length fields before checking them against
// the file: a small file that claims a huge metadata or context fails
// without reading past the file.
func TestVerifyRefusesLengthsBeyondFile(t *testing.T) {
	for _, tt := range []struct {
		name string
		body []byte
	}{
		{"metadata", append([]byte("CAIRNSNP\x01\x00\x00\x00"), binary.LittleEndian.AppendUint32(nil, 1<<20)...)},
		{"context", append([]byte("CAIRNSNP\x01\x00\x00\x00\x00\x00\x00\x00"), binary.LittleEndian.AppendUint32(nil, 1<<20)...)},
		{"metadata over the limit", append([]byte("CAIRNSNP\x01\x00\x00\x00"), binary.LittleEndian.AppendUint32(nil, 1<<31)...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.snap")
			if err := os.WriteFile(path, sealSnapshotFile(append(tt.body, make([]byte, 8)...), 0), 0o644); err != nil {
				t.Fatal(err)
			}
			sf, err := openVerified(vfs.Default, path)
			if err == nil {
				sf.Close()
				t.Fatal("verified")
			}
			errContains(t, err, ErrCorrupt, path)
		})
	}
}
