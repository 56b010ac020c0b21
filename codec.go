package pgstore

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"unicode/utf8"
)

// A Codec turns session values into the JSON object stored in the sess
// column, and back. Implementations must be safe for concurrent use.
//
// Encode must return a JSON object (starting with '{'). It must not use the
// member names the store reserves: "_pgstore", and "cookie" in Express mode.
// Its output should be deterministic, because the store compares encodings
// byte for byte to skip writing unchanged sessions.
//
// Decode receives the whole sess object, which may hold the reserved members
// and, for rows written by other programs, anything else; the store removes
// the reserved names from values afterwards.
type Codec interface {
	Encode(values map[any]any) ([]byte, error)
	Decode(data []byte, values map[any]any) error
}

// Names of the sess members the store writes itself.
const (
	metaKey   = "_pgstore"
	cookieKey = "cookie"
)

// maxDepth bounds nesting in encoded values; deeper values are almost
// certainly cycles.
const maxDepth = 100

// ErrEncode is wrapped by the errors Save returns when a value cannot be
// stored: a non-string key, an unsupported type, NaN, invalid UTF-8 or a NUL
// character. Nothing is written when it is returned.
var ErrEncode = errors.New("value cannot be stored")

// JSONCodec stores values as a JSON object, one member per key, so that other
// programs (and Node's express-session) can read them. The zero value is
// ready to use and safe for concurrent use.
//
// Keys must be strings. After a round trip values come back as JSON
// decoding makes them, except that integers come back as int:
//
//	string, bool            -> string, bool
//	int, int8..int64, uint* -> int (float64 if outside int's range)
//	float32, float64        -> float64 (written with a fraction, 2.0 not 2)
//	[]string, []int, [...]  -> []any
//	map[string]T            -> map[string]any
//	nil                     -> nil
//	time.Time, structs,
//	json.Marshaler          -> whatever their JSON decodes to (a time.Time
//	                           comes back as its RFC 3339 string)
//	[]byte                  -> its base64 string
//
// Strings must be valid UTF-8 without NUL characters, because PostgreSQL's
// JSON operators reject \u0000. Values that JSON cannot represent (channels,
// functions, complex numbers, NaN, infinities, cycles) make Encode fail with
// an error naming the key.
type JSONCodec struct{}

// Encode implements Codec.
func (JSONCodec) Encode(values map[any]any) ([]byte, error) {
	keys := make([]string, 0, len(values))
	for k := range values {
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("pgstore: session key %#v (%T): %w: JSONCodec keys must be strings", k, k, ErrEncode)
		}
		keys = append(keys, ks)
	}
	slices.Sort(keys)
	e := jsonEncoder{buf: make([]byte, 0, 64+32*len(keys))}
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if k == metaKey {
			return nil, fmt.Errorf("pgstore: session key %q: %w: the name is reserved", k, ErrEncode)
		}
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.string(k); err != nil {
			return nil, fmt.Errorf("pgstore: session key %q: %w", k, err)
		}
		e.buf = append(e.buf, ':')
		if err := e.value(reflect.ValueOf(values[k]), 0); err != nil {
			return nil, fmt.Errorf("pgstore: session value %q: %w", k, err)
		}
	}
	e.buf = append(e.buf, '}')
	return e.buf, nil
}

// Decode implements Codec.
func (JSONCodec) Decode(data []byte, values map[any]any) error {
	return readObject(data, func(k string, v any) { values[k] = v })
}

// decodeObject parses a JSON object, turning integral numbers into int.
func decodeObject(data []byte) (map[string]any, error) {
	obj := make(map[string]any)
	if err := readObject(data, func(k string, v any) { obj[k] = v }); err != nil {
		return nil, err
	}
	return obj, nil
}

type jsonEncoder struct {
	buf []byte
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

func (e *jsonEncoder) value(v reflect.Value, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested more than %d levels (a cycle?)", ErrEncode, maxDepth)
	}
	if !v.IsValid() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	t := v.Type()
	if t.Kind() != reflect.Interface && (t.Implements(jsonMarshaler) || t.Implements(textMarshaler)) {
		if t.Kind() == reflect.Pointer && v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.marshal(v)
	}
	switch v.Kind() {
	case reflect.String:
		return e.string(v.String())
	case reflect.Bool:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return e.float(v.Float(), t.Bits())
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.value(v.Elem(), depth+1)
	case reflect.Slice:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return e.marshal(v)
		}
		return e.array(v, depth)
	case reflect.Array:
		return e.array(v, depth)
	case reflect.Map:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("%w: map key type %s is not a string", ErrEncode, t.Key())
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int {
			switch as, bs := a.String(), b.String(); {
			case as < bs:
				return -1
			case as > bs:
				return 1
			}
			return 0
		})
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.string(k.String()); err != nil {
				return err
			}
			e.buf = append(e.buf, ':')
			if err := e.value(v.MapIndex(k), depth+1); err != nil {
				return fmt.Errorf("at key %q: %w", k.String(), err)
			}
		}
		e.buf = append(e.buf, '}')
	case reflect.Struct:
		return e.marshal(v)
	default:
		return fmt.Errorf("%w: type %s has no JSON form", ErrEncode, t)
	}
	return nil
}

