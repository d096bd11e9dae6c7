package kv

import (
	"encoding/binary"
	"fmt"
	"net/url"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/membershippb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/mvcc"
)

// MemberAttributes is what a member publishes about itself through raft
// (etcd's ClusterMemberAttrSet): its name and the URLs its clients reach it
// at.
type MemberAttributes struct {
	Name       string
	ClientURLs []string
}

// memberPrefix is the table of member attributes in the state machine's
// keyspace: 0x01 'M', then the member id, 8 bytes big-endian → the
// attributes (a membershippb.Attributes). Like the lease table it lives
// beside mvcc's tables, so snapshots carry it, and it creates no revision.
var memberPrefix = []byte{0x01, 'M'}

func memberKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), memberPrefix...), id)
}

// memberTable is the member attributes as of the last apply: the apply loop
// writes it, anyone reads it under mu.
type memberTable struct {
	mu sync.Mutex
	m  map[uint64]MemberAttributes // the slices are never modified in place
}

func (t *memberTable) load(r pebble.Reader) error {
	m := map[uint64]MemberAttributes{}
	err := scanTable(r, memberPrefix, func(k, v []byte) error {
		if len(k) != len(memberPrefix)+8 {
			return fmt.Errorf("kv: corrupt member attributes: key %x", k)
		}
		var a membershippb.Attributes
		if err := proto.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("kv: corrupt member attributes: key %x: %w", k, err)
		}
		m[binary.BigEndian.Uint64(k[len(memberPrefix):])] = MemberAttributes{Name: a.GetName(), ClientURLs: a.GetClientUrls()}
		return nil
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.m = m
	t.mu.Unlock()
	return nil
}

// MemberAttributes returns the attributes every member published, by
// member id, as of the last apply. The caller owns the map and its slices.
func (sm *StateMachine) MemberAttributes() map[uint64]MemberAttributes {
	t := &sm.members
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[uint64]MemberAttributes, len(t.m))
	for id, a := range t.m {
		out[id] = MemberAttributes{Name: a.Name, ClientURLs: slices.Clone(a.ClientURLs)}
	}
	return out
}

// applyMemberAttrs sets the attributes of req's member, replacing those it
// had. Attributes with neither a name nor a client URL (or none at all)
// forget the member's attributes instead: that is how a removed member's
// entry goes. The member id must not be 0; every client URL must parse as a
// URL with a scheme. Nothing here creates a revision.
func (sm *StateMachine) applyMemberAttrs(b *mvcc.Batch, req *membershippb.ClusterMemberAttrSetRequest) error {
	id := req.GetMember_ID()
	if id == 0 {
		return fmt.Errorf("%w: member attributes: member id 0", ErrBadRequest)
	}
	a := req.GetMemberAttributes()
	t := &sm.members
	if a.GetName() == "" && len(a.GetClientUrls()) == 0 {
		if err := b.Delete(memberKey(id), nil); err != nil {
			return fmt.Errorf("kv: forget member %x: %w", id, err)
		}
		t.mu.Lock()
		delete(t.m, id)
		t.mu.Unlock()
		return nil
	}
	for _, u := range a.GetClientUrls() {
		if p, err := url.Parse(u); err != nil || p.Scheme == "" {
			return fmt.Errorf("%w: member %x: client URL %q is not a URL with a scheme", ErrBadRequest, id, u)
		}
	}
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(&membershippb.Attributes{Name: a.GetName(), ClientUrls: a.GetClientUrls()})
	if err != nil {
		return fmt.Errorf("kv: member %x attributes: %w", id, err)
	}
	if err := b.Set(memberKey(id), v, nil); err != nil {
		return fmt.Errorf("kv: set member %x attributes: %w", id, err)
	}
	t.mu.Lock()
	t.m[id] = MemberAttributes{Name: a.GetName(), ClientURLs: slices.Clone(a.GetClientUrls())}
	t.mu.Unlock()
	return nil
}

// scanTable calls fn on every record whose key starts with prefix (a
// two-byte table prefix), in key order.
func scanTable(r pebble.Reader, prefix []byte, fn func(k, v []byte) error) error {
	upper := []byte{prefix[0], prefix[1] + 1}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("kv: read table %q: %w", prefix, err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("kv: read %x: %w", it.Key(), err)
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("kv: read table %q: %w", prefix, err)
	}
	return nil
}
