//go:build race

package mvcc

// raceEnabled: the race detector slows Pebble down by an order of magnitude
// and distorts heap measurements.
const raceEnabled = true
