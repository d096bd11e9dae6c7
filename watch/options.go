package watch

import (
	"bytes"
	"fmt"
)

// Option configures one watch.
type Option func(*watchOptions)

type watchOptions struct {
	end      []byte
	prefix   bool
	fromKey  bool
	rev      int64
	flags    uint8
	progress bool
}

// Flags choose which events a watcher gets and how they are cut; watchers
// of one group with the same flags share the responses Notify builds.
const (
	flagNoPut uint8 = 1 << iota
	flagNoDelete
	flagPrevKV
	flagFragment
	numFlavors = 1 << iota
)

// WithRange watches [key, end). An end of "\x00" watches every key >= key
// (etcd's convention); an empty end watches key alone.
func WithRange(end []byte) Option {
	return func(o *watchOptions) { o.end = end }
}

// WithPrefix watches every key that starts with key; with an empty key,
// every key.
func WithPrefix() Option { return func(o *watchOptions) { o.prefix = true } }

// WithFromKey watches every key >= key.
func WithFromKey() Option { return func(o *watchOptions) { o.fromKey = true } }

// WithRev starts the watch at revision rev, inclusive: events of rev and
// later are delivered, older ones read from History first. 0 (the default)
// starts at the revision after the store's current one (History.Rev), as in
// etcd: a reader that got the store's state at revision R and then watches
// from 0 may miss nothing only if R is current; WithRev(R+1) is exact. A
// revision the store no longer holds (below its compact revision, for
// cairn's store) ends the watch with a *CompactedError.
func WithRev(rev int64) Option { return func(o *watchOptions) { o.rev = rev } }

// WithPrevKV asks for each event's previous key-value, when the store has it.
func WithPrevKV() Option { return func(o *watchOptions) { o.flags |= flagPrevKV } }

// WithFilterPut leaves put events out.
func WithFilterPut() Option { return func(o *watchOptions) { o.flags |= flagNoPut } }

// WithFilterDelete leaves delete events out.
func WithFilterDelete() Option { return func(o *watchOptions) { o.flags |= flagNoDelete } }

// WithProgressNotify asks for a progress notification every
// Config.ProgressIntervalMs while the watcher is synced.
func WithProgressNotify() Option { return func(o *watchOptions) { o.progress = true } }

// WithFragment lets a revision larger than Config.MaxResponseBytes be split
// into several responses, Fragment set on all but the last. Without it such
// a revision is sent whole.
func WithFragment() Option { return func(o *watchOptions) { o.flags |= flagFragment } }

// keyRange is what one watcher watches: key alone (end == nil and
// !fromKey), [key, end), or every key >= key (fromKey). It owns its slices.
type keyRange struct {
	key, end []byte
	fromKey  bool
}

func (r keyRange) single() bool { return r.end == nil && !r.fromKey }

func (r keyRange) contains(k []byte) bool {
	if r.single() {
		return bytes.Equal(k, r.key)
	}
	return bytes.Compare(k, r.key) >= 0 && (r.fromKey || bytes.Compare(k, r.end) < 0)
}

// id names the range uniquely, for the map of range groups.
func (r keyRange) id() string {
	if r.fromKey {
		return fmt.Sprintf("%d:%s:+inf", len(r.key), r.key)
	}
	return fmt.Sprintf("%d:%s:%s", len(r.key), r.key, r.end)
}

// newKeyRange validates the range options against key and copies key, so the
// caller may reuse its slice.
func newKeyRange(key []byte, o *watchOptions) (keyRange, error) {
	n := 0
	for _, set := range []bool{len(o.end) > 0, o.prefix, o.fromKey} {
		if set {
			n++
		}
	}
	if n > 1 {
		return keyRange{}, fmt.Errorf("%w: use only one of WithRange, WithPrefix and WithFromKey", ErrInvalidRange)
	}
	r := keyRange{key: bytes.Clone(key)}
	if r.key == nil {
		r.key = []byte{}
	}
	switch {
	case o.prefix:
		if end := prefixEnd(key); end != nil {
			r.end = end
		} else {
			r.fromKey = true // key is empty or all 0xff: nothing bounds it
		}
	case o.fromKey, len(o.end) == 1 && o.end[0] == 0:
		r.fromKey = true
	case len(o.end) > 0:
		if bytes.Compare(o.end, key) <= 0 {
			return keyRange{}, fmt.Errorf("%w: range end %q is not after key %q", ErrInvalidRange, o.end, key)
		}
		r.end = bytes.Clone(o.end)
	default:
		if len(key) == 0 {
			return keyRange{}, fmt.Errorf("%w (use WithPrefix or WithFromKey to watch every key)", ErrEmptyKey)
		}
	}
	return r, nil
}

// prefixEnd returns the smallest key greater than every key with the given
// prefix, or nil if there is none.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
