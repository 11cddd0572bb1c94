package store

import (
	"context"
	"encoding/binary"
	"os"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// Stats describes the database file: how big it is and how much of it the
// records take, which is about what `mcpd compact` brings it down to.
type Stats struct {
	SchemaVersion int   `json:"schema_version"`
	FileBytes     int64 `json:"file_bytes"`
	PageSize      int   `json:"page_size"`
	// LiveBytes is the size of the pages that hold records: what the file
	// needs, less its two meta pages and its freelist.
	LiveBytes int64 `json:"live_bytes"`
	// DataBytes is the sum of the keys and values of every record.
	DataBytes int64 `json:"data_bytes"`
	// FreeBytes is the size of the free pages, which the file reuses but
	// does not give back until it is compacted.
	FreeBytes int64         `json:"free_bytes"`
	Buckets   []BucketStats `json:"buckets"`
}

// BucketStats describes one bucket (kind of record) of the file.
type BucketStats struct {
	Name      string `json:"name"`
	Records   int    `json:"records"`
	DataBytes int64  `json:"data_bytes"` // keys and values
	LiveBytes int64  `json:"live_bytes"` // pages holding them
}

// Stats reads the statistics of the file. It walks every record, so it
// takes time in proportion to the file; it is meant for `mcpd doctor` and
// `mcpd compact`, not for a request path.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.view(ctx, func(tx *bolt.Tx) error {
		st.PageSize = tx.DB().Info().PageSize
		if meta := bucket(tx, bucketMeta); meta != nil {
			if raw := meta.Get([]byte(keySchemaVersion)); len(raw) == 8 {
				st.SchemaVersion = int(binary.BigEndian.Uint64(raw))
			}
		}
		if !tx.DB().IsReadOnly() {
			st.FreeBytes = int64(tx.DB().Stats().FreePageN) * int64(st.PageSize)
		} else if info, err := Inspect(s.path); err == nil { // bbolt loads no freelist read-only
			st.FreeBytes = int64(info.FreePages) * int64(st.PageSize)
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			bs := BucketStats{Name: string(name)}
			err := b.ForEach(func(k, v []byte) error {
				bs.Records++
				bs.DataBytes += int64(len(k) + len(v))
				return nil
			})
			if err != nil {
				return err
			}
			pst := b.Stats()
			bs.LiveBytes = int64(pst.BranchAlloc + pst.LeafAlloc)
			if pst.InlineBucketN > 0 && bs.LiveBytes == 0 {
				bs.LiveBytes = int64(pst.InlineBucketInuse) // kept in its parent's page
			}
			st.LiveBytes += bs.LiveBytes
			st.DataBytes += bs.DataBytes
			st.Buckets = append(st.Buckets, bs)
			return nil
		})
	})
	if err != nil {
		return Stats{}, err
	}
	sort.Slice(st.Buckets, func(i, j int) bool { return st.Buckets[i].Name < st.Buckets[j].Name })
	if fi, err := os.Stat(s.path); err == nil {
		st.FileBytes = fi.Size()
	}
	return st, nil
}
