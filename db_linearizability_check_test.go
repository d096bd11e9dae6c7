package cairn_test

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"

	"github.com/anishathalye/porcupine"
)

// The histories of db_linearizability_test.go: puts, gets and
// compare-and-swaps on a few keys, every value written unique.

type opKind int

const (
	opGet opKind = iota
	opPut
	opCAS
)

// linInput is what a client asked.
type linInput struct {
	Kind   opKind
	Key    string
	Value  string // put: the value; cas: the new value
	Expect string // cas: the value expected; "" means the key is absent
}

// linOutput is what it was told.
type linOutput struct {
	Value   string // get: the value read, "" if absent
	ModRev  int64  // get: the key's mod revision, 0 if absent
	Rev     int64  // get: the store's revision at the read
	OK      bool   // cas: whether it swapped
	Unknown bool   // write: failed in a way that leaves its effect unknown
	Node    uint64 // the node that served it
}

// unknownReturn is the return time of a write whose outcome is unknown: it
// may take effect at any point after its call.
const unknownReturn = math.MaxInt64

// kvModel is the sequential specification of one key (the history is
// partitioned by key): its state is the key's value, "" when absent.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(linInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(linInput), output.(linOutput)
		switch in.Kind {
		case opGet:
			return out.Value == s, s
		case opPut:
			return true, in.Value
		default: // opCAS
			matches := s == in.Expect
			next := s
			if matches {
				next = in.Value
			}
			if out.Unknown {
				// Whether it swapped depends only on the state where it
				// takes effect (placed last, it changes nothing observed).
				return true, next
			}
			return out.OK == matches, next
		}
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		switch in.Kind {
		case opGet:
			return fmt.Sprintf("n%d get(%s) -> %q @%d", out.Node, in.Key, out.Value, out.ModRev)
		case opPut:
			if out.Unknown {
				return fmt.Sprintf("n%d put(%s, %q) -> ?", out.Node, in.Key, in.Value)
			}
			return fmt.Sprintf("n%d put(%s, %q)", out.Node, in.Key, in.Value)
		default:
			if out.Unknown {
				return fmt.Sprintf("n%d cas(%s, %q -> %q) -> ?", out.Node, in.Key, in.Expect, in.Value)
			}
			return fmt.Sprintf("n%d cas(%s, %q -> %q) -> %v", out.Node, in.Key, in.Expect, in.Value, out.OK)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state.(string)) },
}

// checkEventual checks what EventualConsistency promises (see
// engine.ReadPolicy) of the gets of history, and returns every violation:
//
//   - no value from nowhere: a get returns "" or a value some put or cas of
//     the history wrote (whatever its outcome), with one mod revision;
//   - no read from the future: that write was called before the get returned;
//   - monotonic reads per node: a get on a node that starts after another
//     get on the same node returned sees a store revision at least as high,
//     and for the same key a mod revision at least as high.
func checkEventual(history []porcupine.Operation) []string {
	var problems []string
	type kv struct{ key, value string }
	writes := map[kv]porcupine.Operation{}
	modRevs := map[kv]int64{}
	var gets []porcupine.Operation
	for _, op := range history {
		in := op.Input.(linInput)
		switch in.Kind {
		case opGet:
			gets = append(gets, op)
		default:
			writes[kv{in.Key, in.Value}] = op
		}
	}
	for _, g := range gets {
		in, out := g.Input.(linInput), g.Output.(linOutput)
		if out.Value == "" {
			if out.ModRev != 0 {
				problems = append(problems, fmt.Sprintf("get(%s) on node %d read no value at mod revision %d", in.Key, out.Node, out.ModRev))
			}
			continue
		}
		k := kv{in.Key, out.Value}
		w, ok := writes[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("get(%s) on node %d read %q, which no write wrote", in.Key, out.Node, out.Value))
		case w.Call > g.Return:
			problems = append(problems, fmt.Sprintf("get(%s) on node %d read %q at %d, written by a write called later, at %d",
				in.Key, out.Node, out.Value, g.Return, w.Call))
		}
		if r, seen := modRevs[k]; seen && r != out.ModRev {
			problems = append(problems, fmt.Sprintf("%s=%q read at mod revisions %d and %d", in.Key, out.Value, r, out.ModRev))
		}
		modRevs[k] = out.ModRev
	}

	// Monotonic reads per node: sweep the gets of each node in call order,
	// folding in those that returned before each call.
	byNode := map[uint64][]porcupine.Operation{}
	for _, g := range gets {
		n := g.Output.(linOutput).Node
		byNode[n] = append(byNode[n], g)
	}
	for node, ops := range byNode {
		byCall := append([]porcupine.Operation(nil), ops...)
		sort.Slice(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
		byReturn := append([]porcupine.Operation(nil), ops...)
		sort.Slice(byReturn, func(i, j int) bool { return byReturn[i].Return < byReturn[j].Return })
		var maxRev int64
		maxModRev := map[string]int64{}
		j := 0
		for _, g := range byCall {
			for ; j < len(byReturn) && byReturn[j].Return < g.Call; j++ {
				o := byReturn[j].Output.(linOutput)
				maxRev = max(maxRev, o.Rev)
				k := byReturn[j].Input.(linInput).Key
				maxModRev[k] = max(maxModRev[k], o.ModRev)
			}
			in, out := g.Input.(linInput), g.Output.(linOutput)
			if out.Rev < maxRev {
				problems = append(problems, fmt.Sprintf("node %d went back in time: a get(%s) at %d saw revision %d after an earlier get saw %d",
					node, in.Key, g.Call, out.Rev, maxRev))
			}
			if out.ModRev < maxModRev[in.Key] {
				problems = append(problems, fmt.Sprintf("node %d went back in time: get(%s) at %d read %q (mod revision %d) after an earlier get read mod revision %d",
					node, in.Key, g.Call, out.Value, out.ModRev, maxModRev[in.Key]))
			}
		}
	}
	return problems
}
