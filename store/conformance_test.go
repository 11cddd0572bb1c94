package store_test

import (
	"testing"
	"time"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/storetest"
)

func boltFixture(t *testing.T) storetest.Fixture {
	s := openTest(t, nil)
	return storetest.Fixture{
		Storage:   s,
		AddClient: func(t *testing.T, id string) { addClient(t, s, id) },
	}
}

// TestConformanceBolt runs the conformance suite, its fosite rules, their
// transactions and every rule of store.Backend, against the bbolt store.
// With default options a write alone commits on its own and overlapping
// writes share a commit, so the concurrent rules exercise both paths.
func TestConformanceBolt(t *testing.T) {
	storetest.Run(t, boltFixture)
	storetest.RunTransactional(t, boltFixture)
	storetest.RunSubjectGrants(t, boltFixture)
	storetest.RunBackend(t, func(t *testing.T, now func() time.Time) store.Backend {
		return openTest(t, &store.Options{Now: now})
	})
}

// TestConformanceBoltLogin runs the suite's rules of sessions and pending
// authorizations against the bbolt store.
func TestConformanceBoltLogin(t *testing.T) {
	storetest.RunLogin(t, func(t *testing.T) storetest.LoginFixture {
		clk := newClock()
		return storetest.LoginFixture{
			Storage: openTest(t, &store.Options{Now: clk.Now}),
			Now:     clk.Now,
			Advance: clk.Advance,
		}
	})
}

// TestConformanceBoltIdentities runs the identity-provider rules against the
// bbolt store.
func TestConformanceBoltIdentities(t *testing.T) {
	storetest.RunIdentities(t, func(t *testing.T) storetest.IdentityStorage { return openTest(t, nil) })
}
