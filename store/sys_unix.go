//go:build unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ownerNote says who owns path (or the nearest directory above it that
// exists) when that is not the user mcpd runs as.
func ownerNote(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || int(st.Uid) == os.Geteuid() {
				return ""
			}
			return fmt.Sprintf(" (%s belongs to uid %d; mcpd runs as uid %d)", p, st.Uid, os.Geteuid())
		}
		if filepath.Dir(p) == p {
			return ""
		}
	}
}

// freeBytes is the space left for unprivileged writes on dir's file
// system.
func freeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
