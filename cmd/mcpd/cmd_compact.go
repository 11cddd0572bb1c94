package main

import (
	"fmt"
)

const compactUsage = `Usage: mcpd compact [--data DIR] [--json]

Rewrites DATA/mcpd.db with only its records, giving back the space that
rotated, revoked and expired records left behind: the file grows to hold
its busiest moment and never shrinks by itself. With the server running it
compacts through the admin socket: writes wait while the records are copied
(in proportion to the live records), reads go on. With the server stopped
it opens the file itself. Either way the file is replaced in one rename, so
a crash leaves the old file or the whole new one.`

func (e cliEnv) compact(args []string) error {
	fs, f := e.adminFlagSet("compact", compactUsage, true, false)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("compact takes no arguments")
	}
	a, err := e.openAdmin(f, false)
	if err != nil {
		return err
	}
	defer a.Close()
	v, err := a.Compact(e.ctx)
	if err != nil {
		return err
	}
	if *f.json {
		return e.printJSON(v)
	}
	fmt.Fprintf(e.stdout, "compacted %s: %s → %s\n", v.Path, bytesText(v.BeforeBytes), bytesText(v.AfterBytes))
	return nil
}

// bytesText writes a size the way people read it: 1.9 MB, 108 MB, 812 kB.
func bytesText(n int64) string {
	switch {
	case n >= 100e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}
