package store

import (
	"bytes"
	"context"
	"encoding/json"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// AccessTokenInfo is what checking a bearer token needs of the record of
// an access token: LookupAccessToken reads only this, where
// GetAccessTokenSession rebuilds the whole fosite request.
type AccessTokenInfo struct {
	Subject         string
	ClientID        string
	GrantedScopes   []string
	GrantedAudience []string
	RequestedAt     time.Time
	ExpiresAt       time.Time // the session's access-token expiry; zero: it set none
	Active          bool
}

// LookupAccessToken returns the record of the access token with this
// signature, or ErrNotFound when there is none or its client is no longer
// registered (as GetAccessTokenSession answers fosite.ErrNotFound). It
// checks nothing else: expiry and audience are the caller's.
//
// It runs on every authenticated MCP request, so it decodes only the
// fields above and skips the form and the session without decoding them
// (docs/benchmarks.md, "Authentication cost").
func (s *Store) LookupAccessToken(ctx context.Context, signature string) (AccessTokenInfo, error) {
	var info AccessTokenInfo
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketAccess).Get(sighash(signature))
		if v == nil {
			return ErrNotFound
		}
		var err error
		if info, err = decodeAccessTokenInfo(v); err != nil {
			return err
		}
		if bucket(tx, bucketClients).Get([]byte(info.ClientID)) == nil {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return AccessTokenInfo{}, err
	}
	return info, nil
}

// decodeAccessTokenInfo reads an AccessTokenInfo from a request record
// (expiry prefix and JSON, as encodeRequest lays it out). The scan reads
// the JSON encoding/json writes; anything it does not expect falls back to
// decodeRequest, so an odd record decodes as it always did. Unlike
// decodeRequest, the scan does not validate the fields it skips: a record
// whose form or session JSON is corrupt still yields its token fields.
func decodeAccessTokenInfo(v []byte) (AccessTokenInfo, error) {
	if len(v) >= 8 {
		if info, ok := scanAccessTokenInfo(v[8:]); ok {
			return info, nil
		}
	}
	rec, err := decodeRequest(v)
	if err != nil {
		return AccessTokenInfo{}, err
	}
	return AccessTokenInfo{
		Subject:         rec.Subject,
		ClientID:        rec.ClientID,
		GrantedScopes:   rec.GrantedScopes,
		GrantedAudience: rec.GrantedAudience,
		RequestedAt:     rec.RequestedAt,
		ExpiresAt:       rec.ExpiresAt,
		Active:          rec.Active,
	}, nil
}

// scanAccessTokenInfo reads the fields of an AccessTokenInfo from the JSON
// of a requestRecord in one pass, without reflection and without decoding
// the other fields. ok is false for anything but a JSON object whose wanted
// fields have the types requestRecord gives them; its keys must match the
// tags exactly (encoding/json would also accept other cases).
func scanAccessTokenInfo(data []byte) (info AccessTokenInfo, ok bool) {
	// One copy of the record backs every string read, instead of one
	// allocation per string.
	sc := jsonScanner{b: data, s: string(data)}
	if !sc.consume('{') {
		return info, false
	}
	if sc.consume('}') {
		return info, sc.end()
	}
	for {
		key, ok := sc.rawString()
		if !ok || !sc.consume(':') {
			return info, false
		}
		switch string(key) {
		case "client_id":
			ok = sc.stringValue(&info.ClientID)
		case "subject":
			ok = sc.stringValue(&info.Subject)
		case "requested_at":
			ok = sc.timeValue(&info.RequestedAt)
		case "expires_at":
			ok = sc.timeValue(&info.ExpiresAt)
		case "granted_scopes":
			info.GrantedScopes, ok = sc.stringsValue()
		case "granted_audience":
			info.GrantedAudience, ok = sc.stringsValue()
		case "active":
			ok = sc.boolValue(&info.Active)
		default:
			// encoding/json matches keys case-insensitively too: a
			// key it might take for a wanted one is for it to decode.
			ok = plainKey(key) && sc.skipValue()
		}
		if !ok {
			return info, false
		}
		if sc.consume(',') {
			continue
		}
		if sc.consume('}') {
			return info, sc.end()
		}
		return info, false
	}
}

