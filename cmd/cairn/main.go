// Command cairn runs a cairn node. Everything it does is in the packages it
// calls; this file only wires the command line.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}
