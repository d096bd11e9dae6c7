// Package server serves cairn over the etcd v3 gRPC API, so that etcdctl,
// clientv3 and the concurrency recipes work against it unchanged.
package server