// plainKey reports whether key is made of lower-case ASCII letters,
// digits and underscores, as every key of requestRecord is; no such key
// folds onto another.
func plainKey(key []byte) bool {
	for _, c := range key {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// jsonScanner walks JSON that encoding/json wrote. Its methods skip leading
// white space and report false on anything unexpected, leaving the caller
// to fall back to encoding/json.
type jsonScanner struct {
	b []byte
	s string // b as a string, which plain strings are cut from
	i int
}

func (sc *jsonScanner) ws() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// consume skips c if it comes next.
func (sc *jsonScanner) consume(c byte) bool {
	sc.ws()
	if sc.i < len(sc.b) && sc.b[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (sc *jsonScanner) end() bool {
	sc.ws()
	return sc.i == len(sc.b)
}

// literal skips word (null, true, false) if it comes next.
func (sc *jsonScanner) literal(word string) bool {
	sc.ws()
	if !bytes.HasPrefix(sc.b[sc.i:], []byte(word)) {
		return false
	}
	sc.i += len(word)
	return true
}

// quoted returns the next string with its quotes, as it is written, and
// whether it holds an escape.
func (sc *jsonScanner) quoted() (raw []byte, escaped, ok bool) {
	sc.ws()
	if sc.i >= len(sc.b) || sc.b[sc.i] != '"' {
		return nil, false, false
	}
	start := sc.i
	for j := start + 1; j < len(sc.b); j++ {
		switch sc.b[j] {
		case '\\':
			escaped = true
			j++ // the escaped byte can be a quote
		case '"':
			sc.i = j + 1
			return sc.b[start:sc.i], escaped, true
		}
	}
	return nil, false, false
}

// rawString returns the bytes of the next string without its quotes; ok
// is false for a string with an escape.
func (sc *jsonScanner) rawString() ([]byte, bool) {
	raw, escaped, ok := sc.quoted()
	if !ok || escaped {
		return nil, false
	}
	return raw[1 : len(raw)-1], true
}

// stringValue decodes the next string into s as encoding/json does; null
// leaves s alone.
func (sc *jsonScanner) stringValue(s *string) bool {
	if sc.literal("null") {
		return true
	}
	raw, escaped, ok := sc.quoted()
	if !ok {
		return false
	}
	if inner := raw[1 : len(raw)-1]; !escaped && plainString(inner) {
		*s = sc.s[sc.i-len(raw)+1 : sc.i-1]
		return true
	}
	return json.Unmarshal(raw, s) == nil
}

// plainString reports whether the bytes between two quotes decode to
// themselves: valid UTF-8 without control characters.
func plainString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return false
		}
	}
	return utf8.Valid(b)
}

// stringsValue decodes the next array of strings; null is nil, [] is
// empty but not nil, as with encoding/json.
func (sc *jsonScanner) stringsValue() ([]string, bool) {
	if sc.literal("null") {
		return nil, true
	}
	if !sc.consume('[') {
		return nil, false
	}
	// Collected on the stack, then copied once at their number.
	var buf [8]string
	out := buf[:0]
	if !sc.consume(']') {
		for {
			var s string
			if !sc.stringValue(&s) {
				return nil, false
			}
			out = append(out, s)
			if sc.consume(',') {
				continue
			}
			if sc.consume(']') {
				break
			}
			return nil, false
		}
	}
	return append(make([]string, 0, len(out)), out...), true
}

// timeValue decodes the next string into t with time.Time's UnmarshalJSON;
// null leaves t alone, as with encoding/json.
func (sc *jsonScanner) timeValue(t *time.Time) bool {
	if sc.literal("null") {
		return true
	}
	raw, _, ok := sc.quoted()
	return ok && t.UnmarshalJSON(raw) == nil
}

// boolValue decodes the next boolean into v; null leaves v alone.
func (sc *jsonScanner) boolValue(v *bool) bool {
	switch {
	case sc.literal("true"):
		*v = true
	case sc.literal("false"):
		*v = false
	case sc.literal("null"):
	default:
		return false
	}
	return true
}

// skipValue steps over the next value of any kind. It checks only
// nesting and strings; a malformed value elsewhere in the record is caught
// by the fallback only when it breaks them.
func (sc *jsonScanner) skipValue() bool {
	sc.ws()
	if sc.i >= len(sc.b) {
		return false
	}
	switch sc.b[sc.i] {
	case '"':
		_, _, ok := sc.quoted()
		return ok
	case '{', '[':
		depth := 0
		for sc.i < len(sc.b) {
			switch sc.b[sc.i] {
			case '"':
				if _, _, ok := sc.quoted(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					sc.i++
					return true
				}
			}
			sc.i++
		}
		return false
	}
	// A number or a literal: up to the next delimiter.
	start := sc.i
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return sc.i > start
		}
		sc.i++
	}
	return false
}
