package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/mcpd/mcpd/store"
)

// SaveNote creates a note with a fresh random id when n.ID is empty, and
// otherwise replaces the owner's note n.ID, keeping its CreatedAt
// (store.ErrNotFound when the owner has no such note, whoever else might).
// It returns the note as stored.
func (s *Store) SaveNote(ctx context.Context, owner string, n store.Note) (store.Note, error) {
	if err := store.CheckNoteOwner(owner); err != nil {
		return store.Note{}, err
	}
	if !textOK(owner) {
		return store.Note{}, store.CheckNoteOwner("")
	}
	now := s.now().UTC()
	if n.ID == "" {
		id, err := store.NewNoteID()
		if err != nil {
			return store.Note{}, err
		}
		n.ID, n.CreatedAt, n.UpdatedAt = id, now, now
		data, err := store.EncodeNote(n)
		if err != nil {
			return store.Note{}, err
		}
		q, err := s.q(ctx)
		if err != nil {
			return store.Note{}, err
		}
		tag, err := q.Exec(ctx, "INSERT INTO notes (owner, id, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", owner, n.ID, data)
		if err != nil {
			return store.Note{}, err
		}
		if tag.RowsAffected() == 0 {
			return store.Note{}, store.ErrAlreadyExists // a random id collided; never overwrite
		}
		return n, nil
	}
	if !store.ValidNoteID(n.ID) || !textOK(n.ID) {
		return store.Note{}, store.ErrNotFound
	}
	n.UpdatedAt = now
	err := s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var data []byte
		if err := q.QueryRow(ctx, "SELECT data FROM notes WHERE owner = $1 AND id = $2 FOR UPDATE", owner, n.ID).Scan(&data); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		prev, err := store.DecodeNote(data)
		if err != nil {
			return err
		}
		n.CreatedAt = prev.CreatedAt
		if data, err = store.EncodeNote(n); err != nil {
			return err
		}
		_, err = q.Exec(ctx, "UPDATE notes SET data = $3 WHERE owner = $1 AND id = $2", owner, n.ID, data)
		return err
	})
	if err != nil {
		return store.Note{}, err
	}
	return n, nil
}

// GetNote returns the owner's note id, or store.ErrNotFound.
func (s *Store) GetNote(ctx context.Context, owner, id string) (store.Note, error) {
	if store.CheckNoteOwner(owner) != nil || !textOK(owner) || !store.ValidNoteID(id) || !textOK(id) {
		return store.Note{}, store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return store.Note{}, err
	}
	var data []byte
	if err := q.QueryRow(ctx, "SELECT data FROM notes WHERE owner = $1 AND id = $2", owner, id).Scan(&data); err != nil {
		return store.Note{}, notFound(err, store.ErrNotFound)
	}
	return store.DecodeNote(data)
}

// ListNotes returns the owner's notes, most recently updated first.
func (s *Store) ListNotes(ctx context.Context, owner string) ([]store.Note, error) {
	return s.SearchNotes(ctx, owner, "")
}

// SearchNotes returns the owner's notes in which every word of query
// appears, case-insensitively, in the title, the body or a tag; most
// recently updated first. An empty query matches every note. The words
// are matched as package store matches them (store.SelectNotes), not by
// the database's collation.
func (s *Store) SearchNotes(ctx context.Context, owner, query string) ([]store.Note, error) {
	if err := store.CheckNoteOwner(owner); err != nil {
		return nil, err
	}
	if !textOK(owner) {
		return []store.Note{}, nil
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, "SELECT data FROM notes WHERE owner = $1", owner)
	if err != nil {
		return nil, err
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Note, error) {
		var data []byte
		if err := row.Scan(&data); err != nil {
			return store.Note{}, err
		}
		return store.DecodeNote(data)
	})
	if err != nil {
		return nil, err
	}
	return store.SelectNotes(all, query), nil
}

// DeleteNote deletes the owner's note id; store.ErrNotFound when there is
// none.
func (s *Store) DeleteNote(ctx context.Context, owner, id string) error {
	if store.CheckNoteOwner(owner) != nil || !textOK(owner) || !store.ValidNoteID(id) || !textOK(id) {
		return store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, "DELETE FROM notes WHERE owner = $1 AND id = $2", owner, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}
