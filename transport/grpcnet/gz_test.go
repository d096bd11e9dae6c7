package grpcnet
import ("testing";"compress/gzip";"io";"time")
func TestGzipSpeed(t *testing.T){
	data := snapshotData(8<<20, 1)
	st := time.Now()
	w := gzip.NewWriter(io.Discard)
	for off := 0; off < len(data); off += 1<<20 { w.Write(data[off:off+1<<20]) }
	w.Close()
	t.Logf("8MiB gzip in %v", time.Since(st))
}
