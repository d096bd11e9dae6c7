package grpcnet

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/transport"
)

// errMissingHeader is a protocol violation: a stream that does not start with
// its header.
var errMissingHeader = errors.New("grpcnet: stream does not start with a header")

// remoteSentinels are the errors a server names in a status message and a
// client recognizes again, so that errors.Is works on both sides of the wire.
var remoteSentinels = []error{
	transport.ErrWrongCluster,
	transport.ErrWrongNode,
	transport.ErrSnapshotCheck,
}

// toStatus is the one place a server turns an error into a gRPC status.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, transport.ErrWrongCluster), errors.Is(err, transport.ErrWrongNode):
		code = codes.FailedPrecondition
	case errors.Is(err, transport.ErrSnapshotCheck):
		code = codes.DataLoss
	case errors.Is(err, errMissingHeader), errors.Is(err, errProtocol):
		code = codes.InvalidArgument
	}
	return status.Error(code, err.Error())
}

// errProtocol marks a peer that breaks the stream protocol.
var errProtocol = errors.New("grpcnet: protocol violation")

// fromStatus is the one place a client turns a status back into an error
// that matches the sentinel the server named.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() == codes.OK {
		return err
	}
	msg := st.Message()
	for _, s := range remoteSentinels {
		if rest, ok := strings.CutPrefix(msg, s.Error()); ok {
			return fmt.Errorf("%w%s", s, rest)
		}
		if strings.Contains(msg, s.Error()) {
			return fmt.Errorf("%w (peer: %s)", s, msg)
		}
	}
	return err
}
