package engine

import (
	"errors"
	"fmt"
	"strings"
)

// ReadPolicy says what a read of the local state machine must wait for
// ([raft.read_consistency] default_policy, or one request's choice). The
// zero value stands for the configured default.
//
// What each policy guarantees, for a read that starts after ReadBarrier
// returns and is served from this node's state machine:
//
//   - LinearizableRead: the read reflects every write acknowledged (to
//     anyone, through any node) before ReadBarrier was called, and nothing
//     it returns is later undone. It costs a quorum round trip from the
//     leader (raft's ReadIndex, thesis §6.4), shared by the reads waiting at
//     the time, and on a follower one more round trip to the leader. It
//     depends on no clock.
//
//   - LeaseRead: the same guarantee as LinearizableRead, served by a leader
//     that holds a lease without any message. A leader takes the lease when
//     a quorum confirms a ReadIndex round it started at time t, and holds it
//     until t + lease_duration_ms on its monotonic clock: every voter of that
//     quorum heard from it after t and, with CheckQuorum, refuses to vote for
//     another candidate for an election timeout after that, so no other
//     leader can commit before the lease ends. This rests on an assumption
//     LinearizableRead does not make: clocks drift by a bounded amount. Over
//     one lease, the leader's clock must not run slower than a voter's by
//     more than the election timeout (less one tick) minus lease_duration_ms
//     (400 ms with the defaults). Step-downs, term changes, leadership
//     transfers and membership changes drop the lease; a node that restarts
//     does not vote for an election timeout, since it forgot whom it heard
//     from. Without a lease (just elected, idle for a lease, after a
//     transfer in its term), the leader runs a ReadIndex round, which renews
//     the lease. A follower has no lease: it asks the leader for a ReadIndex
//     exactly as for LinearizableRead. While lease reads keep coming, the
//     leader renews its lease in the background before it expires; idle, it
//     lets it lapse. With raft.disable_check_quorum there is no lease at all.
//
//   - EventualConsistency: the read is served from this node's state at
//     once, with no message: what etcd clients get with serializable=true.
//     It may miss acknowledged writes (on a follower that lags, or is cut
//     off from the leader), but every value it returns was written by some
//     write that started before the read ended, and successive reads on one
//     node never go back in time (a node's applied state only moves forward).
type ReadPolicy string

const (
	// LinearizableRead asks the leader for its commit index, confirmed by a
	// quorum heartbeat, and waits until this node applied it. The default.
	LinearizableRead ReadPolicy = "LinearizableRead"
	// LeaseRead serves from a leader's lease (see ReadPolicy); a follower
	// forwards it as a LinearizableRead.
	LeaseRead ReadPolicy = "LeaseRead"
	// EventualConsistency serves from this node's local state at once.
	EventualConsistency ReadPolicy = "EventualConsistency"
)

// ErrUnknownReadPolicy marks a policy name ParseReadPolicy does not know.
var ErrUnknownReadPolicy = errors.New("engine: unknown read consistency policy")

// ErrOverrideNotAllowed is returned for a request that asks for a read
// policy other than the configured default while overrides are off.
var ErrOverrideNotAllowed = errors.New("engine: read consistency override not allowed (raft.read_consistency.allow_client_override = false)")

// ParseReadPolicy accepts the policy names of the configuration file
// ("LinearizableRead", "LeaseRead", "EventualConsistency") and the short
// ones of the gRPC metadata key cairn-read-consistency ("linearizable",
// "lease", "eventual"), in any case. An error wraps ErrUnknownReadPolicy.
func ParseReadPolicy(s string) (ReadPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "linearizableread", "linearizable":
		return LinearizableRead, nil
	case "leaseread", "lease":
		return LeaseRead, nil
	case "eventualconsistency", "eventual":
		return EventualConsistency, nil
	}
	return "", fmt.Errorf("%w: %q: must be \"LinearizableRead\", \"LeaseRead\" or \"EventualConsistency\" "+
		"(or linearizable, lease, eventual)", ErrUnknownReadPolicy, s)
}

// UnmarshalText accepts what ParseReadPolicy accepts.
func (p *ReadPolicy) UnmarshalText(b []byte) error {
	v, err := ParseReadPolicy(string(b))
	if err != nil {
		return fmt.Errorf("raft.read_consistency.default_policy = %q: must be \"LinearizableRead\", \"LeaseRead\" or \"EventualConsistency\"", b)
	}
	*p = v
	return nil
}

// ShortName is the policy's name in the gRPC metadata: "linearizable",
// "lease" or "eventual" ("" for the zero policy).
func (p ReadPolicy) ShortName() string {
	switch p {
	case LinearizableRead:
		return "linearizable"
	case LeaseRead:
		return "lease"
	case EventualConsistency:
		return "eventual"
	}
	return ""
}

func (p ReadPolicy) valid() bool {
	return p == LinearizableRead || p == LeaseRead || p == EventualConsistency
}

