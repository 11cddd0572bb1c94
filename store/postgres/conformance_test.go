package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
	"github.com/mcpd/mcpd/store/storetest"
)

// openTest opens a store on a fresh schema, closed when the test ends.
func openTest(t testing.TB, opts *postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.URL(t), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fixture(t *testing.T) storetest.Fixture {
	s := openTest(t, nil)
	return storetest.Fixture{
		Storage: s,
		AddClient: func(t *testing.T, id string) {
			if err := s.CreateClient(context.Background(), &store.Client{ID: id, TokenEndpointAuthMethod: "none", Source: store.SourceDynamic}); err != nil {
				t.Fatalf("CreateClient(%q): %v", id, err)
			}
		},
	}
}

// TestConformancePostgres runs the whole conformance suite against the
// PostgreSQL store: the fosite rules, their transactions and every rule
// of store.Backend, as the bbolt store does.
func TestConformancePostgres(t *testing.T) {
	storetest.Run(t, fixture)
	storetest.RunTransactional(t, fixture)
	storetest.RunSubjectGrants(t, fixture)
	storetest.RunBackend(t, func(t *testing.T, now func() time.Time) store.Backend {
		return openTest(t, &postgres.Options{Now: now})
	})
}

// TestConformancePostgresLogin runs the suite's rules of sign-in state and
// passkeys against the PostgreSQL store.
func TestConformancePostgresLogin(t *testing.T) {
	storetest.RunLogin(t, func(t *testing.T) storetest.LoginFixture {
		clk := storetest.NewClock()
		return storetest.LoginFixture{
			Storage: openTest(t, &postgres.Options{Now: clk.Now}),
			Now:     clk.Now,
			Advance: clk.Advance,
		}
	})
}

// TestRetentionPostgres runs the rules of bounded growth against the
// PostgreSQL store with its default KeepRotated, as TestRetentionBolt does
// against the bbolt store.
func TestRetentionPostgres(t *testing.T) {
	storetest.RunRetention(t, fixture, storetest.Retention{
		Keep:        store.DefaultKeepRotated,
		Successors:  func(f storetest.Fixture) storetest.Successors { return f.Storage.(*postgres.Store) },
		ErrNotFound: store.ErrNotFound,
	})
}

// TestConformancePostgresIdentities runs the suite's rules of identity
// providers' records against the PostgreSQL store.
func TestConformancePostgresIdentities(t *testing.T) {
	storetest.RunIdentities(t, func(t *testing.T) storetest.IdentityStorage { return openTest(t, nil) })
}

func TestConformanceProofJTIsPostgres(t *testing.T) {
	storetest.RunProofJTIs(t, func(t *testing.T) storetest.ProofJTIStore { return openTest(t, nil) }, store.ErrAlreadyExists)
}

var _ fosite.Storage = (*postgres.Store)(nil)
