package wire

import (
	"context"
	"time"

	"github.com/mcpd/mcpd/dpop"
)

// ProofReplay is a dpop.ReplayCache that records every proof in the store
// before the proof is accepted, with no memory of its own: what replicas
// on one database need, where dpop.WriteBehind would let a proof replayed
// on another replica through until its record is written.
type ProofReplay struct {
	ProofStore
}

var _ dpop.ReplayCache = ProofReplay{}

// Remember records key until exp; dpop.ErrReplay when it is recorded.
func (p ProofReplay) Remember(ctx context.Context, key string, exp time.Time) error {
	return p.RememberProofJTI(ctx, key, exp)
}
