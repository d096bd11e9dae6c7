package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/watch"
)

// ErrInvalid marks every configuration error: errors.Is(err, ErrInvalid)
// holds for what Load, ApplyEnv, Set, Validate and ServerOptions return
// about bad keys or values (not for a file that cannot be read).
var ErrInvalid = errors.New("config: invalid")

// Error is one bad value.
type Error struct {
	// Key is the key as written in the file: "raft.election_tick".
	Key string
	// Value is the value as written in the file (strings quoted).
	Value string
	// Source is where the value came from, if known: the file and line
	// (cairn.toml:12), the variable (CAIRN_RAFT_ELECTION_TICK) or the flag
	// (--log-level). Validate, which sees only values, leaves it empty;
	// commands fill it in.
	Source string
	// Reason says what is allowed.
	Reason string

	err error // see Unwrap
}

// Error reads "source: key = value: reason".
func (e *Error) Error() string {
	s := e.Key
	if e.Source != "" {
		s = e.Source + ": " + s
	}
	if e.Value != "" {
		s += " = " + e.Value
	}
	return s + ": " + e.Reason
}

// Is makes every *Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the error of the package that found the bad value (the
// engine's or the watch hub's), if any.
func (e *Error) Unwrap() error { return e.err }

// invalidError marks an error that is not about one value with ErrInvalid.
type invalidError struct {
	msg string
	err error
}

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.err}
}

// joinErrors joins errs; one error is returned as is.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// Validate checks every value of c and reports every bad one, joined (see
// Error). Every integer key must be at least 1.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, value, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Value: value, Reason: fmt.Sprintf(format, args...)})
	}
	q := strconv.Quote

	v := reflect.ValueOf(c)
	for _, k := range keys() {
		f := v.FieldByIndex(k.index)
		switch f.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if f.Int() < 1 {
				bad(k.name, strconv.FormatInt(f.Int(), 10), "must be at least 1")
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if f.Uint() < 1 {
				bad(k.name, "0", "must be at least 1")
			}
		}
	}

	cl := c.Cluster
	if cl.Name == "" {
		bad("cluster.name", `""`, "must not be empty")
	}
	switch {
	case cl.MemberName == "":
		bad("cluster.member_name", `""`, "must not be empty")
	case strings.ContainsAny(cl.MemberName, "=,"):
		bad("cluster.member_name", q(cl.MemberName), `must not contain "=" or "," (they separate cluster.initial_cluster)`)
	}
	if cl.DataDir == "" {
		bad("cluster.data_dir", `""`, "must not be empty")
	}
	if _, err := parseAddr(cl.ListenClient, true); err != nil {
		bad("cluster.listen_client", q(cl.ListenClient), "%v", err)
	}
	if _, err := parseAddr(cl.ListenPeer, true); err != nil {
		bad("cluster.listen_peer", q(cl.ListenPeer), "%v", err)
	}
	if cl.AdvertiseClient != "" {
		if _, err := parseAddr(cl.AdvertiseClient, false); err != nil {
			bad("cluster.advertise_client", q(cl.AdvertiseClient), "%v", err)
		}
	}
	if members, err := parseInitialCluster(cl.InitialCluster); err != nil {
		bad("cluster.initial_cluster", q(cl.InitialCluster), "%v", err)
	} else if _, ok := members[cl.MemberName]; len(members) > 0 && !ok {
		bad("cluster.initial_cluster", q(cl.InitialCluster),
			"does not list this member (cluster.member_name = %q)", cl.MemberName)
	}
	if cl.InitialCluster != "" && len(cl.Join) > 0 {
		bad("cluster.join", formatList(cl.Join), "must be empty when cluster.initial_cluster is set: "+
			"a member either starts a new cluster or joins a running one")
	}
	for _, a := range cl.Join {
		if _, err := parseAddr(a, false); err != nil {
			bad("cluster.join", formatList(cl.Join), "element %q: %v", a, err)
		}
	}

	if c.Storage.MaxRequestBytes > c.Raft.MaxProposalBytes && c.Raft.MaxProposalBytes > 0 {
		bad("storage.max_request_bytes", strconv.Itoa(c.Storage.MaxRequestBytes),
			"must be at most raft.max_proposal_bytes (%d): a larger request could never be proposed", c.Raft.MaxProposalBytes)
	}
	if p := c.Raft.Persistence; p.Strategy == engine.MemFirst && p.FlushPolicy.Threshold > 0 &&
		c.Storage.FlushLagThreshold <= uint64(p.FlushPolicy.Threshold) {
		bad("storage.flush_lag_threshold", strconv.FormatUint(c.Storage.FlushLagThreshold, 10),
			"must be above raft.persistence.flush_policy's Batch threshold (%d): the lag reaches that in normal operation",
			p.FlushPolicy.Threshold)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", q(c.Log.Level), "%v", err)
	}
	if f := strings.ToLower(c.Log.Format); f != "text" && f != "json" {
		bad("log.format", q(c.Log.Format), `must be "text" or "json"`)
	}
	if a := c.Metrics.Address; a != "" {
		if _, err := parseAddr(a, true); err != nil {
			bad("metrics.address", q(a), "%v (or empty: no metrics listener)", err)
		}
	} else if c.Metrics.Pprof {
		bad("metrics.pprof", "true", "needs metrics.address: pprof is served on the metrics listener")
	}

	// The engine's and the watch hub's own checks, on a copy in which the
	// keys found bad above have their defaults (so as not to report them
	// twice, and because those checks take zeros for defaults).
	d, bad0 := reflect.ValueOf(Default()), map[string]bool{}
	for _, err := range errs {
		bad0[err.(*Error).Key] = true
	}
	cv := reflect.ValueOf(&c).Elem()
	for _, k := range keys() {
		if bad0[k.name] {
			cv.FieldByIndex(k.index).Set(d.FieldByIndex(k.index))
		}
	}
	e := c.engineConfig()
	e.NodeID = 1 // derived by the server; not checked here
	e.StateMachine = validateOnly{}
	if err := e.Validate(); err != nil {
		errs = append(errs, fromPackage(err, engine.ErrInvalidConfig))
	}
	w := c.Raft.Watch
	if err := w.Validate(); err != nil {
		errs = append(errs, fromPackage(err, watch.ErrInvalidConfig))
	}
	return joinErrors(errs)
}

