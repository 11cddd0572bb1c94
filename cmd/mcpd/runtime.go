package main

import "runtime/debug"

// The garbage collector settings mcpd serve runs with unless the
// environment sets GOGC or GOMEMLIMIT. The go-sdk allocates about 400 KB
// per tools/call on a live heap of a few MB, so with Go's default target
// (GOGC=100) the collector runs every few calls and takes a third of the
// CPU. A target of 400 collects a quarter as often; the soft limit keeps
// the resident set near 40 MB under load anyway (heap goal = min(5 × live
// heap, limit)). docs/benchmarks.md has the measurements. A deployment
// with a larger live heap (thousands of sessions) should raise GOMEMLIMIT:
// above the limit the collector runs continuously, capped at half the CPU.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 24 << 20 // bytes
)

// applyRuntimeDefaults sets the GC target and the soft memory limit for
// `mcpd serve` (args[0] == "serve"), each only when getenv has no GOGC or
// GOMEMLIMIT respectively; other commands keep Go's defaults. It returns
// what it set, -1 for a value left alone.
func applyRuntimeDefaults(args []string, getenv func(string) string) (gcPercent int, memoryLimit int64) {
	gcPercent, memoryLimit = -1, -1
	if len(args) == 0 || args[0] != "serve" {
		return gcPercent, memoryLimit
	}
	if getenv("GOGC") == "" {
		gcPercent = defaultGCPercent
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		memoryLimit = defaultMemoryLimit
		debug.SetMemoryLimit(memoryLimit)
	}
	return gcPercent, memoryLimit
}
