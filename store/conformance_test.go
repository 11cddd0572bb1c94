package store_test

import (
	"testing"

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

// TestConformanceBolt runs the fosite conformance suite, and its
// transaction rules, against the bbolt store.
func TestConformanceBolt(t *testing.T) {
	storetest.Run(t, boltFixture)
	storetest.RunTransactional(t, boltFixture)
}

// TestConformanceBoltUnbatched runs the suite with batching off, so every
// write commits on its own.
func TestConformanceBoltUnbatched(t *testing.T) {
	newFixture := func(t *testing.T) storetest.Fixture {
		s := openTest(t, &store.Options{MaxBatchDelay: -1})
		return storetest.Fixture{
			Storage:   s,
			AddClient: func(t *testing.T, id string) { addClient(t, s, id) },
		}
	}
	storetest.Run(t, newFixture)
	storetest.RunTransactional(t, newFixture)
}
