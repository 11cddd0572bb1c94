package vault

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"golang.org/x/oauth2"
)

// FuzzOpen feeds arbitrary bytes to the unsealing of a stored token: it
// never panics, and whatever opens was sealed under this key for this user
// and provider, so it holds the one token ever sealed here. (Each fuzz
// worker runs this setup again and seals with a fresh nonce, so a seed
// from another worker is authentic without being byte-equal to good.)
func FuzzOpen(f *testing.F) {
	v, err := New(Config{Key: bytes.Repeat([]byte{7}, 32), Store: nopStore{}})
	if err != nil {
		f.Fatal(err)
	}
	good, err := v.seal("ada", "corp", &oauth2.Token{AccessToken: "at", RefreshToken: "rt"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{sealVersion})
	f.Add(append([]byte{2}, good[1:]...))
	f.Fuzz(func(t *testing.T, sealed []byte) {
		tok, err := v.open("ada", "corp", sealed)
		if err != nil {
			return
		}
		if tok.AccessToken != "at" || tok.RefreshToken != "rt" {
			t.Errorf("bytes %x that this vault never sealed opened to %+v", sealed, tok)
		}
		if _, err := v.open("bob", "corp", sealed); err == nil {
			t.Errorf("ada's seal opened for bob")
		}
	})
}

type nopStore struct{}

func (nopStore) PutUpstreamToken(context.Context, string, string, []byte) error { return nil }
func (nopStore) GetUpstreamToken(context.Context, string, string) ([]byte, error) {
	return nil, errors.New("none")
}
func (nopStore) DeleteUpstreamToken(context.Context, string, string) error { return nil }
