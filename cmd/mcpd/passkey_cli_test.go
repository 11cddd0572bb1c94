package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpd/mcpd/store"
)

// seedPasskeys writes users and passkeys into a fresh data directory, as
// registrations from the account page leave them.
func seedPasskeys(t *testing.T) (data string, ids []string) {
	t.Helper()
	data = filepath.Join(t.TempDir(), "data")
	st, err := store.Open(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, u := range []string{"admin", "alice", "bob"} {
		if err := st.CreateUser(ctx, u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	created := time.Date(2026, 7, 1, 9, 30, 0, 0, time.UTC)
	for i, k := range []struct {
		user, name string
		synced     bool
	}{{"alice", "Laptop", false}, {"alice", "Phone", true}, {"bob", "Key", false}} {
		id := []byte{byte(i + 1), 0xfe, 0xff, byte(i)}
		p := store.Passkey{ID: id, User: k.user, Name: k.name, PublicKey: []byte{1, 2, 3}, BackupEligible: k.synced, BackupState: k.synced, CreatedAt: created.Add(time.Duration(i) * time.Hour)}
		if err := st.CreatePasskey(ctx, p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, base64.RawURLEncoding.EncodeToString(id))
	}
	return data, ids
}

func TestUserPasskeysCommand(t *testing.T) {
	script := func(t *testing.T, data string) map[string]string {
		out := map[string]string{}
		for _, args := range [][]string{
			{"user", "list"}, {"user", "list", "--json"},
			{"user", "passkeys", "alice"}, {"user", "passkeys", "alice", "--json"}, {"user", "passkeys", "admin"},
		} {
			out[strings.Join(args, " ")] = mustMcpd(t, "", append(args, "--data", data)...)
		}
		return out
	}
	data, ids := seedPasskeys(t)
	down := script(t, data)
	ts := startServer(t, "--data", data)
	up := script(t, ts.Data)

	t.Run("the output is the same with the server up and down", func(t *testing.T) {
		if diff := cmp.Diff(down, up); diff != "" {
			t.Errorf("server down (-) and up (+):\n%s", diff)
		}
	})

	t.Run("user list counts each user's passkeys", func(t *testing.T) {
		var users []userView
		if err := json.Unmarshal([]byte(up["user list --json"]), &users); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, u := range users {
			got[u.Name] = u.Passkeys
		}
		if diff := cmp.Diff(map[string]int{"admin": 0, "alice": 2, "bob": 1}, got); diff != "" {
			t.Errorf("passkeys per user (-want +got):\n%s", diff)
		}
		if !strings.Contains(up["user list"], "PASSKEYS") {
			t.Errorf("user list has no PASSKEYS column:\n%s", up["user list"])
		}
	})

	t.Run("user passkeys lists the user's passkeys, oldest first", func(t *testing.T) {
		var keys []passkeyView
		if err := json.Unmarshal([]byte(up["user passkeys alice --json"]), &keys); err != nil {
			t.Fatal(err)
		}
		created := time.Date(2026, 7, 1, 9, 30, 0, 0, time.UTC)
		want := []passkeyView{
			{ID: ids[0], Name: "Laptop", CreatedAt: created},
			{ID: ids[1], Name: "Phone", CreatedAt: created.Add(time.Hour), Synced: true},
		}
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Errorf("alice's passkeys (-want +got):\n%s", diff)
		}
		for _, w := range []string{"ID", "NAME", "LAST USED", ids[0], "Laptop", "never"} {
			if !strings.Contains(up["user passkeys alice"], w) {
				t.Errorf("table lacks %q:\n%s", w, up["user passkeys alice"])
			}
		}
	})

	t.Run("--remove removes one passkey of that user only", func(t *testing.T) {
		if _, _, err := mcpd(t, "", "user", "passkeys", "alice", "--remove", ids[2], "--data", ts.Data); !errors.Is(err, errNotFound) {
			t.Errorf("removing bob's passkey as alice's: %v; want errNotFound", err)
		}
		got := mustMcpd(t, "", "user", "passkeys", "alice", "--remove", ids[0], "--data", ts.Data)
		if got != "removed passkey "+ids[0]+" of alice\n" {
			t.Errorf("printed %q", got)
		}
		list := mustMcpd(t, "", "user", "passkeys", "alice", "--data", ts.Data)
		if strings.Contains(list, "Laptop") || !strings.Contains(list, "Phone") {
			t.Errorf("after --remove:\n%s", list)
		}
		if _, _, err := mcpd(t, "", "user", "passkeys", "alice", "--remove", ids[0], "--data", ts.Data); !errors.Is(err, errNotFound) {
			t.Errorf("removing it again: %v; want errNotFound", err)
		}
	})

	t.Run("an unknown user is not found", func(t *testing.T) {
		if _, _, err := mcpd(t, "", "user", "passkeys", "nobody", "--data", ts.Data); !errors.Is(err, errNotFound) {
			t.Errorf("passkeys of an unknown user: %v; want errNotFound", err)
		}
	})

	t.Run("removing a user removes their passkeys", func(t *testing.T) {
		mustMcpd(t, "", "user", "remove", "bob", "--data", ts.Data)
		ts.Stop(t)
		st, err := store.Open(ts.Data, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		raw, _ := base64.RawURLEncoding.DecodeString(ids[2])
		if _, err := st.GetPasskey(context.Background(), raw); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("bob's passkey after user remove: %v; want ErrNotFound", err)
		}
	})
}