// fromPackage turns an error of another package's validation, which reads
// "prefix: key = value: reason", into an *Error, or marks it with
// ErrInvalid if it does not name a key of Config.
func fromPackage(err, prefix error) error {
	msg := strings.TrimPrefix(err.Error(), prefix.Error()+": ")
	if name, rest, ok := strings.Cut(msg, " = "); ok {
		if _, known := lookupKey(name); known {
			if value, reason, ok := strings.Cut(rest, ": "); ok {
				return &Error{Key: name, Value: value, Reason: reason, err: err}
			}
		}
	}
	return &invalidError{msg: msg, err: err}
}

// validateOnly stands in for the state machine when engine.Config.Validate
// checks the rest; its methods are never called.
type validateOnly struct{ engine.StateMachine }

// parseAddr checks a host:port, or an http:// URL of one, and returns
// host:port. A listen address may leave the host empty (every interface)
// and use port 0 (any free port).
func parseAddr(s string, listen bool) (string, error) {
	const want = "must be HOST:PORT"
	hp := s
	if strings.Contains(s, "://") {
		if listen {
			return "", errors.New(want)
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", errors.New(want + " or http://HOST:PORT")
		}
		hp = u.Host
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		if listen {
			return "", errors.New(want)
		}
		return "", errors.New(want + " or http://HOST:PORT")
	}
	n, err := strconv.Atoi(port)
	switch {
	case err != nil || n < 0 || n > 65535:
		return "", fmt.Errorf("port %q must be a number from 0 to 65535", port)
	case !listen && n == 0:
		return "", errors.New("port must not be 0")
	case !listen && host == "":
		return "", errors.New("host must not be empty")
	}
	return hp, nil
}

// parseInitialCluster parses "name=host:port,name=host:port" into member
// names and peer addresses. Empty is no members.
func parseInitialCluster(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	members := map[string]string{}
	byAddr := map[string]string{}
	for el := range strings.SplitSeq(s, ",") {
		el = strings.TrimSpace(el)
		name, addr, ok := strings.Cut(el, "=")
		name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
		if !ok || name == "" {
			return nil, fmt.Errorf("element %q must be NAME=HOST:PORT", el)
		}
		hp, err := parseAddr(addr, false)
		if err != nil {
			return nil, fmt.Errorf("element %q: address %s", el, err)
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("element %q: member %s is listed twice", el, name)
		}
		if other, dup := byAddr[hp]; dup {
			return nil, fmt.Errorf("element %q: address %s is also member %s's", el, hp, other)
		}
		members[name], byAddr[hp] = hp, name
	}
	return members, nil
}

// formatList renders a list of strings as TOML does.
func formatList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
