package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mcpd/mcpd/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "mcpd-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(dir, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	ctx := context.Background()
	if err := s.CreateUser(ctx, "alice", "correct horse battery staple"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("right password:", s.Authenticate(ctx, "alice", "correct horse battery staple"))
	fmt.Println("wrong password:", errors.Is(s.Authenticate(ctx, "alice", "hunter2"), store.ErrBadCredentials))

	n, _ := s.SaveNote(ctx, "alice", store.Note{Title: "Groceries", Body: "milk, eggs"})
	found, _ := s.SearchNotes(ctx, "alice", "EGGS")
	fmt.Println("found:", len(found), found[0].ID == n.ID)

	// A second process (or a second Open) cannot take the file.
	_, err = store.Open(dir, &store.Options{LockTimeout: 100 * time.Millisecond})
	fmt.Println("second open locked:", errors.Is(err, store.ErrLocked))
	// Output:
	// right password: <nil>
	// wrong password: true
	// found: 1 true
	// second open locked: true
}
