package main

import (
	"errors"
	"flag"
	"io"
	"strings"
)

// parseInterleaved parses args with fs, allowing flags to follow positional
// arguments (`mcpd user add alice --password-stdin --data DIR`). It returns
// the positional arguments in order. A lone "--" ends flag parsing.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError(err.Error())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at the first non-flag; "--" is consumed by Parse, so a
		// rest that equals the tail after "--" means everything is positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and
// writes its usage to w.
func newFlagSet(name string, w io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		io.WriteString(w, strings.TrimSpace(usage)+"\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}
