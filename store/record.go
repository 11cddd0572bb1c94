package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/ory/fosite"
)

// The token records (codes, access and refresh tokens, PKCE sessions) are
// laid out as 8 bytes of expiry (Unix nanoseconds, big-endian, 0 for none),
// which the janitor reads without decoding, followed by the record.
//
// Release v1 wrote the record as JSON (legacyRecord), about 650 bytes for
// an access token. Records are now written in a lean binary form, about
// 200 bytes: its first byte is recordV2, which no JSON text starts with,
// so both forms are read. Fields are uvarint-length-prefixed strings and
// lists; what equals another field is a flag instead (requested scopes
// and audience that equal the granted ones, the form's client_id, the
// session's user name). A fosite.DefaultSession, the session of every
// request mcpd stores, is kept field by field with its expiries as numbers;
// any other session type as its JSON. A tombstone keeps only what reuse
// detection needs of a used code or a rotated or revoked refresh token: its
// grant (request id), client and subject, the number of its retirement
// among the grant's refresh tokens, the extra claims of its session (where
// a DPoP binding lives, which guards even reuse detection: without the key
// a thief cannot make a reuse revoke the grant), and its expiry in the
// prefix.
//
//	expiry(8) 0x02 flags id client subject [jkt]
//	  tombstone: seq
//	  else: requested-at granted-scopes [requested-scopes]
//	        granted-audience [requested-audience] form
//	session
//
// The DPoP key thumbprint a token is bound to (jkt, RFC 9449) is a field of
// its own, which a bearer check reads without the session; a session's
// cnf claim that holds just that thumbprint is not stored twice.

// recordV2 is the first byte of a record in the lean form.
const recordV2 = 0x02

// Flags of a lean record.
const (
	flagActive       = 1 << 0
	flagTombstone    = 1 << 1 // a tombstone: a number, not the request, follows
	flagSameScopes   = 1 << 2 // requested scopes = granted, not stored twice
	flagSameAudience = 1 << 3 // requested audience = granted
	flagFormClientID = 1 << 4 // the form's client_id is the record's client id
	flagJKT          = 1 << 5 // a DPoP key thumbprint follows the subject
	flagsKnown       = flagActive | flagTombstone | flagSameScopes | flagSameAudience | flagFormClientID | flagJKT
)

// Session kinds of a lean record.
const (
	sessionNone    = 0
	sessionJSON    = 1 // any fosite.Session, as its JSON
	sessionDefault = 2 // a *fosite.DefaultSession, field by field
)

// tokenTypeCodes number the token types of DefaultSession.ExpiresAt; code 0
// is followed by the type's name.
var tokenTypeCodes = []fosite.TokenType{0: "", 1: fosite.AccessToken, 2: fosite.RefreshToken, 3: fosite.AuthorizeCode, 4: fosite.IDToken}

func tokenTypeCode(tt fosite.TokenType) byte {
	for i, t := range tokenTypeCodes {
		if i > 0 && t == tt {
			return byte(i)
		}
	}
	return 0
}

// encodeRequest lays a record out in the lean form.
func encodeRequest(rec *requestRecord) ([]byte, error) {
	w := recordWriter{b: make([]byte, 0, 256)}
	w.b = append(w.b, expiryPrefix(rec.ExpiresAt)...)
	var flags byte
	if rec.Active {
		flags |= flagActive
	}
	if rec.Tombstone {
		flags |= flagTombstone
	}
	jkt := rec.ConfirmationJKT
	if jkt != "" {
		flags |= flagJKT
	}
	sameScopes := slices.Equal(rec.RequestedScopes, rec.GrantedScopes)
	sameAudience := slices.Equal(rec.RequestedAudience, rec.GrantedAudience)
	form := rec.Form
	if !rec.Tombstone {
		if sameScopes {
			flags |= flagSameScopes
		}
		if sameAudience {
			flags |= flagSameAudience
		}
		if v, ok := form["client_id"]; ok && len(v) == 1 && v[0] == rec.ClientID {
			flags |= flagFormClientID
			form = without(form, "client_id")
		}
	}
	w.b = append(w.b, recordV2, flags)
	w.str(rec.ID)
	w.str(rec.ClientID)
	w.str(rec.Subject)
	if jkt != "" {
		w.str(jkt)
	}
	if rec.Tombstone {
		w.uvarint(rec.Seq)
	} else {
		w.time(rec.RequestedAt)
		w.strs(rec.GrantedScopes)
		if !sameScopes {
			w.strs(rec.RequestedScopes)
		}
		w.strs(rec.GrantedAudience)
		if !sameAudience {
			w.strs(rec.RequestedAudience)
		}
		w.form(form)
	}
	switch s := rec.Session; {
	case s.Default != nil:
		w.b = append(w.b, sessionDefault)
		if err := w.defaultSession(s.Default, rec.Subject, jkt); err != nil {
			return nil, err
		}
	case s.JSON != nil:
		w.b = append(w.b, sessionJSON)
		w.bytes(s.JSON)
	default:
		w.b = append(w.b, sessionNone)
	}
	return w.b, nil
}

