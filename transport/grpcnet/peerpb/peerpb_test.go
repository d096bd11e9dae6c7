package peerpb

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestRaftDescriptorResolves checks that peer.proto's import of raft.proto
// resolves to the descriptor raftpb registered, under the same path: a
// mismatch would make protobuf warn or panic at init, or marshal raft
// messages through a second, divergent descriptor.
func TestRaftDescriptorResolves(t *testing.T) {
	fd, err := protoregistry.GlobalFiles.FindFileByPath("transport/grpcnet/peerpb/peer.proto")
	if err != nil {
		t.Fatal(err)
	}
	raft, err := protoregistry.GlobalFiles.FindFileByPath("raft.proto")
	if err != nil {
		t.Fatal(err)
	}
	if got := fd.Imports().Get(0).FileDescriptor; got != raft {
		t.Fatalf("peer.proto imports %v, want raftpb's raft.proto", got.Path())
	}
	field := fd.Messages().ByName("Batch").Fields().ByName("messages")
	if got, want := field.Message(), (&raftpb.Message{}).ProtoReflect().Descriptor(); got != want {
		t.Fatalf("Batch.messages is %v, want raftpb.Message", got.FullName())
	}
}
