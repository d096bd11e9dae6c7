// Package config is cairn's configuration: one TOML file, the environment and
// command-line flags, combined into a Config that builds server.Options.
//
// # Layers
//
// A value comes from the last layer that sets it:
//
//  1. Default: every key has a default that runs a one-node cluster on a
//     laptop, so no file is needed. Template renders them, commented.
//  2. The file: Load reads Default, then the TOML file over it. A key the
//     file leaves out keeps its default; a key Config does not know is an
//     error naming it (a typo never passes silently).
//  3. The environment: ApplyEnv sets the keys named by CAIRN_ variables.
//  4. Flags: the command line sets single keys with Set.
//
// Then Validate checks every value, and ServerOptions validates and builds
// the server's options.
//
//	cfg, err := config.Load("cairn.toml") // or config.Default()
//	err = cfg.ApplyEnv(os.Environ())
//	err = cfg.Set("cluster.data_dir", "/var/lib/cairn")
//	opts, err := cfg.ServerOptions()
//
// # Keys and variables
//
// A key is written as in the file: its section and name joined by dots, e.g.
// raft.election_tick, raft.persistence.strategy, network.bulk.max_message_size.
// Its environment variable is CAIRN_ followed by the key in upper case with
// every dot replaced by an underscore:
//
//	cluster.data_dir               CAIRN_CLUSTER_DATA_DIR
//	raft.persistence.strategy      CAIRN_RAFT_PERSISTENCE_STRATEGY
//	network.bulk.max_message_size  CAIRN_NETWORK_BULK_MAX_MESSAGE_SIZE
//
// Every variable starting with CAIRN_ must name a key. In the environment and
// in Set, a list (cluster.join) is written comma-separated, an integer may
// use underscores between digits (8_589_934_592), a boolean is true or false,
// and raft.persistence.flush_policy is written as in the file:
// Immediate or { Batch = { threshold = 1000, interval_ms = 100 } }.
//
// # Errors
//
// Every error about a value is an *Error naming the key, the value and what
// is allowed, and where the value came from when that is known:
//
//	cairn.toml:7: raft.persistence.strategy = "Sometimes": must be "DiskFirst" or "MemFirst"
//	CAIRN_RAFT_ELECTION_TICK: raft.election_tick = "ten": must be an integer from 1 to 9223372036854775807
//	raft.election_tick = 1: must be greater than raft.heartbeat_tick (1)
//
// Validate sees only values, so its errors have no Source; a command that
// knows which flag, variable or file set a key fills it in. Load, ApplyEnv
// and Validate report every bad value they find, joined (errors.Join), and
// change nothing when they fail; errors.Is(err, ErrInvalid) holds for all of
// them.
package config
