package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mcpd/mcpd/store"
)

// TestCompactCommand: after a client's 2,000 tokens are revoked the file
// keeps its size; `mcpd compact` gives the space back, online through the
// admin socket while the server keeps serving, and offline.
func TestCompactCommand(t *testing.T) {
	ts := startServer(t)
	reg := registerClient(t, ts.URL, map[string]any{
		"client_name": "bulk", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read",
	})
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 250 {
				if st, out, _ := tokenAnswer(t, ts.URL, id, secret); st != http.StatusOK {
					t.Errorf("token: %d %v", st, out)
					return
				}
			}
		})
	}
	wg.Wait()
	mustMcpd(t, "", "client", "revoke", id, "--data", ts.Data)
	path := filepath.Join(ts.Data, store.FileName)
	before := fileBytes(t, path)

	var online compactView
	if err := json.Unmarshal([]byte(mustMcpd(t, "", "compact", "--json", "--data", ts.Data)), &online); err != nil {
		t.Fatal(err)
	}
	after := fileBytes(t, path)
	t.Logf("online: %d → %d bytes", before, after)
	if online.BeforeBytes != before || online.AfterBytes != after || after*2 > before {
		t.Errorf("compact reported %+v; the file went from %d to %d bytes, want at least halved", online, before, after)
	}

	// The server goes on with the new file.
	other := registerClient(t, ts.URL, map[string]any{
		"client_name": "after", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read",
	})
	st, out, _ := tokenAnswer(t, ts.URL, other["client_id"].(string), other["client_secret"].(string))
	if st != http.StatusOK {
		t.Fatalf("token after compaction: %d %v", st, out)
	}
	if got := whoami(t, connectMCP(t, ts.URL, out["access_token"].(string))); got["client_id"] != other["client_id"] {
		t.Errorf("whoami after compaction = %v", got)
	}

	ts.Stop(t)
	text := mustMcpd(t, "", "compact", "--data", ts.Data)
	if want := "compacted " + path + ": "; len(text) < len(want) || text[:len(want)] != want {
		t.Errorf("offline compact printed %q", text)
	}
	mustMcpd(t, "", "doctor", "--data", ts.Data)
	s := mustOpenStore(t, ts.Data)
	defer s.Close()
	if _, err := s.LookupClient(t.Context(), other["client_id"].(string)); err != nil {
		t.Errorf("the client registered after compaction: %v", err)
	}
}

func fileBytes(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
