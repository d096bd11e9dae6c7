package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// doc describes one key or table in Template.
type doc struct {
	text  string
	bytes bool // the value is a size in bytes: Template shows it in KiB/MiB/GiB too
}

// tableDocs describe the sections, printed above their header.
var tableDocs = map[string]string{
	"cluster": "Who this member is, where it keeps its data and listens, and which cluster it starts or joins.",
	"raft":    "The raft node: tick, election and heartbeat timing, and the bounds of messages and proposals.",
	"raft.persistence": "When a log entry counts as stored. Read the Durability section of the README before " +
		"choosing MemFirst.",
	"raft.snapshot": "When snapshots are taken and how much log is kept behind them.",
	"raft.read_consistency": "How reads wait for the cluster. LinearizableRead asks the leader for its commit " +
		"index, confirmed by a quorum (no clock assumption). LeaseRead lets a leader holding a lease answer " +
		"alone; it assumes bounded clock drift (see lease_duration_ms). EventualConsistency answers from any " +
		"member's local state at once (etcd's serializable reads). A follower serves LeaseRead as " +
		"LinearizableRead. Clients choose per request with etcd's serializable flag or the gRPC metadata key " +
		"cairn-read-consistency (linearizable, lease or eventual).",
	"raft.read_consistency.read_batching": "Linearizable reads share quorum rounds. A read arriving when no " +
		"round is in flight starts one at once; reads arriving meanwhile wait for the next round, which starts " +
		"when the rounds in flight end, or alongside them once size_threshold reads wait or the oldest has " +
		"waited time_threshold_ms.",
	"raft.watch":           "The watch hub: buffers and limits of watchers.",
	"raft.rpc_compression": "gzip per kind of traffic (true or false each). Receivers always accept compressed messages.",
	"network": "The peer transport has three connection classes per peer, each tuned on its own: control " +
		"(elections and heartbeats: latency), data (log replication: throughput) and bulk (snapshots: " +
		"bandwidth). Every key below is an integer, at least 1.",
	"network.control": "Elections, heartbeats and configuration changes.",
	"network.data":    "Log replication.",
	"network.bulk":    "Snapshot transfers.",
	"storage":         "The storage engine (Pebble) and the limits of the key-value store.",
	"log":             "Logging.",
	"metrics": "An HTTP listener for operators: /metrics (Prometheus text format), /health (200 when this " +
		"member knows a leader and no alarm is raised, 503 otherwise, as etcd's) and /ready (200 once the " +
		"member has caught up and published itself).",
}

