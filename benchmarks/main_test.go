package benchmarks

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a benchmark leaves a goroutine behind: every
// node, watcher and client it starts must be stopped by its cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
