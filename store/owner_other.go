//go:build !unix

package store

// ownerNote says nothing where file owners are not uids.
func ownerNote(string) string { return "" }