func (e *jsonEncoder) array(v reflect.Value, depth int) error {
	e.buf = append(e.buf, '[')
	for i := 0; i < v.Len(); i++ {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.value(v.Index(i), depth+1); err != nil {
			return fmt.Errorf("at index %d: %w", i, err)
		}
	}
	e.buf = append(e.buf, ']')
	return nil
}

func (e *jsonEncoder) float(f float64, bits int) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%w: %v has no JSON form", ErrEncode, f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(e.buf)
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, bits)
	// Keep a fraction so that the value decodes as float64, not int.
	if !bytes.ContainsAny(e.buf[start:], ".e") {
		e.buf = append(e.buf, ".0"...)
	}
	return nil
}

// marshal encodes values with their own JSON form (time.Time, structs,
// []byte) through encoding/json, without HTML escaping, and checks the
// strings in the result.
func (e *jsonEncoder) marshal(v reflect.Value) error {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v.Interface()); err != nil {
		return fmt.Errorf("%w: %w", ErrEncode, err)
	}
	b := bytes.TrimRight(out.Bytes(), "\n")
	if bytes.Contains(b, []byte(`\u0000`)) {
		return fmt.Errorf("%w: contains a NUL character", ErrEncode)
	}
	e.buf = append(e.buf, b...)
	return nil
}

const hexDigits = "0123456789abcdef"

// string writes s as a JSON string the way JavaScript's JSON.stringify does,
// so that both sides produce the same bytes for the same text.
func (e *jsonEncoder) string(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: string is not valid UTF-8", ErrEncode)
	}
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		if c == 0 {
			return fmt.Errorf("%w: string contains a NUL character", ErrEncode)
		}
		e.buf = append(e.buf, s[start:i]...)
		switch c {
		case '"', '\\':
			e.buf = append(e.buf, '\\', c)
		case '\b':
			e.buf = append(e.buf, '\\', 'b')
		case '\f':
			e.buf = append(e.buf, '\\', 'f')
		case '\n':
			e.buf = append(e.buf, '\\', 'n')
		case '\r':
			e.buf = append(e.buf, '\\', 'r')
		case '\t':
			e.buf = append(e.buf, '\\', 't')
		default:
			e.buf = append(e.buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
	return nil
}

// GobCodec stores values with encoding/gob, as base64 inside a JSON object
// ({"gob":"..."}), for applications that keep gob-registered structs in their
// sessions, as they could with gorilla's CookieStore. Keys may be of any
// gob-encodable type. Types must be registered with gob.Register.
//
// Other programs, Node included, cannot read these values, and GobCodec
// cannot be used with Config.ExpressSecrets. The zero value is ready to use
// and safe for concurrent use.
type GobCodec struct{}

type gobEnvelope struct {
	Gob []byte `json:"gob"`
}

// Encode implements Codec.
func (GobCodec) Encode(values map[any]any) ([]byte, error) {
	if _, ok := values[metaKey]; ok {
		// JSONCodec refuses it too: the store keeps its own member there,
		// and a value under that key would be dropped on load.
		return nil, fmt.Errorf("pgstore: session key %q: %w: the name is reserved", metaKey, ErrEncode)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		return nil, fmt.Errorf("pgstore: gob encode session: %w: %w", ErrEncode, err)
	}
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(buf.Len())+10)
	out = append(out, `{"gob":"`...)
	out = base64.StdEncoding.AppendEncode(out, buf.Bytes())
	out = append(out, `"}`...)
	return out, nil
}

// Decode implements Codec.
func (GobCodec) Decode(data []byte, values map[any]any) error {
	var env gobEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("pgstore: decode sess: %w", err)
	}
	if env.Gob == nil {
		return errors.New(`pgstore: decode sess: no "gob" member: the row was not written with GobCodec`)
	}
	m := make(map[any]any)
	if err := gob.NewDecoder(bytes.NewReader(env.Gob)).Decode(&m); err != nil {
		return fmt.Errorf("pgstore: gob decode session: %w", err)
	}
	for k, v := range m {
		values[k] = v
	}
	return nil
}
