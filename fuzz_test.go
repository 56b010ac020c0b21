package pgstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
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

// FuzzSessMetaMatchesGeneric: the load path reads the "_pgstore" member
// straight into the store's metadata; it must agree with decoding the
// whole document generically and then taking the member from the map:
// same acceptance, same values, same metadata.
func FuzzSessMetaMatchesGeneric(f *testing.F) {
	for _, seed := range []string{
		`{"_pgstore":{"created":1764230400},"user":"alice","n":3}`,
		`{"_pgstore":{"created":1764230400,"maxAge":7776000},"user_id":1000}`,
		`{"_pgstore":{"created":1,"created":"x"},"a":[1,2.5,{"b":null}]}`,
		`{"_pgstore":{"maxAge":-1,"maxAge":1e3}}`,
		`{"_pgstore":{"created":-5,"other":{"deep":[true]}},"_pgstore":{"created":7}}`,
		`{"_pgstore":[1,2],"x":"\u00e9"}`,
		`{"_pgstore":{"created":99999999999999999999999}}`,
		`{"_pgstore":{"created":1e999}}`,
		`{"_pgstore":{"created":01}}`,
		`{"_pgstore\u0000":{"created":5},"_pgstor":1}`,
		`{"cookie":{"originalMaxAge":null},"_pgstore":{}}`,
		`{}`,
		`[]`,
		`{"_pgstore":}`,
	} {
		f.Add([]byte(seed))
	}
	st := &Store{cfg: settings{codec: JSONCodec{}, options: *DefaultOptions()}}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := make(map[any]any)
		var gotMeta meta
		gotErr := st.decode(data, got, &gotMeta)

		want := make(map[any]any)
		var wantMeta meta
		wantErr := readObject(data, func(k string, v any) { want[k] = v })
		if wantErr == nil {
			metaFromValue(want[metaKey], &wantMeta)
			delete(want, metaKey)
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: load path error %v, generic error %v", data, gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: values %#v, generic %#v", data, got, want)
		}
		if gotMeta != wantMeta {
			t.Fatalf("%q: meta %+v, generic %+v", data, gotMeta, wantMeta)
		}
	})
}

// FuzzSessDecode: the store's reading of a whole sess column, in both
// formats, never panics, and a row it accepts can be written back.
func FuzzSessDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, express bool) {
		st := &Store{cfg: settings{codec: JSONCodec{}, express: express, options: *DefaultOptions()}}
		s := sessions.NewSession(st, "s")
		s.Options = DefaultOptions()
		var m meta
		if err := st.decode(data, s.Values, &m); err != nil {
			return
		}
		if m.hasMaxAge {
			s.Options.MaxAge = m.maxAge
		}
		if _, err := st.encode(s, m, m.cookie.expires); err != nil && !isEncodeError(err) {
			t.Fatalf("re-encoding an accepted row: %v", err)
		}
	})
}

func isEncodeError(err error) bool {
	return err != nil && (bytes.Contains([]byte(err.Error()), []byte(ErrEncode.Error())))
}

// referenceDecode is what the JSON codec used to do: encoding/json with
// UseNumber, then integral numbers to int.
func referenceDecode(data []byte) (map[string]any, error) {
	// Numbers beyond float64 are errors anywhere in the document, even in
	// a member a later duplicate overwrites.
	var probe any
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errNotObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	var conv func(v any) (any, error)
	conv = func(v any) (any, error) {
		switch v := v.(type) {
		case json.Number:
			if n, err := strconv.Atoi(string(v)); err == nil && !strings.ContainsAny(string(v), ".eE") {
				return n, nil
			}
			f, err := strconv.ParseFloat(string(v), 64)
			return f, err
		case map[string]any:
			for k, e := range v {
				c, err := conv(e)
				if err != nil {
					return nil, err
				}
				v[k] = c
			}
		case []any:
			for i, e := range v {
				c, err := conv(e)
				if err != nil {
					return nil, err
				}
				v[i] = c
			}
		}
		return v, nil
	}
	for k, v := range obj {
		c, err := conv(v)
		if err != nil {
			return nil, err
		}
		obj[k] = c
	}
	return obj, nil
}

// FuzzJSONReaderMatchesEncodingJSON: the load path's JSON reader agrees
// with encoding/json on every input: same values, same verdict.
func FuzzJSONReaderMatchesEncodingJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := referenceDecode(data)
		got, gerr := decodeObject(data)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json err %v, reader err %v, for %q", werr, gerr, data)
		}
		if werr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("for %q:\nencoding/json %#v\nreader        %#v", data, want, got)
		}
	})
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
