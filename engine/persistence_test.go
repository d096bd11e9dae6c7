package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cairn-db/cairn/engine"
)

func TestPersistenceConfigFromTOML(t *testing.T) {
	cases := []struct {
		in      string
		want    engine.PersistenceConfig
		wantErr string
	}{
		{
			in:   `strategy = "DiskFirst"` + "\n" + `flush_policy = "Immediate"`,
			want: engine.PersistenceConfig{Strategy: engine.DiskFirst, FlushPolicy: engine.FlushPolicy{Immediate: true}},
		},
		{
			in:   `strategy = "MemFirst"` + "\n" + `flush_policy = { Batch = { threshold = 1000, interval_ms = 100 } }`,
			want: engine.PersistenceConfig{Strategy: engine.MemFirst, FlushPolicy: engine.FlushPolicy{Threshold: 1000, Interval: 100 * time.Millisecond}},
		},
		{in: `strategy = "Sometimes"`, wantErr: `strategy = "Sometimes"`},
		{in: `flush_policy = "Later"`, wantErr: `flush_policy = "Later"`},
		{in: `flush_policy = { Batch = { threshold = 0, interval_ms = 100 } }`, wantErr: "Batch.threshold = 0"},
		{in: `flush_policy = { Batch = { threshold = 10, every = 100 } }`, wantErr: "Batch.every: unknown key"},
		{in: `flush_policy = { Batch = { threshold = "ten", interval_ms = 100 } }`, wantErr: "must be an integer"},
		{in: `flush_policy = { Stream = { threshold = 10 } }`, wantErr: "exactly one key, Batch"},
	}
	for _, tc := range cases {
		var got engine.PersistenceConfig
		_, err := toml.Decode(tc.in, &got)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
