package main

import (
	"context"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/wire"
)

// newDPoP builds the DPoP proof checker that /token and /mcp share, so
// both hand out the same nonces. /token spends a proof's jti itself, in
// the transaction that issues the tokens; /mcp's go to the store behind the
// answers (dpop.WriteBehind, run and flushed by run): a durable write per
// call halved tools/call throughput (docs/benchmarks.md). With
// --dpop-nonce, nonces are keyed by a secret kept in the store, so they
// stay valid across a restart.
//
// On PostgreSQL (--database) /mcp records every proof in the database
// before it is accepted too (wire.ProofReplay): replicas share the
// database, and a record still in one replica's memory would let a replay
// through on another.
func (s *server) newDPoP(ctx context.Context) (*dpop.Checker, error) {
	var replay dpop.ReplayCache = wire.ProofReplay{ProofStore: wire.ProofStore{Store: s.store}}
	if s.cfg.Database == "" {
		wb, err := dpop.NewWriteBehind(dpop.WriteBehindConfig{
			Store:  wire.ProofStore{Store: s.store},
			Logger: s.logger.With("component", "dpop"),
		})
		if err != nil {
			return nil, err
		}
		s.dpopReplay = wb
		replay = wb
	}
	var nonces *dpop.Nonces
	if s.cfg.DPoPNonce {
		key, err := s.store.Secret(ctx, "dpop-nonce", 32)
		if err != nil {
			return nil, err
		}
		if nonces, err = dpop.NewNonces(key, 0, nil); err != nil {
			return nil, err
		}
	}
	return dpop.New(dpop.Config{Replay: replay, Nonces: nonces})
}
