package kv

import (
	"maps"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
)

func attrSet(id uint64, name string, urls ...string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: id, MemberAttributes: &membershippb.Attributes{Name: name, ClientUrls: urls},
	}}
}

func requireMembers(t *testing.T, what string, got, want map[uint64]MemberAttributes) {
	t.Helper()
	if !maps.EqualFunc(got, want, func(a, b MemberAttributes) bool {
		return a.Name == b.Name && slices.Equal(a.ClientURLs, b.ClientURLs)
	}) {
		t.Fatalf("%s: member attributes %+v, want %+v", what, got, want)
	}
}

// TestMemberAttributes: attributes are set, replaced and forgotten through
// apply, create no revision, refuse bad input without changing anything,
// and survive a restart and a snapshot restore (which replaces them).
func TestMemberAttributes(t *testing.T) {
	e := newEnv(t)
	e.put("k", "v")
	rev := e.sm.Store().Rev()

	e.must(attrSet(1, "n1", "http://10.0.0.1:2379"))
	e.must(attrSet(2, "n2", "http://10.0.0.2:2379", "https://n2.example:2379"))
	e.must(attrSet(0xfeedface_deadbeef, "big", "unix://localhost:2379"))
	e.must(attrSet(1, "n1-renamed", "http://10.0.0.9:2379")) // replaces
	want := map[uint64]MemberAttributes{
		1:                   {Name: "n1-renamed", ClientURLs: []string{"http://10.0.0.9:2379"}},
		2:                   {Name: "n2", ClientURLs: []string{"http://10.0.0.2:2379", "https://n2.example:2379"}},
		0xfeedface_deadbeef: {Name: "big", ClientURLs: []string{"unix://localhost:2379"}},
	}
	requireMembers(t, "after set", e.sm.MemberAttributes(), want)

	// Forgetting: empty attributes, or none at all.
	e.must(attrSet(0xfeedface_deadbeef, ""))
	e.must(&pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{Member_ID: 7}}) // unknown: no-op
	delete(want, 0xfeedface_deadbeef)
	requireMembers(t, "after forget", e.sm.MemberAttributes(), want)

	// A name alone, or URLs alone, are attributes.
	e.must(attrSet(3, "", "http://10.0.0.3:2379"))
	e.must(attrSet(4, "n4"))
	want[3] = MemberAttributes{ClientURLs: []string{"http://10.0.0.3:2379"}}
	want[4] = MemberAttributes{Name: "n4"}
	requireMembers(t, "name or URLs alone", e.sm.MemberAttributes(), want)

	// Bad input changes nothing.
	_, err := e.do(attrSet(0, "zero", "http://x:1"))
	requireErr(t, err, ErrBadRequest, "member id 0")
	_, err = e.do(attrSet(1, "n1", "http://ok:1", "not a url"))
	requireErr(t, err, ErrBadRequest, `"not a url"`)
	_, err = e.do(attrSet(1, "n1", "http://ok:1", "%zz"))
	requireErr(t, err, ErrBadRequest, `"%zz"`)
	requireMembers(t, "after bad input", e.sm.MemberAttributes(), want)

	// The caller owns what it gets.
	got := e.sm.MemberAttributes()
	got[1].ClientURLs[0] = "scribbled"
	delete(got, 2)
	requireMembers(t, "after the caller scribbled", e.sm.MemberAttributes(), want)

	if r := e.sm.Store().Rev(); r != rev {
		t.Fatalf("member attributes moved the revision from %d to %d", rev, r)
	}

	e.restart()
	requireMembers(t, "after restart", e.sm.MemberAttributes(), want)

	// A snapshot carries them, and replaces what the receiver had.
	dst := newEnv(t)
	dst.must(attrSet(9, "stale", "http://stale:1"))
	e.snapshotInto(dst, 100)
	requireMembers(t, "after restore", dst.sm.MemberAttributes(), want)
	dst.restart()
	requireMembers(t, "after restore and restart", dst.sm.MemberAttributes(), want)
	if dst.get("k") != "v" {
		t.Fatal("the snapshot lost the data")
	}
}
