package server

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"google.golang.org/grpc"

	"github.com/cairn-db/cairn"
)

// Start opens the node and starts serving clients. It returns once both run;
// Ready tells when the member has caught up.
func (s *Server) Start() error {
	cfg := s.opts.DB
	if err := s.resolveMembership(&cfg); err != nil {
		return err
	}
	s.initMetrics(&cfg)
	db, err := cairn.Start(cfg)
	if err != nil {
		return err
	}
	s.db = db
	lis, err := net.Listen("tcp", s.opts.ListenClient)
	if err != nil {
		db.Close()
		return fmt.Errorf("server: listen for clients on %s: %w", s.opts.ListenClient, err)
	}
	s.lis = lis
	if err := s.startHTTP(); err != nil {
		lis.Close()
		db.Close()
		return err
	}
	if s.opts.AdvertiseClient == "" {
		s.opts.AdvertiseClient = "http://" + lis.Addr().String()
	}
	s.grpc = grpc.NewServer(s.grpcOptions()...)
	s.register(s.grpc)
	if s.http != nil {
		s.http.m.InitializeGRPC(s.grpc)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(lis); err != nil {
			s.log.Error("client listener stopped", "err", err)
		}
	}()
	go s.run()
	return nil
}

// run publishes this member once the node is ready and watches it until it
// stops.
func (s *Server) run() {
	defer s.wg.Done()
	e := s.db.Engine()
	select {
	case <-e.Ready():
		s.publish()
	case <-e.Done():
	case <-s.ctx.Done():
		return
	}
	select {
	case <-e.Done():
		s.stop(e.Err())
	case <-s.ctx.Done():
	}
}

// publish records this member's name and client URL in the cluster, then
// marks the server ready. It retries until it succeeds or the server stops.
func (s *Server) publish() {
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.requestTimeout())
		err := s.db.PublishMember(ctx, s.opts.Name, []string{s.opts.AdvertiseClient})
		cancel()
		if err == nil {
			close(s.readyc)
			s.log.Info("ready", "name", s.opts.Name, "id", fmt.Sprintf("%x", s.db.Engine().ID()),
				"client", s.opts.AdvertiseClient, "peer", s.db.Engine().PeerAddr())
			return
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("publishing member attributes", "err", err)
	}
}

// Shutdown stops serving clients and stops the node. It is safe to call more
// than once.
func (s *Server) Shutdown() error {
	s.stop(nil)
	s.wg.Wait()
	return s.Err()
}

func (s *Server) stop(cause error) {
	s.once.Do(func() {
		s.cancel()
		if s.grpc != nil {
			s.grpc.Stop()
		}
		s.stopHTTP() // before the node closes: scrapes read it
		var err error
		if s.db != nil {
			err = s.db.Close()
		}
		if cause == nil {
			cause = err
		}
		s.mu.Lock()
		s.err = cause
		s.mu.Unlock()
		close(s.donec)
	})
}

// hostPort turns a URL or a host:port into host:port.
func hostPort(s string) (string, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", err
		}
		s = u.Host
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", err
	}
	return s, nil
}
