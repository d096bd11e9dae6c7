package memnet

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultReorderWindow is how long a reordered message is held back when
// Faults.ReorderWindow is zero: long enough for the messages a raft node
// sends in one burst to overtake it, short enough not to look like a crash.
const DefaultReorderWindow = 10 * time.Millisecond

// Faults describes how a link misbehaves. The zero value is a perfect link.
// Each message draws its own fate, independently of the others.
type Faults struct {
	// DropRate is the probability that a message is lost. A lost message is
	// not reported to the sender (a lost packet is not noticed either),
	// except a MsgSnap, whose failure is always reported.
	DropRate float64
	// DuplicateRate is the probability that a message is delivered twice.
	DuplicateRate float64
	// ReorderRate is the probability that a message is held back for
	// ReorderWindow, so that the messages sent after it on the same link
	// during that time are delivered before it.
	ReorderRate float64
	// ReorderWindow is how long a reordered message is held back; zero means
	// DefaultReorderWindow.
	ReorderWindow time.Duration
	// MinDelay and MaxDelay bound a uniformly drawn extra latency. Delay
	// keeps the order of a link: a message is never delivered before one
	// sent earlier on the same link, as on a slow TCP stream.
	MinDelay, MaxDelay time.Duration
}

// Validate reports the first field of f that is out of range.
func (f Faults) Validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"DropRate", f.DropRate},
		{"DuplicateRate", f.DuplicateRate},
		{"ReorderRate", f.ReorderRate},
	}
	for _, r := range rates {
		// The negated form also rejects NaN.
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("memnet: Faults.%s = %v: must be between 0 and 1", r.name, r.v)
		}
	}
	if f.MinDelay < 0 {
		return fmt.Errorf("memnet: Faults.MinDelay = %v: must not be negative", f.MinDelay)
	}
	if f.MaxDelay < f.MinDelay {
		return fmt.Errorf("memnet: Faults.MaxDelay = %v: must not be less than MinDelay (%v)", f.MaxDelay, f.MinDelay)
	}
	if f.ReorderWindow < 0 {
		return fmt.Errorf("memnet: Faults.ReorderWindow = %v: must not be negative", f.ReorderWindow)
	}
	return nil
}

// fate is what the faults of a link decide for one message.
type fate struct {
	lost      bool
	duplicate bool
	delay     time.Duration // extra latency, kept in link order
	hold      time.Duration // extra hold-back of a reordered message, out of link order
}

// draw decides the fate of one message. It draws from rng only for the
// faults that are set, so that a perfect link consumes no randomness and
// setting one fault does not change what another one decides for a seed.
func (f Faults) draw(rng *rand.Rand) fate {
	var d fate
	if f.DropRate > 0 && rng.Float64() < f.DropRate {
		d.lost = true
		return d
	}
	if f.DuplicateRate > 0 && rng.Float64() < f.DuplicateRate {
		d.duplicate = true
	}
	d.delay = f.MinDelay
	if span := f.MaxDelay - f.MinDelay; span > 0 {
		d.delay += time.Duration(rng.Int64N(int64(span) + 1))
	}
	if f.ReorderRate > 0 && rng.Float64() < f.ReorderRate {
		w := f.ReorderWindow
		if w == 0 {
			w = DefaultReorderWindow
		}
		// At least half the window, so that a reordered message is really
		// overtaken by a burst rather than by a hair.
		d.hold = w/2 + time.Duration(rng.Int64N(int64(w-w/2)+1))
	}
	return d
}
