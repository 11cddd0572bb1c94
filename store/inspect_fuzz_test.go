package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// fuzzSeed is a small bbolt file (1 KiB pages) with nested, inline and
// spilled buckets.
func fuzzSeed(t testing.TB, keys int) []byte {
	path := filepath.Join(t.TempDir(), "seed.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("big"))
		if err != nil {
			return err
		}
		for i := range keys {
			if err := b.Put(fmt.Appendf(nil, "key-%04d", i), fmt.Appendf(nil, "value %d of a big bucket", i)); err != nil {
				return err
			}
		}
		small, err := tx.CreateBucket([]byte("small"))
		if err != nil {
			return err
		}
		nested, err := small.CreateBucket([]byte("nested"))
		if err != nil {
			return err
		}
		return nested.Put([]byte("k"), []byte("v"))
	})
	if err == nil {
		err = db.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzInspect feeds Inspect damaged files: it must never panic, and on a
// file it passes bbolt must open and run its check without a panic or a
// fault; a file that passes that check too has every record readable.
func FuzzInspect(f *testing.F) {
	for _, keys := range []int{0, 3, 60} {
		f.Add(fuzzSeed(f, keys))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := inspect(bytes.NewReader(data), int64(len(data)), FileName); err != nil {
			return
		}
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			return // bbolt refused it cleanly
		}
		defer db.Close()
		db.View(func(tx *bolt.Tx) error {
			failed := false
			for range tx.Check() {
				failed = true
			}
			if failed {
				return nil // refused by the full check, as Open and doctor do
			}
			var walk func(b *bolt.Bucket)
			walk = func(b *bolt.Bucket) {
				if b == nil {
					t.Fatal("the checks passed a file whose root bucket tx.ForEach hands out as a nil bucket")
				}
				b.ForEach(func(k, v []byte) error {
					if v == nil {
						if nb := b.Bucket(k); nb != nil {
							walk(nb)
						}
					}
					return nil
				})
			}
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { walk(b); return nil })
		})
	})
}
