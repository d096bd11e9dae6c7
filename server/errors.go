package server

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/lease"
	"github.com/cairn-db/cairn/mvcc"
	"github.com/cairn-db/cairn/watch"
)

// grpcErrors maps cairn's sentinel errors to the status errors etcd
// clients recognise (clientv3 turns them back into rpctypes errors by their
// message). The first match wins.
var grpcErrors = []struct {
	err  error
	grpc error
}{
	{mvcc.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{watch.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{mvcc.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{mvcc.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
	{watch.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
	{mvcc.ErrValueProvided, rpctypes.ErrGRPCValueProvided},
	{mvcc.ErrLeaseProvided, rpctypes.ErrGRPCLeaseProvided},
	{mvcc.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
	{mvcc.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
	{mvcc.ErrInvalidSortOption, rpctypes.ErrGRPCInvalidSortOption},
	{mvcc.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{kv.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{lease.ErrNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{lease.ErrExists, rpctypes.ErrGRPCLeaseExist},
	{lease.ErrTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
	{kv.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
	{kv.ErrCorrupt, rpctypes.ErrGRPCCorrupt},
	{engine.ErrTooLarge, rpctypes.ErrGRPCRequestTooLarge},
	{engine.ErrProposalTimeout, rpctypes.ErrGRPCTimeout},
	{engine.ErrProposalDropped, rpctypes.ErrGRPCTimeoutDueToLeaderFail},
	{engine.ErrStopped, rpctypes.ErrGRPCStopped},
	{kv.ErrClosed, rpctypes.ErrGRPCStopped},
	{engine.ErrRemoved, rpctypes.ErrGRPCStopped},
	{watch.ErrStopped, rpctypes.ErrGRPCStopped},
	{engine.ErrUnknownMember, rpctypes.ErrGRPCMemberNotFound},
	{engine.ErrMemberExists, rpctypes.ErrGRPCMemberExist},
	{engine.ErrNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{lease.ErrNotLeader, rpctypes.ErrGRPCNotLeader},
	{errNoLeader, rpctypes.ErrGRPCNoLeader},
	{context.DeadlineExceeded, rpctypes.ErrGRPCTimeout},
	{context.Canceled, rpctypes.ErrGRPCCanceled},
}

// failedPrecondition lists the errors that refuse a request the server is
// configured not to serve; they keep cairn's message.
var failedPrecondition = []error{engine.ErrOverrideNotAllowed}

// invalidArgument lists the errors that mean "your request is wrong": they
// keep cairn's own message under codes.InvalidArgument.
var invalidArgument = []error{
	mvcc.ErrKeyTooLarge, mvcc.ErrValueTooLarge, mvcc.ErrInvalidRange, mvcc.ErrInvalidRevision,
	mvcc.ErrInvalidCompare, kv.ErrBadRequest, lease.ErrInvalidID, watch.ErrInvalidRange,
	watch.ErrInvalidRevision, engine.ErrNoAddress, engine.ErrInvalidChange, engine.ErrIDReused,
	errBadRequest, engine.ErrUnknownReadPolicy,
}

var (
	errNoLeader   = errors.New("server: no leader")
	errBadRequest = errors.New("server: bad request")
	errNoSpace    = fmt.Errorf("server: %w", kv.ErrNoSpace)
	errStopping   = fmt.Errorf("server: %w", engine.ErrStopped)
	errTooLarge   = fmt.Errorf("%w: request larger than storage.max_request_bytes", engine.ErrTooLarge)
)

// toGRPC turns err into a status error an etcd client understands.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, m := range grpcErrors {
		if errors.Is(err, m.err) {
			return m.grpc
		}
	}
	for _, e := range failedPrecondition {
		if errors.Is(err, e) {
			return status.Error(codes.FailedPrecondition, err.Error())
		}
	}
	for _, e := range invalidArgument {
		if errors.Is(err, e) {
			return status.Error(codes.InvalidArgument, err.Error())
		}
	}
	return status.Error(codes.Unknown, err.Error())
}