// without returns a copy of m without key.
func without[M ~map[string]V, V any](m M, key string) M {
	out := make(M, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// decodeRequest reads a record in either form.
func decodeRequest(v []byte) (*requestRecord, error) {
	if len(v) < 9 {
		return nil, errors.New("store: corrupt request record")
	}
	if v[8] != recordV2 {
		return decodeLegacyRequest(v)
	}
	r := recordReader{b: v[9:]}
	flags := r.byte()
	if flags&^flagsKnown != 0 {
		return nil, fmt.Errorf("store: corrupt request record (flags %#x)", flags)
	}
	rec := &requestRecord{
		ID:        r.str(),
		ClientID:  r.str(),
		Subject:   r.str(),
		Active:    flags&flagActive != 0,
		Tombstone: flags&flagTombstone != 0,
	}
	if flags&flagJKT != 0 {
		rec.ConfirmationJKT = r.str()
	}
	if exp, ok := expiryOf(v); ok {
		rec.ExpiresAt = exp.UTC()
	}
	if rec.Tombstone {
		rec.Seq = r.uvarint()
	}
	if !rec.Tombstone {
		rec.RequestedAt = r.time()
		rec.GrantedScopes = r.strs()
		rec.RequestedScopes = rec.GrantedScopes
		if flags&flagSameScopes == 0 {
			rec.RequestedScopes = r.strs()
		}
		rec.GrantedAudience = r.strs()
		rec.RequestedAudience = rec.GrantedAudience
		if flags&flagSameAudience == 0 {
			rec.RequestedAudience = r.strs()
		}
		rec.Form = r.form()
		if flags&flagFormClientID != 0 {
			if rec.Form == nil {
				rec.Form = url.Values{}
			}
			rec.Form["client_id"] = []string{rec.ClientID}
		}
	}
	switch kind := r.byte(); kind {
	case sessionNone:
	case sessionJSON:
		rec.Session.JSON = r.bytes()
	case sessionDefault:
		rec.Session.Default = r.defaultSession(rec.Subject, rec.ConfirmationJKT)
	default:
		r.fail("session kind %d", kind)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the record", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return rec, nil
}

// recordHeader is what the index upkeep needs of a record: its grant,
// client and subject, its state and, for a tombstone, its number.
type recordHeader struct {
	ID, ClientID, Subject string
	Active                bool
	Seq                   uint64
}

// peekRequest reads a record's header without decoding the rest.
func peekRequest(v []byte) (recordHeader, error) {
	if len(v) < 9 {
		return recordHeader{}, errors.New("store: corrupt request record")
	}
	if v[8] != recordV2 {
		rec, err := decodeLegacyRequest(v)
		if err != nil {
			return recordHeader{}, err
		}
		return recordHeader{ID: rec.ID, ClientID: rec.ClientID, Subject: rec.Subject, Active: rec.Active}, nil
	}
	r := recordReader{b: v[9:]}
	flags := r.byte()
	h := recordHeader{ID: r.str(), ClientID: r.str(), Subject: r.str(), Active: flags&flagActive != 0}
	if flags&flagJKT != 0 {
		r.next(r.uvarint())
	}
	if flags&flagTombstone != 0 {
		h.Seq = r.uvarint()
	}
	return h, r.err
}

// jsonRecord is a request record as JSON: how release v1 stored it in the
// file, and how the other backends store it (EncodeRequest), so that a
// change of the lean form stays this file's.
type jsonRecord struct {
	ID                string          `json:"id"`
	ClientID          string          `json:"client_id"`
	Subject           string          `json:"subject,omitempty"`
	RequestedAt       time.Time       `json:"requested_at"`
	RequestedScopes   []string        `json:"requested_scopes,omitempty"`
	GrantedScopes     []string        `json:"granted_scopes,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session,omitempty"`
	Active            bool            `json:"active"`
	ExpiresAt         time.Time       `json:"expires_at"`
	ConfirmationJKT   string          `json:"cnf_jkt,omitempty"`
}

// marshalJSON returns the JSON form of rec, its session as JSON.
func (rec *requestRecord) marshalJSON() ([]byte, error) {
	sess := rec.Session.JSON
	if rec.Session.Default != nil {
		var err error
		if sess, err = json.Marshal(rec.Session.Default); err != nil {
			return nil, fmt.Errorf("store: encode session: %w", err)
		}
	}
	raw, err := json.Marshal(jsonRecord{
		ID: rec.ID, ClientID: rec.ClientID, Subject: rec.Subject, RequestedAt: rec.RequestedAt,
		RequestedScopes: rec.RequestedScopes, GrantedScopes: rec.GrantedScopes,
		RequestedAudience: rec.RequestedAudience, GrantedAudience: rec.GrantedAudience,
		Form: rec.Form, Session: sess, Active: rec.Active, ExpiresAt: rec.ExpiresAt, ConfirmationJKT: rec.ConfirmationJKT,
	})
	if err != nil {
		return nil, fmt.Errorf("store: encode request: %w", err)
	}
	return raw, nil
}

// unmarshalJSONRecord reads the JSON form of a record.
func unmarshalJSONRecord(raw []byte) (*requestRecord, error) {
	var l jsonRecord
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("store: decode request: %w", err)
	}
	rec := &requestRecord{
		ID: l.ID, ClientID: l.ClientID, Subject: l.Subject, RequestedAt: l.RequestedAt,
		RequestedScopes: l.RequestedScopes, GrantedScopes: l.GrantedScopes,
		RequestedAudience: l.RequestedAudience, GrantedAudience: l.GrantedAudience,
		Form: l.Form, Active: l.Active, ExpiresAt: l.ExpiresAt, ConfirmationJKT: l.ConfirmationJKT,
	}
	if len(l.Session) > 0 && string(l.Session) != "null" {
		rec.Session.JSON = l.Session
	}
	return rec, nil
}

// decodeLegacyRequest reads a record of release v1: its expiry prefix and
// its JSON.
func decodeLegacyRequest(v []byte) (*requestRecord, error) { return unmarshalJSONRecord(v[8:]) }

// recordWriter appends the fields of a lean record.
type recordWriter struct{ b []byte }

func (w *recordWriter) uvarint(u uint64) { w.b = binary.AppendUvarint(w.b, u) }

func (w *recordWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *recordWriter) bytes(p []byte) {
	w.uvarint(uint64(len(p)))
	w.b = append(w.b, p...)
}

func (w *recordWriter) strs(l []string) {
	w.uvarint(uint64(len(l)))
	for _, s := range l {
		w.str(s)
	}
}

// time writes 0 for the zero time, else 1, the Unix seconds and the
// nanoseconds: every time.Time round-trips, as an instant in UTC.
func (w *recordWriter) time(t time.Time) {
	if t.IsZero() {
		w.b = append(w.b, 0)
		return
	}
	w.b = append(w.b, 1)
	w.b = binary.AppendVarint(w.b, t.Unix())
	w.uvarint(uint64(t.Nanosecond()))
}

// form writes the keys in order, each with its values.
func (w *recordWriter) form(f url.Values) {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.strs(f[k])
	}
}

func (w *recordWriter) defaultSession(s *fosite.DefaultSession, subject, jkt string) error {
	types := make([]fosite.TokenType, 0, len(s.ExpiresAt))
	for tt := range s.ExpiresAt {
		types = append(types, tt)
	}
	slices.Sort(types)
	// 0 is a nil map, n+1 a map of n entries: encoding/json tells an empty
	// map from a nil one when it decodes into a session, and so must this.
	if s.ExpiresAt == nil {
		w.uvarint(0)
	} else {
		w.uvarint(uint64(len(types)) + 1)
	}
	for _, tt := range types {
		code := tokenTypeCode(tt)
		w.b = append(w.b, code)
		if code == 0 {
			w.str(string(tt))
		}
		w.time(s.ExpiresAt[tt])
	}
	for _, v := range []string{s.Subject, s.Username} {
		if v == subject {
			w.b = append(w.b, 0)
		} else {
			w.b = append(w.b, 1)
			w.str(v)
		}
	}
	extraMap := s.Extra
	if jkt != "" && cnfIs(s.Extra["cnf"], jkt) {
		w.b = append(w.b, 1) // cnf is {"jkt": the record's jkt}
		extraMap = without(s.Extra, "cnf")
	} else {
		w.b = append(w.b, 0)
	}
	if extraMap == nil {
		w.bytes(nil)
		return nil
	}
	extra, err := json.Marshal(extraMap)
	if err != nil {
		return fmt.Errorf("store: encode session: %w", err)
	}
	w.bytes(extra)
	return nil
}

// recordReader reads the fields of a lean record. It never reads past its
// bytes or allocates more than they could hold: the first problem sets
// err, after which every read returns a zero value.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("store: corrupt request record: "+format, args...)
	}
	r.b = nil
}

