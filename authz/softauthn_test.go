package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"sort"
	"testing"
)

// softAuthenticator is a WebAuthn authenticator in software for the tests:
// it makes ES256 credentials and signs assertions as a platform
// authenticator would, and can be told to misbehave (another RP ID, another
// origin, no user verification, a counter that goes backwards) so the
// tests see the server refuse. It encodes; the server's go-webauthn
// parses.
type softAuthenticator struct {
	rpID   string // the RP ID it signs for
	origin string // the origin its browser reports
	noUV   bool   // leave the user-verified flag off
	// crossOrigin reports the ceremony as run in a frame of another
	// origin, as a browser does for an embedded page.
	crossOrigin bool
}

type softCredential struct {
	id         []byte
	key        *ecdsa.PrivateKey
	userHandle []byte
	count      uint32
}

// creationOptions and requestOptions are the parts of the server's
// options the authenticator reads.
type creationOptions struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID string `json:"id"`
	} `json:"rp"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
}

type requestOptions struct {
	Challenge string `json:"challenge"`
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (a *softAuthenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.origin, "crossOrigin": a.crossOrigin})
	return b
}

func (a *softAuthenticator) flags(attested bool) byte {
	f := byte(0x01) // UP
	if !a.noUV {
		f |= 0x04 // UV
	}
	if attested {
		f |= 0x40 // AT
	}
	return f
}

// create answers navigator.credentials.create with a new credential, as
// the JSON the page script posts.
func (a *softAuthenticator) create(t *testing.T, options json.RawMessage) (string, *softCredential) {
	t.Helper()
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("creation options: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	handle, err := base64.RawURLEncoding.DecodeString(o.User.ID)
	if err != nil {
		t.Fatalf("user.id: %v", err)
	}
	cred := &softCredential{id: make([]byte, 16), key: key, userHandle: handle}
	rand.Read(cred.id)

	pub, err := key.PublicKey.Bytes() // uncompressed point: 0x04 | x | y
	if err != nil {
		t.Fatal(err)
	}
	coseKey := cborMap{{1, 2}, {3, -7}, {-1, 1}, {-2, pub[1:33]}, {-3, pub[33:65]}}.encode()
	rpHash := sha256.Sum256([]byte(a.rpID))
	authData := append(rpHash[:], a.flags(true))
	authData = binary.BigEndian.AppendUint32(authData, cred.count)
	authData = append(authData, make([]byte, 16)...) // AAGUID
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(cred.id)))
	authData = append(authData, cred.id...)
	authData = append(authData, coseKey...)
	attObj := cborMap{{"fmt", "none"}, {"attStmt", cborMap{}}, {"authData", authData}}.encode()

	out, _ := json.Marshal(map[string]any{
		"id": b64(cred.id), "rawId": b64(cred.id), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64(a.clientData("webauthn.create", o.Challenge)),
			"attestationObject": b64(attObj),
			"transports":        []string{"internal"},
		},
	})
	return string(out), cred
}

// get answers navigator.credentials.get with an assertion of cred, as the
// JSON the page script posts. The counter goes up by one each time.
func (a *softAuthenticator) get(t *testing.T, options json.RawMessage, cred *softCredential) string {
	t.Helper()
	cred.count++
	return a.getAt(t, options, cred, cred.count)
}

// getAt signs with the given counter value.
func (a *softAuthenticator) getAt(t *testing.T, options json.RawMessage, cred *softCredential, count uint32) string {
	t.Helper()
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("request options: %v", err)
	}
	rpHash := sha256.Sum256([]byte(a.rpID))
	authData := append(rpHash[:], a.flags(false))
	authData = binary.BigEndian.AppendUint32(authData, count)
	cd := a.clientData("webauthn.get", o.Challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), authData...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, cred.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64(cred.id), "rawId": b64(cred.id), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64(cd),
			"authenticatorData": b64(authData),
			"signature":         b64(sig),
			"userHandle":        b64(cred.userHandle),
		},
	})
	return string(out)
}

// cborMap is a CBOR map in canonical key order, enough of CBOR (RFC 8949)
// for attestation objects and COSE keys: integers, byte and text strings,
// nested maps.
type cborMap []struct{ k, v any }

func (m cborMap) encode() []byte {
	type kv struct{ k, v []byte }
	var items []kv
	for _, e := range m {
		items = append(items, kv{cborEncode(e.k), cborEncode(e.v)})
	}
	sort.Slice(items, func(i, j int) bool { // canonical: shorter key first, then bytewise
		a, b := items[i].k, items[j].k
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return string(a) < string(b)
	})
	out := cborHead(5, uint64(len(items)))
	for _, it := range items {
		out = append(append(out, it.k...), it.v...)
	}
	return out
}

func cborEncode(v any) []byte {
	switch x := v.(type) {
	case int:
		if x < 0 {
			return cborHead(1, uint64(-1-x))
		}
		return cborHead(0, uint64(x))
	case []byte:
		return append(cborHead(2, uint64(len(x))), x...)
	case string:
		return append(cborHead(3, uint64(len(x))), x...)
	case cborMap:
		return x.encode()
	}
	panic("cbor: unsupported type")
}

func cborHead(major byte, n uint64) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 1<<8:
		return []byte{major<<5 | 24, byte(n)}
	case n < 1<<16:
		return binary.BigEndian.AppendUint16([]byte{major<<5 | 25}, uint16(n))
	default:
		return binary.BigEndian.AppendUint32([]byte{major<<5 | 26}, uint32(n))
	}
}
