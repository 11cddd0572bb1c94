package wire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
)

// ProofStore adapts a store.Backend to dpop.ReplayStore (and
// dpop.Transactional, so a flush of the write-behind cache is one commit).
type ProofStore struct {
	Store
}

var (
	_ dpop.ReplayStore   = ProofStore{}
	_ dpop.Transactional = ProofStore{}
)

// RememberProofJTI maps the store's ErrAlreadyExists onto dpop.ErrReplay.
func (p ProofStore) RememberProofJTI(ctx context.Context, key string, exp time.Time) error {
	err := p.Store.RememberProofJTI(ctx, key, exp)
	if errors.Is(err, store.ErrAlreadyExists) {
		return dpop.ErrReplay
	}
	return err
}

// ProofChecker adapts a dpop.Checker to mcp.ProofChecker.
type ProofChecker struct {
	*dpop.Checker
}

var _ mcp.ProofChecker = ProofChecker{}

// CheckProof runs the checker and maps its errors onto mcp's.
func (p ProofChecker) CheckProof(ctx context.Context, proofs []string, method string, urls []string, accessToken string) (string, error) {
	proof, err := p.Check(ctx, proofs, dpop.Request{Method: method, URLs: urls, AccessToken: accessToken})
	if err == nil {
		return proof.JKT, nil
	}
	var de *dpop.Error
	switch {
	case errors.As(err, &de) && errors.Is(err, dpop.ErrUseNonce):
		return "", fmt.Errorf("%w: %s", mcp.ErrUseDPoPNonce, de.Description)
	case errors.As(err, &de):
		return "", fmt.Errorf("%w: %s", mcp.ErrInvalidDPoPProof, de.Description)
	}
	return "", err
}
