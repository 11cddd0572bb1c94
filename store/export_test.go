package store

// GroupCommitState reports the commits the group commit has made and the
// writers waiting for the writer slot.
func (s *Store) GroupCommitState() (commits, queued int) {
	s.gc.mu.Lock()
	defer s.gc.mu.Unlock()
	return s.gc.commits, s.gc.queued
}