// keyDocs describe every key. The keys of network.control, network.data and
// network.bulk are described once, under network.*.
var keyDocs = map[string]doc{
	"cluster.name": {text: "Name of the cluster. Members and data directories of another cluster are refused. " +
		"Any non-empty string; every member of a cluster uses the same."},
	"cluster.member_name": {text: "Name of this member, unique in its cluster; its member id derives from it and " +
		"cluster.name. Non-empty, without \"=\" or \",\"."},
	"cluster.data_dir": {text: "Directory of this member's log, state and snapshots; created if missing. A path, " +
		"relative to the working directory or absolute."},
	"cluster.listen_client": {text: "Address the etcd v3 API listens on, HOST:PORT. An empty host listens on every " +
		"interface; port 0 picks a free port."},
	"cluster.listen_peer": {text: "Address other members connect to, HOST:PORT. An empty host listens on every " +
		"interface; port 0 picks a free port."},
	"cluster.advertise_client": {text: "Client URL published to the cluster and its clients, http://HOST:PORT or " +
		"HOST:PORT. Empty: http:// and the address cluster.listen_client is bound to."},
	"cluster.initial_cluster": {text: "Members of a new cluster: \"NAME=HOST:PORT,NAME=HOST:PORT\" with their peer " +
		"addresses, this member included. Empty: a one-node cluster of this member. Read only when the data " +
		"directory is empty."},
	"cluster.join": {text: "Client addresses of a running cluster to join, [\"HOST:PORT\", ...]. A member with an " +
		"empty data directory asks them for its place (or adds itself) and catches up. Ignored once the data " +
		"directory holds data. Empty: start or restart without joining."},

	"raft.tick_ms": {text: "Length of one raft tick, in milliseconds. Integer, at least 1."},
	"raft.election_tick": {text: "Election timeout, in ticks: a follower that hears no leader for this long " +
		"starts an election. Integer, greater than raft.heartbeat_tick (10 times it is usual)."},
	"raft.heartbeat_tick": {text: "Heartbeat interval of the leader, in ticks. Integer, at least 1."},
	"raft.max_size_per_msg": {text: "Largest size of the entries in one append message, in bytes. " +
		"Integer, at least 1.", bytes: true},
	"raft.max_inflight_msgs": {text: "Append messages in flight to one follower before the leader waits for " +
		"acknowledgements. Integer, at least 1."},
	"raft.max_uncommitted_bytes": {text: "Largest uncommitted log of the leader, in bytes; proposals beyond it " +
		"are refused until entries commit. Integer, at least 1.", bytes: true},
	"raft.max_proposal_bytes": {text: "Largest proposal, in bytes. Integer, at least 1, and at least " +
		"storage.max_request_bytes.", bytes: true},
	"raft.disable_pre_vote": {text: "true turns off PreVote, which keeps a partitioned member that comes back " +
		"from disrupting the leader. true or false."},
	"raft.disable_check_quorum": {text: "true turns off CheckQuorum, which makes a leader that lost its quorum " +
		"step down. true or false."},

	"raft.persistence.strategy": {text: "\"DiskFirst\": an entry is fsynced before this member acknowledges it; " +
		"an acknowledged write survives any crash. \"MemFirst\": an entry is acknowledged from the storage " +
		"engine's buffers and fsynced by flush_policy; a crash of a member loses at most its unflushed tail."},
	"raft.persistence.flush_policy": {text: "When MemFirst writes are fsynced: \"Immediate\" (after every write " +
		"batch) or { Batch = { threshold = N, interval_ms = M } } (once N entries are unflushed or M " +
		"milliseconds have passed; N and M at least 1). Unused by DiskFirst."},

	"raft.snapshot.threshold": {text: "Applied entries after which a new snapshot is taken and the log " +
		"compacted. Integer, at least 1."},
	"raft.snapshot.catch_up_margin": {text: "Entries kept in the log behind a snapshot, so that a follower " +
		"slightly behind catches up from the log rather than from a snapshot. Integer, at least 1 and at " +
		"most 10 times raft.snapshot.threshold."},

	"raft.read_consistency.default_policy": {text: "Policy of the reads that ask for none: " +
		"\"LinearizableRead\", \"LeaseRead\" or \"EventualConsistency\". LeaseRead needs CheckQuorum " +
		"(raft.disable_check_quorum = false)."},
	"raft.read_consistency.lease_duration_ms": {text: "How long a leader's lease lasts after the start of the " +
		"quorum round that confirmed it, in milliseconds. Integer, at least 1 and less than " +
		"(raft.election_tick - 1) × raft.tick_ms (900 with the defaults). The difference is the clock drift " +
		"tolerated: over one lease the leader's clock must not run slower than a follower's by more than it."},
	"raft.read_consistency.allow_client_override": {text: "true lets a request ask for another policy than " +
		"default_policy; false refuses such a request (etcd's serializable flag is always honoured). " +
		"true or false."},
	"raft.read_consistency.read_batching.size_threshold": {text: "Waiting reads that start a round at once, " +
		"even while others are in flight. Integer, at least 1."},
	"raft.read_consistency.read_batching.time_threshold_ms": {text: "Longest a read waits for its round to " +
		"start, in milliseconds, while others are in flight. Integer, at least 1."},

	"raft.watch.event_queue_size": {text: "Events the watch hub dispatches under one hold of its lock, and " +
		"reads at once for a watcher catching up. Integer, at least 1."},
	"raft.watch.watcher_buffer_size": {text: "Responses buffered per watcher; a watcher whose buffer is full " +
		"is moved off the live path and catches up from history (never dropped). Integer, at least 1."},
	"raft.watch.max_watchers": {text: "Watchers open at once; more are refused. Integer, at least 1."},
	"raft.watch.progress_interval_ms": {text: "Period of the progress notifications sent to watchers that " +
		"asked for them, in milliseconds. Integer, at least 1."},
	"raft.watch.max_response_bytes": {text: "Size a watch response stays under, in bytes; responses are cut at " +
		"revision boundaries. Integer, at least 1.", bytes: true},

	"raft.rpc_compression.replication": {text: "Compress log replication (the data class)."},
	"raft.rpc_compression.election":    {text: "Compress elections and heartbeats (the control class)."},
	"raft.rpc_compression.snapshot":    {text: "Compress snapshot transfers (the bulk class)."},
	"raft.rpc_compression.client":      {text: "Compress responses to clients that accept gzip."},

	"network.*.connect_timeout_in_ms": {text: "Timeout of dialing a peer, in milliseconds."},
	"network.*.request_timeout_in_ms": {text: "Timeout of one unit of work, in milliseconds: a batch of " +
		"messages on control and data, a whole snapshot transfer on bulk."},
	"network.*.tcp_keepalive_in_secs":             {text: "TCP keepalive period of a connection, in seconds."},
	"network.*.http2_keep_alive_interval_in_secs": {text: "How often an idle connection is pinged, in seconds."},
	"network.*.http2_keep_alive_timeout_in_secs": {text: "How long a ping may go unanswered before the " +
		"connection is closed, in seconds."},
	"network.*.connection_window_size": {text: "HTTP/2 flow-control window of a connection, in bytes; at " +
		"least 65536.", bytes: true},
	"network.*.stream_window_size": {text: "HTTP/2 flow-control window of one stream, in bytes; at least " +
		"65536.", bytes: true},
	"network.*.max_message_size":       {text: "Largest message sent or received, in bytes; at least 65536.", bytes: true},
	"network.*.max_concurrent_streams": {text: "Streams one connection carries at once."},
	"network.*.concurrency_limit": {text: "Streams served at once on the class; more are refused. On bulk it " +
		"also caps outgoing snapshot transfers across all peers."},
	"network.*.queue_size": {text: "Messages queued per peer before more are dropped (on bulk: snapshots " +
		"pending per peer)."},

	"storage.quota_bytes": {text: "Storage size past which writes are refused (the NOSPACE alarm) until space " +
		"is freed and the alarm disarmed, in bytes. Integer, at least 1.", bytes: true},
	"storage.cache_size": {text: "Size of the storage engine's block cache, in bytes. Integer, at least 1.",
		bytes: true},
	"storage.slow_fsync_ms": {text: "A synced write of the log taking longer than this, in milliseconds, is " +
		"reported as a slow-fsync event. Integer, at least 1."},
	"storage.flush_lag_threshold": {text: "Under MemFirst, a flush lag (last index - durable index) over this " +
		"many entries is reported as a flush-lag-high event, and flush-lag-normal once back to half. " +
		"Integer, above the Batch flush threshold (about 4 times it)."},
	"storage.max_request_bytes": {text: "Largest client request, in bytes. Integer, at least 1 and at most " +
		"raft.max_proposal_bytes.", bytes: true},

	"log.level":  {text: "Least severe level logged: \"debug\", \"info\", \"warn\" or \"error\"."},
	"log.format": {text: "\"text\" (key=value pairs) or \"json\" (one object per line)."},

	"metrics.address": {text: "Address of the metrics listener, HOST:PORT; port 0 picks a free port. " +
		"Empty: no listener, and nothing is measured."},
	"metrics.pprof": {text: "true also serves Go's profiles (net/http/pprof) under /debug/pprof/ on the " +
		"metrics listener; it needs metrics.address. true or false."},
}

