package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/storetest"
)

// tokenAnswer posts a client_credentials request and returns the status,
// the JSON answer and the headers.
func tokenAnswer(t *testing.T, issuer, id, secret string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

// get returns the status, body and headers of a GET.
func get(t *testing.T, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestDiskFullServe runs serve with its data directory on a 1 MiB tmpfs
// and fills it with client_credentials tokens, as the issue did: /token,
// /register and note writes answer 503 temporarily_unavailable or a tool
// error, the log says why once (not once per request), /healthz says
// writes fail, issued tokens keep working; once space is freed everything
// works without a restart, and after a stop the file is whole and holds
// every token the server acknowledged.
func TestDiskFullServe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root; CI runs as root")
	}
	disk := mountTmpfs(t, "1m")
	data := filepath.Join(disk, "data")
	// Room the test gives back at the end: without it, a full tmpfs stays
	// full however much of the database's free space is reused.
	spare := filepath.Join(disk, "spare")
	if err := os.WriteFile(spare, make([]byte, 200<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	ts := startServer(t, "--data", data, "--log-level", "info", "--registrations-per-minute", "1000")
	reg := registerClient(t, ts.URL, map[string]any{
		"client_name": "flood", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read notes:write",
	})
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	st, first, _ := tokenAnswer(t, ts.URL, id, secret)
	if st != http.StatusOK {
		t.Fatalf("first token: %d %v", st, first)
	}
	cs := connectMCP(t, ts.URL, first["access_token"].(string))

	// While the disk fills, a write that fits in the file's free pages
	// still succeeds and one that needs the file to grow fails; the flood
	// goes on until every write fails.
	var acked []string
	var full map[string]any
	var fullHeader http.Header
	for i, failures := 0, 0; failures < 50; i++ {
		if i == 20000 {
			t.Fatalf("the disk never filled: %d tokens issued", len(acked))
		}
		st, out, h := tokenAnswer(t, ts.URL, id, secret)
		switch st {
		case http.StatusOK:
			acked = append(acked, out["access_token"].(string))
			failures = 0
		case http.StatusServiceUnavailable:
			full, fullHeader = out, h
			failures++
		default:
			t.Fatalf("token %d: %d %v; want 200 or 503", i, st, out)
		}
	}
	t.Logf("%d tokens issued before the 1 MiB disk filled", len(acked))

	// A write that fits in the free pages inside the file still succeeds
	// on a full disk (one that replaces a record, or adds a little to a
	// page with room); every write that needs more of the disk is answered
	// 503. So each check below makes attempts until one fails, each of
	// which must be one or the other.
	t.Run("token requests are 200 or 503 temporarily_unavailable with Retry-After, never a 500", func(t *testing.T) {
		if full["error"] != "temporarily_unavailable" || fullHeader.Get("Retry-After") == "" {
			t.Errorf("answer %v, Retry-After %q; want temporarily_unavailable with Retry-After", full, fullHeader.Get("Retry-After"))
		}
		failed := 0
		for range 20 {
			switch st, out, _ := tokenAnswer(t, ts.URL, id, secret); {
			case st == http.StatusServiceUnavailable && out["error"] == "temporarily_unavailable":
				failed++
			case st == http.StatusOK:
				acked = append(acked, out["access_token"].(string))
			default:
				t.Fatalf("token on a full disk: %d %v", st, out)
			}
		}
		if failed < 10 {
			t.Errorf("%d of 20 token requests failed on a full disk; want most", failed)
		}
	})

	t.Run("registrations are 201 or 503 temporarily_unavailable", func(t *testing.T) {
		failed := 0
		for i := 0; i < 200 && failed == 0; i++ { // until one needs a page the disk has not got
			resp, err := http.Post(ts.URL+"/register", "application/json", strings.NewReader(`{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`))
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusServiceUnavailable && out["error"] == "temporarily_unavailable":
				failed++
			case resp.StatusCode != http.StatusCreated:
				t.Fatalf("register on a full disk: %s %v", resp.Status, out)
			}
		}
		if failed == 0 {
			t.Error("no registration failed on a full disk")
		}
	})

	t.Run("note_save is a tool error saying to try later; issued tokens keep working", func(t *testing.T) {
		failed := 0
		for i := 0; i < 200 && failed == 0; i++ {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "t", "body": strings.Repeat("b", 4000)}})
			if err != nil {
				t.Fatal(err)
			}
			if res.IsError {
				if !strings.Contains(toolText(res), "try again later") {
					t.Errorf("note_save tool error %q; want it to say to try again later", toolText(res))
				}
				failed++
			}
		}
		if failed == 0 {
			t.Error("no note_save failed on a full disk")
		}
		if got := whoami(t, cs); got["client_id"] != id {
			t.Errorf("whoami on a full disk = %v", got)
		}
		for _, tok := range []string{acked[0], acked[len(acked)-1]} {
			if st, _ := mcpStatus(t, ts.URL, tok); st != http.StatusOK {
				t.Errorf("an acknowledged token on a full disk: %d; want 200", st)
			}
		}
	})

	t.Run("/healthz stays 200 and says writes fail; ?writes=1 is 503", func(t *testing.T) {
		for { // the last write must have failed
			st, out, _ := tokenAnswer(t, ts.URL, id, secret)
			if st != http.StatusOK {
				break
			}
			acked = append(acked, out["access_token"].(string))
		}
		st, body, h := get(t, ts.URL+"/healthz")
		if st != http.StatusOK || !strings.HasPrefix(body, "degraded: writes fail") || !strings.Contains(body, "the disk is full") || h.Get("X-Mcpd-Writes") != "failing" {
			t.Errorf("/healthz: %d %q %q", st, body, h.Get("X-Mcpd-Writes"))
		}
		if st, _, _ := get(t, ts.URL+"/healthz?writes=1"); st != http.StatusServiceUnavailable {
			t.Errorf("/healthz?writes=1: %d; want 503", st)
		}
	})

	t.Run("the log says why once a minute, and no request logs an error of its own", func(t *testing.T) {
		logs := ts.Stderr.String()
		minutes := int(time.Since(started)/time.Minute) + 1
		if n := strings.Count(logs, "store: writes fail: the disk is full"); n < 1 || n > minutes {
			t.Errorf("%d lines about the full disk in %d minute(s); want 1 to %d", n, minutes, minutes)
		}
		if n := strings.Count(logs, `"level":"ERROR"`); n > minutes {
			t.Errorf("%d error lines; want only the store's:\n%s", n, logs)
		}
	})

	t.Run("once space is freed, everything works without a restart", func(t *testing.T) {
		if err := os.Remove(spare); err != nil {
			t.Fatal(err)
		}
		st, out, _ := tokenAnswer(t, ts.URL, id, secret)
		if st != http.StatusOK {
			t.Fatalf("token after freeing space: %d %v", st, out)
		}
		acked = append(acked, out["access_token"].(string))
		if st, body, _ := get(t, ts.URL+"/healthz?writes=1"); st != http.StatusOK || body != "ok\n" {
			t.Errorf("/healthz?writes=1 after freeing space: %d %q", st, body)
		}
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "t", "body": "b"}})
		if err != nil || res.IsError {
			t.Errorf("note_save after freeing space: %v %q", err, toolText(res))
		}
	})

	t.Run("after a stop the file is whole and holds every acknowledged token", func(t *testing.T) {
		ts.Stop(t)
		checkBolt(t, filepath.Join(data, store.FileName))
		s := mustOpenStore(t, data)
		defer s.Close()
		for _, tok := range acked {
			if _, err := s.LookupAccessToken(context.Background(), storetest.Signature(tok)); err != nil {
				t.Fatalf("acknowledged token: %v", err)
			}
		}
	})
}

// toolText is the text of a tool result's content.
func toolText(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}
