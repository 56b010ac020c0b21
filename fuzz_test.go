package pgstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<target>/ and run
// with every go test; `go test -fuzz=FuzzX` explores from them.

var fuzzKeys = [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{2}, 32)}

// FuzzSecureCookieDecode: any cookie value either fails or yields an ID
// that is ID-shaped and survives a fresh encode/decode.
func FuzzSecureCookieDecode(f *testing.F) {
	format := newSecureCookieFormat(fuzzKeys)
	valid, err := format.encode("session", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Fuzz(func(t *testing.T, value string) {
		id, _, ok := format.decode("session", value)
		if !ok {
			return
		}
		if id == "" || len(id) > 256 || !isIDText([]byte(id)) {
			t.Fatalf("decoded an ID that is not ID-shaped: %q", id)
		}
		again, err := format.encode("session", id)
		if err != nil {
			t.Fatal(err)
		}
		if back, current, ok := format.decode("session", again); !ok || back != id || !current {
			t.Fatalf("re-encoded ID %q decodes to %q, %v", id, back, ok)
		}
		if _, _, ok := format.decode("other", value); ok {
			t.Fatalf("a cookie for one name decodes under another")
		}
	})
}

// FuzzExpressCookieDecode: a value is accepted only with a valid signature
// by one of the secrets, URL-encoded or not.
func FuzzExpressCookieDecode(f *testing.F) {
	format := newExpressFormat([]string{"new secret", "old secret"})
	valid, _ := format.encode("", "PJVJunwtWpBmdAeUZTrTxJCnbdMctKi8")
	f.Add(valid)
	f.Fuzz(func(t *testing.T, value string) {
		id, _, ok := format.decode("connect.sid", value)
		if !ok {
			return
		}
		signed := false
		for _, secret := range format.secrets {
			sig := expressSignature(secret, id)
			for _, form := range []string{"s:" + id + "." + sig, encodeURIComponent("s:" + id + "." + sig)} {
				if back, _, ok := format.decode("", form); ok && back == id {
					signed = true
				}
			}
		}
		if !signed {
			t.Fatalf("accepted %q as %q without a verifiable signature", value, id)
		}
	})
}

// FuzzJSONCodec: decoding never panics; whatever decodes and re-encodes
// is stable: decoding the encoding gives the same values, and encoding is
// deterministic.
func FuzzJSONCodec(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		values := map[any]any{}
		if err := (JSONCodec{}).Decode(data, values); err != nil {
			return
		}
		delete(values, metaKey) // reserved: the store removes it before encoding
		enc, err := JSONCodec{}.Encode(values)
		if err != nil {
			return // NUL characters and the like are refused, not mangled
		}
		back := map[any]any{}
		if err := (JSONCodec{}).Decode(enc, back); err != nil {
			t.Fatalf("our own encoding %s does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(values, back) {
			t.Fatalf("round trip changed values:\n%#v\n%#v", values, back)
		}
		enc2, err := JSONCodec{}.Encode(back)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %s vs %s (%v)", enc, enc2, err)
		}
	})
}

// FuzzSessDecode: the store's reading of a whole sess column, in both
// formats, never panics, and a row it accepts can be written back
// unchanged: no encoding error, no size error however small MaxLength is,
// the same values, and in Express mode every value member with the text it
// had.
func FuzzSessDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, express bool) {
		st := &Store{cfg: settings{codec: JSONCodec{}, byteStable: true, express: express, options: *DefaultOptions(), maxLength: 1},
			row: nativeRow{}}
		if express {
			st.row = expressRow{}
		}
		s := sessions.NewSession(st, "s")
		s.Options = DefaultOptions()
		var m meta
		if err := st.decode(data, s.Values, &m); err != nil {
			return
		}
		if m.hasMaxAge {
			s.Options.MaxAge = max(m.maxAge, 0)
		}
		out, err := st.encode(s, m, m.cookie.expires, data)
		if err != nil {
			t.Fatalf("re-encoding an accepted row: %v", err)
		}
		var was, now map[string]json.RawMessage
		if err := json.Unmarshal(data, &was); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", data, err)
		}
		if err := json.Unmarshal(out, &now); err != nil {
			t.Fatalf("wrote %q: %v", out, err)
		}
		for k := range s.Values {
			if express && !bytes.Equal(was[k.(string)], now[k.(string)]) {
				t.Fatalf("member %q: read %s, written back as %s", k, was[k.(string)], now[k.(string)])
			}
		}
		back := make(map[any]any)
		var m2 meta
		if err := st.decode(out, back, &m2); err != nil || !reflect.DeepEqual(back, s.Values) {
			t.Fatalf("wrote %q, read back %v (%v), want %v", out, back, err, s.Values)
		}
	})
}

