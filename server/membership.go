package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
)

// memberFile records, in the data directory, which member of which
// cluster the directory belongs to. A member started again with the same
// command line finds its id there, whether it was an initial member or
// joined later.
const memberFile = "member.json"

type memberRecord struct {
	Cluster string `json:"cluster"`
	Name    string `json:"name"`
	ID      uint64 `json:"id"`
	Joined  bool   `json:"joined,omitempty"`
}

// resolveMembership fills cfg's node id and initial cluster, or its join
// flag, from the options and the data directory.
func (s *Server) resolveMembership(cfg *cairn.Config) error {
	e := &cfg.Engine
	if e.ClusterName == "" {
		e.ClusterName = "cairn"
	}
	s.clusterID = e.ClusterID()
	if e.NodeID != 0 {
		return nil // set by the embedding program
	}
	rec, found, err := readMember(e.DataDir)
	if err != nil {
		return err
	}
	if found {
		if rec.Cluster != e.ClusterName || rec.Name != s.opts.Name {
			return fmt.Errorf("server: data directory %s belongs to member %q of cluster %q, not member %q of cluster %q",
				e.DataDir, rec.Name, rec.Cluster, s.opts.Name, e.ClusterName)
		}
		e.NodeID, e.Join = rec.ID, rec.Joined
		s.initialPeers(e)
		return nil
	}
	rec = memberRecord{Cluster: e.ClusterName, Name: s.opts.Name}
	if len(s.opts.Join) > 0 {
		if rec.ID, err = s.joinID(e); err != nil {
			return err
		}
		rec.Joined = true
		e.Join = true
	} else {
		rec.ID = MemberID(e.ClusterName, s.opts.Name)
		s.initialPeers(e)
	}
	e.NodeID = rec.ID
	return writeMember(e.DataDir, rec)
}

func (s *Server) initialPeers(e *engine.Config) {
	if e.Join || len(s.opts.InitialCluster) == 0 {
		return
	}
	e.InitialCluster = nil
	for name, addr := range s.opts.InitialCluster {
		e.InitialCluster = append(e.InitialCluster, engine.Peer{ID: MemberID(e.ClusterName, name), Addr: addr})
		if name == s.opts.Name && e.ListenPeer == "" {
			e.ListenPeer = addr
		}
	}
	slices.SortFunc(e.InitialCluster, func(a, b engine.Peer) int { return cmp.Compare(a.ID, b.ID) })
}

// joinID asks the running cluster for this member's id: the id of the
// member added with this node's peer address and not started yet, or a new
// member it adds. It also gives the engine the members' peer addresses, so
// that the node can answer the leader before it has replayed the log.
func (s *Server) joinID(e *engine.Config) (uint64, error) {
	peer, err := hostPort(e.ListenPeer)
	if err != nil || e.ListenPeer == "" {
		return 0, fmt.Errorf("%w: joining needs a listen_peer host:port other members can reach, got %q", ErrInvalidOptions, e.ListenPeer)
	}
	if _, port, _ := net.SplitHostPort(peer); port == "0" {
		return 0, fmt.Errorf("%w: joining needs a fixed listen_peer port, got %q", ErrInvalidOptions, peer)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: s.opts.Join, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, fmt.Errorf("server: join %v: %w", s.opts.Join, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(s.ctx, s.requestTimeout())
	defer cancel()
	list, err := c.MemberList(ctx)
	if err != nil {
		return 0, fmt.Errorf("server: join %v: list members: %w", s.opts.Join, err)
	}
	members := list.Members
	id, err := s.findSelf(members, peer, e.DataDir)
	if err != nil {
		return 0, err
	}
	if id == 0 {
		added, err := c.MemberAdd(ctx, []string{peerURL(peer)})
		if err != nil {
			return 0, fmt.Errorf("server: join %v: add member at %s: %w", s.opts.Join, peer, err)
		}
		id, members = added.Member.ID, added.Members
	}
	e.InitialCluster = nil
	for _, m := range members {
		if len(m.PeerURLs) == 0 {
			continue
		}
		if a, err := hostPort(m.PeerURLs[0]); err == nil {
			e.InitialCluster = append(e.InitialCluster, engine.Peer{ID: m.ID, Addr: a})
		}
	}
	if !slices.ContainsFunc(e.InitialCluster, func(p engine.Peer) bool { return p.ID == id }) {
		e.InitialCluster = append(e.InitialCluster, engine.Peer{ID: id, Addr: peer})
	}
	return id, nil
}

// findSelf returns the id of the member added at peer and not started yet,
// or 0 if there is none.
func (s *Server) findSelf(members []*pb.Member, peer, dir string) (uint64, error) {
	for _, m := range members {
		for _, u := range m.PeerURLs {
			a, err := hostPort(u)
			if err != nil || a != peer {
				continue
			}
			switch m.Name {
			case "":
				return m.ID, nil
			case s.opts.Name:
				return 0, fmt.Errorf("server: join: member %q (%x) already started, but %s is empty; remove it (cairn member remove %x) and join again",
					m.Name, m.ID, dir, m.ID)
			default:
				return 0, fmt.Errorf("server: join: peer address %s belongs to member %q (%x)", peer, m.Name, m.ID)
			}
		}
	}
	return 0, nil
}

func readMember(dir string) (memberRecord, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, memberFile))
	if errors.Is(err, fs.ErrNotExist) {
		return memberRecord{}, false, nil
	}
	if err != nil {
		return memberRecord{}, false, fmt.Errorf("server: read member record: %w", err)
	}
	var rec memberRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.ID == 0 {
		return memberRecord{}, false, fmt.Errorf("server: %s is corrupt (%v); it records which member this data directory belongs to",
			filepath.Join(dir, memberFile), err)
	}
	return rec, true, nil
}

// writeMember writes the record atomically: a temporary file, synced,
// renamed, and the directory synced.
func writeMember(dir string, rec memberRecord) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("server: create data dir: %w", err)
	}
	b, _ := json.Marshal(rec)
	tmp := filepath.Join(dir, memberFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("server: write member record: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, memberFile))
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("server: write member record: %w", err)
	}
	return nil
}
