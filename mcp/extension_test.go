package mcp

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// echoExtension adds a tool, a static resource and a completion handler.
func echoExtension() *Extension {
	return &Extension{
		Options: func(o *sdk.ServerOptions) {
			o.CompletionHandler = func(context.Context, *sdk.CompleteRequest) (*sdk.CompleteResult, error) {
				return &sdk.CompleteResult{Completion: sdk.CompletionResultDetails{Values: []string{"done"}}}, nil
			}
		},
		Register: func(s *sdk.Server) {
			s.AddTool(&sdk.Tool{Name: "echo", InputSchema: map[string]any{"type": "object"}}, func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "echo for " + req.Extra.TokenInfo.UserID}}}, nil
			})
			s.AddResource(&sdk.Resource{URI: "test://static", Name: "static", MIMEType: "text/plain"}, func(_ context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
				return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: req.Params.URI, Text: "static"}}}, nil
			})
		},
	}
}

func TestExtensionIsServedBehindTheSameChecks(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Extension = echoExtension() })
	env.notes.add(t, "alice", "Mine", "body")

	t.Run("an extension tool runs with the caller's verified token", func(t *testing.T) {
		for _, version := range []string{v2026, v2025} {
			cs := env.connectAt(t, "alice-none", version)
			res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				t.Fatalf("%s echo: %v %+v", version, err, res)
			}
			if got := res.Content[0].(*sdk.TextContent).Text; got != "echo for alice" {
				t.Errorf("%s echo = %q; want echo for alice", version, got)
			}
		}
	})
	t.Run("an extension tool without a token gets 401", func(t *testing.T) {
		resp, _ := env.sendRaw(t, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`, http.Header{})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d; want 401", resp.StatusCode)
		}
	})
	t.Run("an extension's static resource is listed ahead of the caller's notes", func(t *testing.T) {
		cs := env.connectAt(t, "alice-read", v2026)
		res, err := cs.ListResources(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var uris []string
		for _, r := range res.Resources {
			uris = append(uris, strings.SplitN(r.URI, "://", 2)[0])
		}
		if diff := cmp.Diff([]string{"test", "note"}, uris); diff != "" {
			t.Errorf("resource schemes (-want +got):\n%s", diff)
		}
	})
	t.Run("the extension's server options apply", func(t *testing.T) {
		cs := env.connectAt(t, "alice-none", v2026)
		res, err := cs.Complete(t.Context(), &sdk.CompleteParams{
			Ref:      &sdk.CompleteReference{Type: "ref/prompt", Name: promptSummarizeNotes},
			Argument: sdk.CompleteParamsArgument{Name: "topic", Value: "x"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"done"}, res.Completion.Values); diff != "" {
			t.Errorf("completion (-want +got):\n%s", diff)
		}
	})
}

func TestWithoutExtensionNothingExtraIsServed(t *testing.T) {
	env := newTestEnv(t, nil)
	cs := env.connectAt(t, "alice-all", v2026)
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{}})
	if err == nil && !res.IsError {
		t.Errorf("echo answered without an extension: %+v", res)
	}
}
