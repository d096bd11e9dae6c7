//go:build !race

package grpcnet

const raceEnabled = false
