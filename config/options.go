package config

import (
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/server"
	"github.com/cairn-db/cairn/storage"
)

// ServerOptions validates c and builds the options of a server.New: the
// engine and key-value settings, the member's name, cluster and addresses,
// and a logger built from [log] (writing to Log.Output). The engine's
// NodeID is left 0: the server derives it from the cluster and member names.
func (c Config) ServerOptions() (server.Options, error) {
	if err := c.Validate(); err != nil {
		return server.Options{}, err
	}
	logger, err := c.Log.NewLogger()
	if err != nil {
		return server.Options{}, err
	}
	members, _ := parseInitialCluster(c.Cluster.InitialCluster) // checked by Validate
	var join []string
	for _, a := range c.Cluster.Join {
		hp, _ := parseAddr(a, false)
		join = append(join, hp)
	}
	advertise := c.Cluster.AdvertiseClient
	if advertise != "" && !strings.Contains(advertise, "://") {
		advertise = "http://" + advertise
	}
	e := c.engineConfig()
	e.Logger = logger
	w := c.Raft.Watch
	w.Logger = logger
	return server.Options{
		DB:                cairn.Config{Engine: e, KV: kv.Options{Watch: w}},
		Name:              c.Cluster.MemberName,
		InitialCluster:    members,
		Join:              join,
		ListenClient:      c.Cluster.ListenClient,
		AdvertiseClient:   advertise,
		QuotaBytes:        c.Storage.QuotaBytes,
		MaxRequestBytes:   c.Storage.MaxRequestBytes,
		CompressResponses: c.Raft.RPCCompression.Client,
		MetricsAddr:       c.Metrics.Address,
		Pprof:             c.Metrics.Pprof,
		Logger:            logger,
	}, nil
}

// engineConfig is the engine's part of c, without node id, state machine
// and logger.
func (c Config) engineConfig() engine.Config {
	return engine.Config{
		ClusterName: c.Cluster.Name,
		DataDir:     c.Cluster.DataDir,
		ListenPeer:  c.Cluster.ListenPeer,
		Raft:        c.Raft.RaftConfig,
		Persistence: c.Raft.Persistence,
		Snapshot:    c.Raft.Snapshot,
		Network:     c.Network,
		// Every field is set (Default sets them), so the engine takes none
		// of its zero-value defaults: allow_client_override = false stays.
		ReadConsistency: c.Raft.ReadConsistency,
		Compression:     c.Raft.RPCCompression,
		Storage:         storage.Options{PebbleCacheBytes: c.Storage.CacheSize},

		SlowFsyncThreshold: time.Duration(c.Storage.SlowFsyncMs) * time.Millisecond,
		FlushLagThreshold:  c.Storage.FlushLagThreshold,
	}
}

// NewLogger builds the logger [log] describes, writing to l.Output
// (os.Stderr if nil).
func (l Log) NewLogger() (*slog.Logger, error) {
	level, err := parseLevel(l.Level)
	if err != nil {
		return nil, &Error{Key: "log.level", Value: strconv.Quote(l.Level), Reason: err.Error()}
	}
	w := l.Output
	if w == nil {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(l.Format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &Error{Key: "log.format", Value: strconv.Quote(l.Format), Reason: `must be "text" or "json"`}
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, errors.New(`must be "debug", "info", "warn" or "error"`)
}
