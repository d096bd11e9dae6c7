// Package kvflag is how the examples reach a database: embedded, opened in a
// directory (--data-dir, cairn.Open), or remote, connected to a cluster
// (--endpoints, client.Connect). Either way an example gets a cairn.KV and
// runs the same code on it.
package kvflag

import (
	"errors"
	"flag"
	"strings"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/client"
)

// Flags are the values of --endpoints and --data-dir.
type Flags struct {
	Endpoints string // comma-separated client endpoints of a cluster
	DataDir   string // the directory of an embedded database
}

// Register defines --endpoints and --data-dir on fs (flag.CommandLine in a
// main); their values are in the Flags returned once fs is parsed.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Endpoints, "endpoints", "", "comma-separated client endpoints of a cairn cluster")
	fs.StringVar(&f.DataDir, "data-dir", "", "run an embedded database in this directory instead")
	return f
}

// Open opens the database that exactly one of endpoints (remote) and dataDir
// (embedded) names. It is the one line that differs between the two.
func Open(endpoints, dataDir string) (cairn.KV, error) {
	switch {
	case endpoints != "" && dataDir != "":
		return nil, errors.New("give --endpoints or --data-dir, not both")
	case endpoints != "":
		return client.Connect(strings.Split(endpoints, ",")...)
	case dataDir != "":
		return cairn.Open(dataDir)
	}
	return nil, errors.New("give --endpoints (remote) or --data-dir (embedded)")
}
