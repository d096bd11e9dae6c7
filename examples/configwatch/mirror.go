package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/watch"
)

// Kind is what a Change did.
type Kind string

const (
	Reload Kind = "reload" // the whole prefix was read again (Reason says why)
	Put    Kind = "put"
	Delete Kind = "delete"
)

// Change is one change applied to the local copy.
type Change struct {
	Kind   Kind
	Key    string // Put, Delete
	Value  string // Put
	Rev    int64  // the revision of the change, or the one a Reload read at
	Reason string // Reload: "first start", or the compaction that forced it
}

func (c Change) String() string {
	switch c.Kind {
	case Reload:
		return fmt.Sprintf("@%d reload (%s)", c.Rev, c.Reason)
	case Put:
		return fmt.Sprintf("@%d put %s=%s", c.Rev, c.Key, c.Value)
	}
	return fmt.Sprintf("@%d delete %s", c.Rev, c.Key)
}

// Mirror keeps a local copy of the keys under Prefix, and a state file
// that holds the copy and the revision it is current at. After a restart
// it resumes watching from the revision after that one, so it applies
// exactly the changes it missed, in order; if that revision has been
// compacted away meanwhile, it reads the prefix again instead (a Reload).
type Mirror struct {
	KV     cairn.KV
	Prefix string
	// State is the state file; it is rewritten (atomically, by rename)
	// after every applied change.
	State string
	// Apply, if set, is called with every change, in order, after the
	// state file records it.
	Apply func(Change)

	mu    sync.Mutex
	state state // guarded by mu
}

// state is what the state file holds.
type state struct {
	Rev  int64             `json:"revision"` // the copy includes every change up to Rev
	Keys map[string]string `json:"keys"`
}

// Snapshot returns a copy of the local copy and its revision.
func (m *Mirror) Snapshot() (map[string]string, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.state.Keys), m.state.Rev
}

// Run mirrors the prefix until ctx ends (returning nil) or an error.
func (m *Mirror) Run(ctx context.Context) error {
	st, err := load(m.State)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.state = st
	m.mu.Unlock()
	reason := ""
	if st.Rev == 0 {
		reason = "first start"
	}
	for {
		if reason != "" {
			if err := m.reload(ctx, reason); err != nil {
				return ignoreDone(ctx, err)
			}
		}
		from := m.rev() + 1
		// Progress notifications move the recorded revision on while the
		// prefix is quiet, so that a restart resumes from a recent one.
		w, err := m.KV.Watch(ctx, m.Prefix, cairn.WithPrefix(), cairn.WithRev(from), cairn.WithProgressNotify())
		if err != nil {
			return ignoreDone(ctx, fmt.Errorf("configwatch: watch: %w", err))
		}
		for r := range w.C() {
			var err error
			switch {
			case len(r.Events) > 0:
				err = m.apply(r.Events)
			case r.ProgressNotify && r.Revision > m.rev():
				err = m.progress(r.Revision)
			}
			if err != nil {
				w.Close()
				return err
			}
		}
		compact, compacted := watch.CompactRevision(w.Err())
		if !compacted {
			return ignoreDone(ctx, fmt.Errorf("configwatch: watch: %w", w.Err()))
		}
		reason = fmt.Sprintf("revision %d was compacted (compact revision %d)", from, compact)
	}
}

func (m *Mirror) rev() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state.Rev
}

// reload reads the whole prefix.
func (m *Mirror) reload(ctx context.Context, reason string) error {
	r, err := m.KV.Get(ctx, m.Prefix, cairn.WithPrefix())
	if err != nil {
		return fmt.Errorf("configwatch: read %s: %w", m.Prefix, err)
	}
	st := state{Rev: r.Header.Revision, Keys: map[string]string{}}
	for _, kv := range r.Kvs {
		st.Keys[string(kv.Key)] = string(kv.Value)
	}
	return m.commit(st, []Change{{Kind: Reload, Rev: st.Rev, Reason: reason}})
}

// apply applies one watch response's events.
func (m *Mirror) apply(evs []*mvccpb.Event) error {
	m.mu.Lock()
	st := state{Rev: m.state.Rev, Keys: maps.Clone(m.state.Keys)}
	m.mu.Unlock()
	var changes []Change
	for _, ev := range evs {
		c := Change{Key: string(ev.Kv.Key), Rev: ev.Kv.ModRevision}
		if ev.Type == mvccpb.DELETE {
			c.Kind = Delete
			delete(st.Keys, c.Key)
		} else {
			c.Kind, c.Value = Put, string(ev.Kv.Value)
			st.Keys[c.Key] = c.Value
		}
		st.Rev = c.Rev
		changes = append(changes, c)
	}
	return m.commit(st, changes)
}

// progress records that the copy is current at rev.
func (m *Mirror) progress(rev int64) error {
	m.mu.Lock()
	st := state{Rev: rev, Keys: m.state.Keys} // the map is never modified in place
	m.mu.Unlock()
	return m.commit(st, nil)
}

// commit records st in the state file, makes it the local copy, and
// reports changes.
func (m *Mirror) commit(st state, changes []Change) error {
	if err := save(m.State, st); err != nil {
		return err
	}
	m.mu.Lock()
	m.state = st
	m.mu.Unlock()
	if m.Apply != nil {
		for _, c := range changes {
			m.Apply(c)
		}
	}
	return nil
}

func load(path string) (state, error) {
	st := state{Keys: map[string]string{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("configwatch: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("configwatch: state file %s: %w", path, err)
	}
	if st.Keys == nil {
		st.Keys = map[string]string{}
	}
	return st, nil
}

// save writes st to path atomically: a crash leaves the old or the new
// state, never half of one.
func save(path string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("configwatch: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("configwatch: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("configwatch: save state: %w", err)
	}
	return nil
}

// ignoreDone turns the error of a run that ended with its context into nil.
func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
