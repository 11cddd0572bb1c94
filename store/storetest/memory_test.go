package storetest_test

import (
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"

	"github.com/mcpd/mcpd/store/storetest"
)

// TestConformanceMemory runs the suite against fosite's own reference
// store: whatever the suite asks, fosite asks too.
func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Fixture {
		s := storage.NewMemoryStore()
		return storetest.Fixture{
			Storage: s,
			AddClient: func(t *testing.T, id string) {
				s.Clients[id] = &fosite.DefaultClient{ID: id, Public: true}
			},
		}
	})
}
