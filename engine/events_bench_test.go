package engine

import "testing"

type nopReporter struct{}

func (nopReporter) Report(Event) {}

// BenchmarkEmit measures an emit site as the engine writes them
// (`if e.ev.enabled() { e.ev.emit(Event{...}) }`): with no Reporter it must
// cost a nil check and allocate nothing; with one, numbering and queueing
// (the reporter's goroutine drains the queue meanwhile; what overflows is
// counted as dropped, which is cheaper).
func BenchmarkEmit(b *testing.B) {
	for _, bc := range []struct {
		name string
		r    Reporter
	}{{"reporter=nil", nil}, {"reporter=nop", nopReporter{}}} {
		b.Run(bc.name, func(b *testing.B) {
			ev := newEvents(1, bc.r)
			defer ev.stop()
			b.ReportAllocs()
			for i := range b.N {
				if ev.enabled() {
					ev.emit(Event{Type: EventCommitted, Index: uint64(i), Term: 2})
				}
			}
		})
	}
}
