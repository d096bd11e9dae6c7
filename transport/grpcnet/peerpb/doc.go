// Package peerpb holds the wire types and the gRPC service of cairn's peer
// transport, generated from peer.proto.
//
// peer.proto imports raft.proto from go.etcd.io/raft/v3 by the path that
// raftpb registers itself under ("raft.proto"), so that both descriptors
// resolve in the global registry. Regenerate with protoc, protoc-gen-go and
// protoc-gen-go-grpc on PATH:
//
//	go generate ./transport/grpcnet/peerpb
package peerpb

//go:generate sh -c "protoc -I ../../.. -I \"$(go list -m -f '{{.Dir}}' go.etcd.io/raft/v3)/raftpb\" --go_out=../../.. --go_opt=paths=source_relative --go-grpc_out=../../.. --go-grpc_opt=paths=source_relative transport/grpcnet/peerpb/peer.proto"
