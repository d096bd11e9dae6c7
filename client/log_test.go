package client

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestSlogCore: clientv3's zap logs reach the slog handler with their
// level, message, logger name and fields; levels below the handler's are
// dropped.
func TestSlogCore(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})
	zl := zap.New(newSlogCore(h)).Named("etcd-client").With(zap.String("endpoint", "e1"))
	zl.Debug("hidden")
	zl.Warn("retrying", zap.Int("attempt", 2), zap.Error(errors.New("unavailable")))
	out := buf.String()
	for _, want := range []string{"level=WARN", "msg=retrying", "logger=etcd-client", "endpoint=e1", "attempt=2", "error=unavailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("debug record logged at info: %q", out)
	}
}
