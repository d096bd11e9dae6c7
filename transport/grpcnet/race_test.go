//go:build race

package grpcnet

// raceEnabled reports whether the race detector is on; it multiplies the CPU
// cost of everything by ten or more, which a latency test has to allow for.
const raceEnabled = true
