package config

import "testing"

// TestMetrics: [metrics] is off by default, and its keys from the file, the
// environment and Set reach the server's options.
func TestMetrics(t *testing.T) {
	o, err := Default().ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.MetricsAddr != "" || o.Pprof {
		t.Fatalf("default: MetricsAddr %q, Pprof %v; want off", o.MetricsAddr, o.Pprof)
	}
	c, err := Load(writeFile(t, "[metrics]\naddress = \"127.0.0.1:9090\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyEnv([]string{"CAIRN_METRICS_PPROF=true"}); err != nil {
		t.Fatal(err)
	}
	if o, err = c.ServerOptions(); err != nil {
		t.Fatal(err)
	}
	if o.MetricsAddr != "127.0.0.1:9090" || !o.Pprof {
		t.Fatalf("file and environment: MetricsAddr %q, Pprof %v", o.MetricsAddr, o.Pprof)
	}
	if err := c.Set("metrics.address", ":0"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get("metrics.address"); v != ":0" {
		t.Fatalf("Get(metrics.address) = %q after Set", v)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("an empty host and port 0: %v", err)
	}
}
