package engine

import (
	"fmt"
	"strings"
	"time"
)

// Strategy says when a log entry counts as stored ([raft.persistence] strategy).
type Strategy string

const (
	// DiskFirst: an entry is fsynced before this node acknowledges it to a
	// leader or counts it toward commit (as leader). An acknowledged write
	// survives any crash, of any set of nodes, all at once included.
	DiskFirst Strategy = "DiskFirst"
	// MemFirst: an entry is acknowledged and counted once it is written to
	// the storage engine's buffers, and made durable later by the
	// FlushPolicy. A crash of a node loses at most the entries written since
	// its last flush (its flush lag: last index − durable index).
	//
	// A write acknowledged to a client was held by a majority; it is lost
	// only if every node of that majority that still holds it stays away
	// while the others elect a leader. To make that rare, a node that
	// crashed abstains from elections until it hears from a leader (at most
	// 5 election timeouts: after a crash of every node someone must lead),
	// and a follower that comes back without entries it had acknowledged has
	// leadership moved (or, with two voters, lets the leader step down): a
	// new leader repairs its log, which the old one never would. Changes of
	// term and vote are always fsynced, so a node never votes twice in a
	// term. A clean Stop flushes everything.
	MemFirst Strategy = "MemFirst"
)

// UnmarshalText accepts "DiskFirst" and "MemFirst" (case-insensitive).
func (s *Strategy) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "diskfirst":
		*s = DiskFirst
	case "memfirst":
		*s = MemFirst
	default:
		return fmt.Errorf("raft.persistence.strategy = %q: must be \"DiskFirst\" or \"MemFirst\"", b)
	}
	return nil
}

// FlushPolicy says when MemFirst writes are made durable
// ([raft.persistence] flush_policy).
//
// In the configuration file it is either the string "Immediate" or
// { Batch = { threshold = N, interval_ms = M } }.
type FlushPolicy struct {
	// Immediate flushes after every write batch (still acknowledging first).
	Immediate bool
	// Threshold flushes once this many entries are unflushed.
	Threshold int
	// Interval flushes at least this often while entries are unflushed.
	Interval time.Duration
}

// DefaultFlushPolicy is { Batch = { threshold = 1000, interval_ms = 100 } }.
func DefaultFlushPolicy() FlushPolicy {
	return FlushPolicy{Threshold: 1000, Interval: 100 * time.Millisecond}
}

// String renders the policy as it is written in the configuration file.
func (f FlushPolicy) String() string {
	if f.Immediate {
		return `"Immediate"`
	}
	return fmt.Sprintf("{ Batch = { threshold = %d, interval_ms = %d } }", f.Threshold, f.Interval.Milliseconds())
}

// UnmarshalTOML decodes either form (see FlushPolicy).
func (f *FlushPolicy) UnmarshalTOML(v any) error {
	const key = "raft.persistence.flush_policy"
	switch v := v.(type) {
	case string:
		if strings.EqualFold(v, "Immediate") {
			*f = FlushPolicy{Immediate: true}
			return nil
		}
		return fmt.Errorf("%s = %q: must be \"Immediate\" or { Batch = { threshold = N, interval_ms = M } }", key, v)
	case map[string]any:
		batch, ok := v["Batch"].(map[string]any)
		if !ok || len(v) != 1 {
			return fmt.Errorf("%s: a table must hold exactly one key, Batch = { threshold = N, interval_ms = M }", key)
		}
		p := FlushPolicy{}
		for k, val := range batch {
			n, ok := val.(int64)
			if !ok {
				return fmt.Errorf("%s.Batch.%s = %v: must be an integer", key, k, val)
			}
			switch k {
			case "threshold":
				p.Threshold = int(n)
			case "interval_ms":
				p.Interval = time.Duration(n) * time.Millisecond
			default:
				return fmt.Errorf("%s.Batch.%s: unknown key (allowed: threshold, interval_ms)", key, k)
			}
		}
		if err := p.validate(); err != nil {
			return err
		}
		*f = p
		return nil
	}
	return fmt.Errorf("%s = %v: must be \"Immediate\" or { Batch = { threshold = N, interval_ms = M } }", key, v)
}

func (f FlushPolicy) validate() error {
	if f.Immediate {
		return nil
	}
	if f.Threshold < 1 {
		return fmt.Errorf("raft.persistence.flush_policy.Batch.threshold = %d: must be at least 1", f.Threshold)
	}
	if f.Interval < time.Millisecond {
		return fmt.Errorf("raft.persistence.flush_policy.Batch.interval_ms = %d: must be at least 1", f.Interval.Milliseconds())
	}
	return nil
}

// PersistenceConfig is [raft.persistence].
type PersistenceConfig struct {
	Strategy    Strategy    `toml:"strategy"`
	FlushPolicy FlushPolicy `toml:"flush_policy"`
}

// Validate checks the strategy and flush policy.
func (p PersistenceConfig) Validate() error {
	if p.Strategy != DiskFirst && p.Strategy != MemFirst {
		return invalid("raft.persistence.strategy = %q: must be \"DiskFirst\" or \"MemFirst\"", p.Strategy)
	}
	if err := p.FlushPolicy.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