func (r *recordReader) byte() byte {
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *recordReader) uvarint() uint64 {
	u, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad number")
		return 0
	}
	r.b = r.b[n:]
	return u
}

func (r *recordReader) varint() int64 {
	i, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad number")
		return 0
	}
	r.b = r.b[n:]
	return i
}

// next returns the next n bytes, where n is a length just read.
func (r *recordReader) next(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail("length %d past the end", n)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *recordReader) str() string { return string(r.next(r.uvarint())) }

// bytes returns a copy; nil for an empty field.
func (r *recordReader) bytes() []byte {
	p := r.next(r.uvarint())
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// count reads the length of a list whose entries take at least one byte
// each, so a corrupt length cannot make it allocate more than the record.
func (r *recordReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("count %d past the end", n)
		return 0
	}
	return int(n)
}

// strs returns nil for an empty list, as JSON's omitempty did.
func (r *recordReader) strs() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = r.str()
	}
	return l
}

// skipStrs skips a list of strings.
func (r *recordReader) skipStrs() {
	for range r.count() {
		r.next(r.uvarint())
	}
}

func (r *recordReader) time() time.Time {
	switch r.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := r.varint()
		nsec := r.uvarint()
		if nsec >= uint64(time.Second) || sec < math.MinInt64/2 || sec > math.MaxInt64/2 {
			r.fail("bad time")
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	r.fail("bad time")
	return time.Time{}
}

func (r *recordReader) form() url.Values {
	n := r.count()
	if n == 0 {
		return nil
	}
	f := make(url.Values, n)
	for range n {
		k := r.str()
		f[k] = r.strs()
	}
	return f
}

func (r *recordReader) defaultSession(subject, jkt string) *fosite.DefaultSession {
	s := &fosite.DefaultSession{}
	if n := r.count(); n > 0 {
		s.ExpiresAt = make(map[fosite.TokenType]time.Time, n-1)
		for range n - 1 {
			code := r.byte()
			var tt fosite.TokenType
			switch {
			case code == 0:
				tt = fosite.TokenType(r.str())
			case int(code) < len(tokenTypeCodes):
				tt = tokenTypeCodes[code]
			default:
				r.fail("token type %d", code)
			}
			s.ExpiresAt[tt] = r.time()
		}
	}
	for _, f := range []*string{&s.Subject, &s.Username} {
		switch r.byte() {
		case 0:
			*f = subject
		case 1:
			*f = r.str()
		default:
			r.fail("bad session name")
		}
	}
	cnf := r.byte()
	if cnf > 1 || (cnf == 1 && jkt == "") {
		r.fail("bad session cnf")
	}
	if extra := r.next(r.uvarint()); len(extra) > 0 && r.err == nil {
		if err := json.Unmarshal(extra, &s.Extra); err != nil {
			r.fail("session extra: %v", err)
		}
	}
	if cnf == 1 && r.err == nil {
		if s.Extra == nil {
			s.Extra = map[string]any{}
		}
		s.Extra["cnf"] = map[string]any{"jkt": jkt}
	}
	return s
}

// cnfIs reports whether a session's cnf claim holds just the thumbprint
// jkt, as encoding/json would decode it back.
func cnfIs(cnf any, jkt string) bool {
	switch c := cnf.(type) {
	case map[string]any:
		v, ok := c["jkt"].(string)
		return ok && len(c) == 1 && v == jkt
	case map[string]string:
		return len(c) == 1 && c["jkt"] == jkt
	}
	return false
}
