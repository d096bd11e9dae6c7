package watch

import (
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Response is what a watcher receives: events, a progress notification, or
// the final cancel. Events is shared with other watchers and the store:
// read-only.
type Response struct {
	// WatchID is the watcher's id (Watcher.ID).
	WatchID int64
	// Revision is the header revision. Once a response with Fragment unset
	// has been received, every event with revision <= Revision that matches
	// the watch has been received.
	Revision int64
	// Events are the matching events of one or more whole revisions, in
	// revision order — or, with Fragment, part of one revision.
	Events []*mvccpb.Event
	// CompactRevision is set on the final response of a watcher that needed
	// revisions the store compacted away; Canceled is set with it.
	CompactRevision int64
	// Canceled marks the watcher's last response; CancelReason says why.
	Canceled     bool
	CancelReason string
	// Fragment: this response holds part of one revision's events, and more
	// of that revision follow; the last part has Fragment unset.
	Fragment bool
	// ProgressNotify: a bookmark with no events (see Revision).
	ProgressNotify bool
}

// item is one event with its revision, as it travels from Notify or History
// to the response builder.
type item struct {
	rev int64
	ev  *mvccpb.Event
}

// selectEvents returns the items flags keep, each stripped of PrevKv unless
// flags asks for it.
func selectEvents(items []item, flags uint8) []item {
	out := make([]item, 0, len(items))
	for _, it := range items {
		switch it.ev.GetType() {
		case mvccpb.Event_PUT:
			if flags&flagNoPut != 0 {
				continue
			}
		case mvccpb.Event_DELETE:
			if flags&flagNoDelete != 0 {
				continue
			}
		}
		if flags&flagPrevKV == 0 && it.ev.PrevKv != nil {
			it.ev = &mvccpb.Event{Type: it.ev.Type, Kv: it.ev.Kv}
		}
		out = append(out, it)
	}
	return out
}

// Estimated encoding overheads: the response header (id, revisions, flags)
// and the tag and length in front of each event.
const (
	responseOverhead = 64
	eventTagBytes    = 1
)

func eventSize(ev *mvccpb.Event) int {
	n := proto.Size(ev)
	return n + eventTagBytes + protowire.SizeVarint(uint64(n))
}

// buildResponses cuts items (selected, in revision order) into responses.
// Responses are cut only at revision boundaries, each under maxBytes when the
// revisions allow; a single revision over maxBytes is fragmented if
// fragment is set, sent whole otherwise. The last response reports header,
// the others the last revision they complete. WatchID is left to the caller.
func buildResponses(items []item, header int64, maxBytes int, fragment bool) []Response {
	switch len(items) {
	case 0:
		return nil
	case 1: // one event cannot be cut: skip the sizing
		return []Response{{Revision: header, Events: []*mvccpb.Event{items[0].ev}}}
	}
	var (
		out     []Response
		cur     []*mvccpb.Event
		curSize = responseOverhead
		curRev  int64
	)
	flush := func() {
		if len(cur) > 0 {
			out = append(out, Response{Revision: curRev, Events: cur})
			cur, curSize = nil, responseOverhead
		}
	}
	sizes := make([]int, len(items))
	for i := 0; i < len(items); {
		rev := items[i].rev
		j, revSize := i, 0
		for ; j < len(items) && items[j].rev == rev; j++ {
			sizes[j] = eventSize(items[j].ev)
			revSize += sizes[j]
		}
		if len(cur) > 0 && curSize+revSize > maxBytes {
			flush()
		}
		if fragment && j-i > 1 && responseOverhead+revSize > maxBytes {
			flush()
			out = appendFragments(out, items[i:j], sizes[i:j], maxBytes)
		} else {
			for _, it := range items[i:j] {
				cur = append(cur, it.ev)
			}
			curSize += revSize
			curRev = rev
		}
		i = j
	}
	flush()
	out[len(out)-1].Revision = header
	return out
}

// appendFragments splits the events of one revision into responses under
// maxBytes (at least one event each), Fragment set on all but the last.
func appendFragments(out []Response, items []item, sizes []int, maxBytes int) []Response {
	rev := items[0].rev
	var cur []*mvccpb.Event
	size := responseOverhead
	for k, it := range items {
		if len(cur) > 0 && size+sizes[k] > maxBytes {
			out = append(out, Response{Revision: rev, Events: cur, Fragment: true})
			cur, size = nil, responseOverhead
		}
		cur = append(cur, it.ev)
		size += sizes[k]
	}
	return append(out, Response{Revision: rev, Events: cur})
}
