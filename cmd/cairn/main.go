// Command cairn runs a cairn node. Everything it does is in the packages it
// calls; this file only wires the command line.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(cliMain(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// printError writes err after "cairn: ", several errors (errors.Join) one
// per line.
func printError(w io.Writer, err error) {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) == 1 {
		fmt.Fprintln(w, "cairn:", err)
		return
	}
	fmt.Fprintf(w, "cairn: %d errors:\n", len(lines))
	for _, l := range lines {
		fmt.Fprintln(w, "  "+l)
	}
}