// FuzzJSONDecode: the load path reads sess as plain encoding/json reads
// it: the same verdict on every input, and the same values, except that
// integral numbers come back as int. A number beyond float64 is refused
// (encoding/json reports it too, but still decodes the rest), unless a
// later duplicate member overwrote it.
func FuzzJSONDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gerr := decodeObject(data)
		var want any
		werr := json.Unmarshal(data, &want)
		_, isObject := want.(map[string]any)
		var typeErr *json.UnmarshalTypeError
		outOfRange := errors.As(werr, &typeErr)
		switch {
		case werr != nil && !outOfRange || werr == nil && !isObject:
			if gerr == nil {
				t.Fatalf("%q: accepted; encoding/json: %v, %T", data, werr, want)
			}
			return
		case gerr != nil:
			if !outOfRange {
				t.Fatalf("%q: refused (%v); encoding/json accepts it", data, gerr)
			}
			return
		}
		if !reflect.DeepEqual(asFloats(got), withRawStrings(want, true)) {
			t.Fatalf("for %q:\nencoding/json %#v\nload path     %#v", data, want, got)
		}
	})
}

// withRawStrings is v, as encoding/json decodes it, with the objects that
// stand for strings that are not UTF-8 (jsonString) made those strings, as
// the load path makes them; the sess object itself (top) never is one.
func withRawStrings(v any, top bool) any {
	switch v := v.(type) {
	case map[string]any:
		if s, ok := rawString(v); ok && !top {
			return s
		}
		for k, e := range v {
			v[k] = withRawStrings(e, false)
		}
	case []any:
		for i, e := range v {
			v[i] = withRawStrings(e, false)
		}
	}
	return v
}

// asFloats is v with every int made a float64, as encoding/json decodes
// numbers.
func asFloats(v any) any {
	switch v := v.(type) {
	case int:
		return float64(v)
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = asFloats(e)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = asFloats(e)
		}
		return a
	}
	return v
}

// FuzzSecureCookieVerify: the store accepts a cookie exactly when one of
// its key pairs, tried in order as securecookie.DecodeMulti tries them,
// verifies it and yields an ID, and says it is current exactly when the
// first pair did; across rotated, encrypted and shared-hash-key pairs.
func FuzzSecureCookieVerify(f *testing.F) {
	pairs := [][]byte{
		bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{3}, 32),
		bytes.Repeat([]byte{2}, 32), nil,
		bytes.Repeat([]byte{1}, 32), nil, // shares the first hash key
	}
	ours := newSecureCookieFormat(pairs)
	reference := securecookie.CodecsFromPairs(pairs...)
	for _, c := range reference {
		c.(*securecookie.SecureCookie).MaxAge(0).SetSerializer(securecookie.NopEncoder{})
	}
	for _, c := range reference {
		v, _ := c.Encode("session", []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
		f.Add("session", v)
		f.Add("other", v)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		wantID, wantCurrent, wantOK := "", false, false
		for i, c := range reference {
			var payload []byte
			if c.Decode(name, value, &payload) != nil {
				continue
			}
			if id, ok := parseID(payload); ok {
				wantID, wantCurrent, wantOK = id, i == 0, true
				break
			}
		}
		id, current, ok := ours.decode(name, value)
		if ok != wantOK || id != wantID || current != wantCurrent {
			t.Fatalf("name %q value %q: got %q %v %v, want %q %v %v", name, value, id, current, ok, wantID, wantCurrent, wantOK)
		}
		// DecodeMulti, which stops at the first pair whose signature
		// verifies, agrees wherever the payload is an ID.
		var payload []byte
		if err := securecookie.DecodeMulti(name, value, &payload, reference...); err == nil && isIDText(payload) && len(payload) > 0 && len(payload) <= 256 {
			if !ok || id != string(payload) {
				t.Fatalf("name %q value %q: DecodeMulti gives ID %q, ours %q %v", name, value, payload, id, ok)
			}
		}
	})
}
