//go:build !unix

package store

// ownerNote says nothing where file owners are not uids.
func ownerNote(string) string { return "" }

// freeBytes does not know the free space here.
func freeBytes(string) (int64, bool) { return 0, false }
