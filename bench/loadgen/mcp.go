package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The MCP side of the load: JSON-RPC over Streamable HTTP by hand, so the
// load generator spends as little CPU per call as a client can and leaves
// the two cores to the server.

// The protocol versions the scenarios speak: a 2025-era session
// (initialize, Mcp-Session-Id) and a 2026-07-28 stateless client
// (server/discover, per-request _meta, Mcp-Method and Mcp-Name headers).
const (
	protocolVersion = "2025-06-18"
	modernVersion   = "2026-07-28"
)

// modernMeta is the per-request _meta of every 2026-07-28 request.
const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"` + modernVersion + `","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"loadgen","version":"1.0.0"}}`

// mcpSession is one client's MCP session (or none, against a stateless
// server or for a 2026-07-28 client) with a reusable response buffer.
type mcpSession struct {
	env    *runEnv
	url    string
	token  string
	modern bool // a 2026-07-28 client
	sid    string
	id     int
	buf    bytes.Buffer
	// method and name are the Mcp-Method and Mcp-Name headers of the next
	// 2026-07-28 request.
	method, name string
	// proofs, when not nil, makes every call present the token as DPoP
	// with a proof from the pool.
	proofs *proofPool
}

// call posts one JSON-RPC message and returns the response body, which
// is valid until the next call. A notification (id < 0) wants 202.
func (s *mcpSession) call(ctx context.Context, body []byte, notification bool) ([]byte, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.proofs != nil {
		proof, err := s.proofs.take(s.token)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Authorization", "DPoP "+s.token)
		req.Header.Set("DPoP", proof)
	} else {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	if s.sid != "" {
		req.Header.Set("Mcp-Session-Id", s.sid)
		req.Header.Set("MCP-Protocol-Version", protocolVersion)
	}
	if s.modern {
		req.Header.Set("MCP-Protocol-Version", modernVersion)
		req.Header.Set("Mcp-Method", s.method)
		if s.name != "" {
			req.Header.Set("Mcp-Name", s.name)
		}
	}
	resp, err := s.env.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	s.buf.Reset()
	if _, err := s.buf.ReadFrom(resp.Body); err != nil {
		return nil, nil, err
	}
	want := http.StatusOK
	if notification {
		want = http.StatusAccepted
	}
	if resp.StatusCode != want {
		return nil, nil, fmt.Errorf("POST %s: %s: %.200s", s.url, resp.Status, s.buf.Bytes())
	}
	return s.buf.Bytes(), resp, nil
}

// open initializes the session; a stateless server answers without a
// session id and the calls then go without one. A 2026-07-28 client has no
// session: it asks server/discover once, as clients do when they connect.
func (s *mcpSession) open(ctx context.Context) error {
	if s.modern {
		s.method, s.name = "server/discover", ""
		body, _, err := s.call(ctx, []byte(`{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{`+modernMeta+`}}`), false)
		if err != nil {
			return err
		}
		if !bytes.Contains(body, []byte(`"`+modernVersion+`"`)) {
			return fmt.Errorf("server/discover: no %s in %.200s", modernVersion, body)
		}
		return nil
	}
	body, resp, err := s.call(ctx, []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"`+protocolVersion+`","capabilities":{},"clientInfo":{"name":"loadgen","version":"1.0.0"}}}`), false)
	if err != nil {
		return err
	}
	if !bytes.Contains(body, []byte(`"protocolVersion"`)) {
		return fmt.Errorf("initialize: unexpected answer %.200s", body)
	}
	s.sid = resp.Header.Get("Mcp-Session-Id")
	_, _, err = s.call(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), true)
	return err
}

var (
	resultKey  = []byte(`"result"`)
	isErrorKey = []byte(`"isError":true`)
)

// whoami makes one tools/call whoami and checks it succeeded.
func (s *mcpSession) whoami(ctx context.Context) error {
	s.id++
	msg := append(append([]byte(`{"jsonrpc":"2.0","id":`), strconv.Itoa(s.id)...), `,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`...)
	if s.modern {
		s.method, s.name = "tools/call", "whoami"
		msg = append(append([]byte(`{"jsonrpc":"2.0","id":`), strconv.Itoa(s.id)...), `,"method":"tools/call","params":{"name":"whoami","arguments":{},`+modernMeta+`}}`...)
	}
	body, _, err := s.call(ctx, msg, false)
	if err != nil {
		return err
	}
	if !bytes.Contains(body, resultKey) || bytes.Contains(body, isErrorKey) {
		return fmt.Errorf("whoami: %.200s", body)
	}
	return nil
}

// whoamiScenario opens one MCP session per worker (a 2025-era session, or
// with modern a 2026-07-28 client, which has none) and repeats tools/call
// whoami. Every variant first gets a real access token through
// registration, login, consent and the token endpoint, so the server has
// done the same work (an argon2id login among it) before the measured
// window; without authenticate the target's /noauth/mcp ignores the token.
func whoamiScenario(authenticate, modern bool) scenario {
	return func(ctx context.Context, env *runEnv, _ int) (op, error) {
		if err := env.prepareShared(ctx, true, false); err != nil {
			return nil, err
		}
		token := env.token
		if !authenticate {
			token = "loadgen-no-auth"
		}
		s := &mcpSession{env: env, url: env.target + env.mcpPath, token: token, modern: modern}
		if err := s.open(ctx); err != nil {
			return nil, err
		}
		return s.whoami, nil
	}
}

// plainScenario posts the same JSON-RPC body to a plain net/http handler
// that answers a small JSON document: the ceiling of this machine.
func plainScenario(_ context.Context, env *runEnv, _ int) (op, error) {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
	var buf bytes.Buffer
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, env.target+"/plain", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := env.hc.Do(req)
		if err != nil {
			return err
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(buf.Bytes(), resultKey) {
			return errors.New("plain: " + resp.Status)
		}
		return nil
	}, nil
}

// rpcAnswer is the part of a JSON-RPC response the chaos checks read.
type rpcAnswer struct {
	Result *struct {
		IsError           bool            `json:"isError"`
		StructuredContent json.RawMessage `json:"structuredContent"`
		Content           []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// decodeAnswer reads a JSON-RPC response from a body that is either the
// JSON document itself or an event stream whose data lines carry it.
func decodeAnswer(body []byte) (*rpcAnswer, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var a rpcAnswer
		return &a, json.Unmarshal(trimmed, &a)
	}
	for _, line := range bytes.Split(body, []byte("\n")) {
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:"))
		if !ok {
			continue
		}
		var a rpcAnswer
		if err := json.Unmarshal(bytes.TrimSpace(data), &a); err != nil {
			return nil, err
		}
		if a.Result != nil || a.Error != nil {
			return &a, nil
		}
	}
	return nil, fmt.Errorf("no JSON-RPC response in %.200q", body)
}

// tool calls a tool and returns its structured result, or the text of a
// tool error (toolErr != ""); err is a transport or protocol failure.
func (s *mcpSession) tool(ctx context.Context, name string, args any) (structured json.RawMessage, toolErr string, err error) {
	s.id++
	msg, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": s.id, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
	if err != nil {
		return nil, "", err
	}
	body, _, err := s.call(ctx, msg, false)
	if err != nil {
		return nil, "", err
	}
	a, err := decodeAnswer(body)
	if err != nil {
		return nil, "", err
	}
	switch {
	case a.Error != nil:
		return nil, "", fmt.Errorf("%s: JSON-RPC error %s", name, a.Error.Message)
	case a.Result == nil:
		return nil, "", fmt.Errorf("%s: empty answer", name)
	case a.Result.IsError:
		var texts []string
		for _, c := range a.Result.Content {
			texts = append(texts, c.Text)
		}
		return nil, strings.Join(texts, " "), nil
	}
	return a.Result.StructuredContent, "", nil
}
