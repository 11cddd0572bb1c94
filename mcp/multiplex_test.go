package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// modernToolCall is a 2026-07-28 tools/call of name as the direct path
// hands it to a shared session.
func modernToolCall(t *testing.T, name string) *jsonrpc.Request {
	t.Helper()
	params, err := json.Marshal(map[string]any{"name": name, "arguments": map[string]any{}, "_meta": map[string]any{
		"io.modelcontextprotocol/protocolVersion":    v2026,
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &jsonrpc.Request{Method: "tools/call", Params: params, Extra: &sdk.RequestExtra{CloseSSEStream: func(sdk.CloseSSEStreamArgs) {}}}
}

// resultText is the text of a tools/call response, or its error.
func resultText(t *testing.T, resp *jsonrpc.Response) string {
	t.Helper()
	if resp.Error != nil {
		return "error: " + resp.Error.Error()
	}
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(resp.Result, &res); err != nil || len(res.Content) != 1 {
		t.Fatalf("result %s: %v", resp.Result, err)
	}
	if res.IsError {
		return "tool error: " + res.Content[0].Text
	}
	return res.Content[0].Text
}

// TestSharedSessionOutlivesRefusedWrites: a handler on a shared session
// that sends a notification or a request to the client gets an error (the
// answer to a 2026-07-28 request in JSON has room for its result alone),
// and the session goes on serving.
func TestSharedSessionOutlivesRefusedWrites(t *testing.T) {
	server := sdk.NewServer(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	server.AddTool(&sdk.Tool{Name: "chatty", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var errs []string
		if err := req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: "p", Progress: 1}); err != nil {
			errs = append(errs, "notify refused")
		}
		if err := req.Session.Ping(ctx, nil); err != nil {
			errs = append(errs, "ping refused")
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: strings.Join(errs, ", ")}}}, nil
	})
	server.AddTool(&sdk.Tool{Name: "quiet", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "ok"}}}, nil
	})
	p := newSharedSessions(server, 1, modernSessionState)
	for range 3 {
		resp, err := p.call(modernToolCall(t, "chatty"))
		if err != nil {
			t.Fatal(err)
		}
		if got := resultText(t, resp); got != "notify refused, ping refused" {
			t.Errorf("chatty = %q; want both writes refused", got)
		}
		resp, err = p.call(modernToolCall(t, "quiet"))
		if err != nil {
			t.Fatal(err)
		}
		if got := resultText(t, resp); got != "ok" {
			t.Errorf("quiet after chatty = %q; want ok", got)
		}
	}
	if c := p.slots[0].Load(); c == nil || c.closed() {
		t.Error("the shared session was closed")
	}
}

// TestSharedSessionIsReplacedWhenClosed: a slot whose session has ended
// gets a new one on its next call.
func TestSharedSessionIsReplacedWhenClosed(t *testing.T) {
	server := sdk.NewServer(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	server.AddTool(&sdk.Tool{Name: "quiet", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "ok"}}}, nil
	})
	p := newSharedSessions(server, 1, modernSessionState)
	if _, err := p.call(modernToolCall(t, "quiet")); err != nil {
		t.Fatal(err)
	}
	first := p.slots[0].Load()
	first.Close()
	if _, err := first.call(modernToolCall(t, "quiet")); !errors.Is(err, errConnClosed) {
		t.Errorf("a call on the closed connection: %v; want errConnClosed", err)
	}
	resp, err := p.call(modernToolCall(t, "quiet"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resultText(t, resp); got != "ok" {
		t.Errorf("after the close = %q; want ok", got)
	}
	if p.slots[0].Load() == first {
		t.Error("the closed session was not replaced")
	}
}

// TestMultiplexConnRefusesStrayResponses: a response to no call of the
// connection is refused, with the code that leaves the session serving.
func TestMultiplexConnRefusesStrayResponses(t *testing.T) {
	c := newMultiplexConn()
	id, _ := jsonrpc.MakeID(float64(99))
	err := c.Write(t.Context(), &jsonrpc.Response{ID: id})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != -32005 {
		t.Errorf("Write of a stray response = %v; want the transport's rejection (-32005)", err)
	}
}