// docOf returns the description of a key.
func docOf(name string) (doc, bool) {
	if d, ok := keyDocs[name]; ok {
		return d, true
	}
	if rest, ok := strings.CutPrefix(name, "network."); ok {
		if _, leaf, ok := strings.Cut(rest, "."); ok {
			d, ok := keyDocs["network.*."+leaf]
			return d, ok
		}
	}
	return doc{}, false
}

// Template returns the default configuration as a TOML file, every key
// commented with what it does and the values it takes. Load of it gives
// Default.
func Template() string {
	var b strings.Builder
	b.WriteString(`# cairn configuration.
#
# Every key below is set to its default; delete the ones you do not change.
# A value comes from, last wins: the default, this file (cairn serve --config),
# the environment, the command line. The variable of a key is CAIRN_ and the
# key in upper case, dots replaced by underscores: cluster.data_dir is
# CAIRN_CLUSTER_DATA_DIR, raft.persistence.strategy is
# CAIRN_RAFT_PERSISTENCE_STRATEGY.
`)
	v := reflect.ValueOf(Default())
	table := ""
	described := map[string]bool{}
	for _, k := range keys() {
		t := k.name[:strings.LastIndex(k.name, ".")]
		if t != table {
			// Describe the tables entered, from the outermost.
			for i := range len(t) + 1 {
				if i == len(t) || t[i] == '.' {
					if p := t[:i]; !described[p] {
						described[p] = true
						if d := tableDocs[p]; d != "" && p != t {
							b.WriteString("\n")
							comment(&b, d)
						}
					}
				}
			}
			b.WriteString("\n")
			comment(&b, tableDocs[t])
			fmt.Fprintf(&b, "[%s]\n", t)
			table = t
		}
		d, _ := docOf(k.name)
		b.WriteString("\n")
		comment(&b, d.text)
		f := v.FieldByIndex(k.index)
		fmt.Fprintf(&b, "%s = %s", k.name[len(t)+1:], formatValue(f))
		if d.bytes {
			if h := humanBytes(f); h != "" {
				fmt.Fprintf(&b, " # %s", h)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// comment writes text as comment lines of at most about 80 columns. Text
// inside braces ({ Batch = ... }) is not broken.
func comment(b *strings.Builder, text string) {
	if text == "" {
		return
	}
	var words []string
	depth, start := 0, 0
	for i, r := range text + " " {
		switch {
		case r == '{':
			depth++
		case r == '}':
			depth--
		case r == ' ' && depth == 0:
			if i > start {
				words = append(words, text[start:i])
			}
			start = i + 1
		}
	}
	line := "#"
	for _, w := range words {
		if len(line)+1+len(w) > 80 && line != "#" {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
}

// formatValue renders a key's value as TOML.
func formatValue(v reflect.Value) string {
	if s, ok := v.Interface().(fmt.Stringer); ok && v.Kind() == reflect.Struct {
		return s.String() // flush_policy renders itself as TOML
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return groupDigits(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return groupDigits(strconv.FormatUint(v.Uint(), 10))
	case reflect.Slice:
		return formatList(v.Interface().([]string))
	}
	panic(fmt.Sprintf("config: cannot render %s", v.Type()))
}

// groupDigits writes 8589934592 as 8_589_934_592.
func groupDigits(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if len(s) <= 4 {
		if neg {
			return "-" + s
		}
		return s
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, '_')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// humanBytes renders a size of at least 1 KiB in KiB, MiB or GiB.
func humanBytes(v reflect.Value) string {
	var n float64
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = float64(v.Int())
	default:
		n = float64(v.Uint())
	}
	for _, u := range []struct {
		size float64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size {
			return strconv.FormatFloat(n/u.size, 'g', 4, 64) + " " + u.name
		}
	}
	return ""
}