// ReadConsistencyConfig is [raft.read_consistency]. The zero value takes
// every default (overrides allowed included); a value with any field set
// takes the defaults of its other zero fields, except AllowClientOverride,
// whose zero is false (DefaultConfig sets it true).
type ReadConsistencyConfig struct {
	// DefaultPolicy serves the reads that ask for none. Default
	// LinearizableRead.
	DefaultPolicy ReadPolicy `toml:"default_policy"`
	// LeaseDurationMs is how long a leader's lease lasts after the start of
	// the quorum round that confirmed it. It must be shorter than the
	// election timeout less one tick, (election_tick − 1) × tick_ms; the
	// difference is the clock drift tolerated over one lease. Default half
	// the election timeout (500 ms with the default timing).
	LeaseDurationMs int `toml:"lease_duration_ms"`
	// AllowClientOverride lets a request ask for another policy than
	// DefaultPolicy; when false such a request fails with
	// ErrOverrideNotAllowed. etcd's own serializable flag is always honoured.
	AllowClientOverride bool `toml:"allow_client_override"`
	// ReadBatching bounds how long linearizable reads wait to share a round.
	ReadBatching ReadBatchingConfig `toml:"read_batching"`
}

// ReadBatchingConfig is [raft.read_consistency.read_batching]. A read that
// arrives when no ReadIndex round is in flight starts one at once; reads
// that arrive while rounds are in flight wait for the next, which starts
// when the rounds in flight end, or earlier (alongside them) once
// SizeThreshold reads wait or the oldest has waited TimeThresholdMs.
type ReadBatchingConfig struct {
	// SizeThreshold is the number of waiting reads that starts a round at
	// once. Default 100.
	SizeThreshold int `toml:"size_threshold"`
	// TimeThresholdMs is how long the oldest waiting read waits at most
	// before its round starts, in milliseconds. Default 10.
	TimeThresholdMs int `toml:"time_threshold_ms"`
}

// DefaultReadConsistency is the default [raft.read_consistency] for raft
// timing r (whose election timeout sets the lease duration).
func DefaultReadConsistency(r RaftConfig) ReadConsistencyConfig {
	c := ReadConsistencyConfig{AllowClientOverride: true}
	c.setDefaults(r)
	return c
}

func (c *ReadConsistencyConfig) setDefaults(r RaftConfig) {
	if *c == (ReadConsistencyConfig{}) {
		c.AllowClientOverride = true
	}
	if c.DefaultPolicy == "" {
		c.DefaultPolicy = LinearizableRead
	}
	if c.LeaseDurationMs == 0 {
		// Half the election timeout, and always below the bound Validate
		// checks (0 with a 2-tick, 1 ms election timeout: no lease).
		c.LeaseDurationMs = max(0, min(r.ElectionTick*r.TickMs/2, leaseBoundMs(r)-1))
	}
	if c.ReadBatching.SizeThreshold == 0 {
		c.ReadBatching.SizeThreshold = 100
	}
	if c.ReadBatching.TimeThresholdMs == 0 {
		c.ReadBatching.TimeThresholdMs = 10
	}
}

// leaseBoundMs is the time a voter that heard from the leader surely refuses
// other candidates: ElectionTick ticks, the first of which may come at once.
func leaseBoundMs(r RaftConfig) int { return (r.ElectionTick - 1) * r.TickMs }

func (c *ReadConsistencyConfig) validate(r RaftConfig) error {
	const k = "raft.read_consistency."
	switch {
	case !c.DefaultPolicy.valid():
		return invalid("%sdefault_policy = %q: must be \"LinearizableRead\", \"LeaseRead\" or \"EventualConsistency\"", k, c.DefaultPolicy)
	case c.LeaseDurationMs < 0:
		return invalid("%slease_duration_ms = %d: must be at least 1", k, c.LeaseDurationMs)
	case c.LeaseDurationMs > 0 && c.LeaseDurationMs >= leaseBoundMs(r):
		return invalid("%slease_duration_ms = %d: must be shorter than the election timeout less one tick "+
			"((raft.election_tick − 1) × raft.tick_ms = (%d − 1) × %d = %d ms; the election timeout is %d ms), "+
			"so that voters that confirmed the lease still refuse other candidates when it ends",
			k, c.LeaseDurationMs, r.ElectionTick, r.TickMs, leaseBoundMs(r), r.ElectionTick*r.TickMs)
	case c.DefaultPolicy == LeaseRead && r.DisableCheckQuorum:
		return invalid("%sdefault_policy = %q: needs CheckQuorum, which raft.disable_check_quorum = true turns off "+
			"(voters would not refuse other candidates during a lease)", k, c.DefaultPolicy)
	case c.ReadBatching.SizeThreshold < 1:
		return invalid("%sread_batching.size_threshold = %d: must be at least 1", k, c.ReadBatching.SizeThreshold)
	case c.ReadBatching.TimeThresholdMs < 1:
		return invalid("%sread_batching.time_threshold_ms = %d: must be at least 1", k, c.ReadBatching.TimeThresholdMs)
	}
	return nil
}

// Resolve returns the policy a client request gets: requested, or
// DefaultPolicy when requested is "". A request for another policy than
// DefaultPolicy fails with ErrOverrideNotAllowed unless AllowClientOverride;
// an unknown one with ErrUnknownReadPolicy.
func (c ReadConsistencyConfig) Resolve(requested ReadPolicy) (ReadPolicy, error) {
	def := c.DefaultPolicy
	if def == "" {
		def = LinearizableRead
	}
	switch {
	case requested == "" || requested == def:
		return def, nil
	case !requested.valid():
		return "", fmt.Errorf("%w: %q", ErrUnknownReadPolicy, string(requested))
	case !c.AllowClientOverride:
		return "", fmt.Errorf("%w: asked for %s, the default is %s", ErrOverrideNotAllowed, requested, def)
	}
	return requested, nil
}
