package kvflag

import (
	"flag"
	"strings"
	"testing"
)

func TestRegister(t *testing.T) {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	f := Register(fs)
	if err := fs.Parse([]string{"--endpoints", "a:1,b:2", "--data-dir", "/tmp/x"}); err != nil {
		t.Fatal(err)
	}
	if *f != (Flags{Endpoints: "a:1,b:2", DataDir: "/tmp/x"}) {
		t.Fatalf("flags %+v", *f)
	}
}

// TestOpenNeedsOne: exactly one of the two must be given; the refusals open
// nothing.
func TestOpenNeedsOne(t *testing.T) {
	for _, c := range []struct{ endpoints, dataDir, want string }{
		{"127.0.0.1:1", t.TempDir(), "not both"},
		{"", "", "give --endpoints (remote) or --data-dir (embedded)"},
	} {
		if db, err := Open(c.endpoints, c.dataDir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q, %q) = %v, %v; want an error with %q", c.endpoints, c.dataDir, db, err, c.want)
		}
	}
}

func TestOpenEmbedded(t *testing.T) {
	db, err := Open("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
