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
	"strings"
	"sync"
	"unicode/utf8"
)

// A Codec turns session values into the JSON object stored in the sess
// column, and back. Implementations must be safe for concurrent use.
//
// Encode must return a JSON object (starting with '{'). The store refuses,
// before calling it, session keys it keeps for itself: "_pgstore", and
// "cookie" in Express mode. Its output should be deterministic, because the
// store compares encodings byte for byte to skip writing unchanged sessions.
//
// Decode receives the whole sess object. It should put every member it does
// not consume itself into values under its name, decoded as JSONCodec
// decodes it: the store reads its own members from there and removes them
// afterwards.
type Codec interface {
	Encode(values map[any]any) ([]byte, error)
	Decode(data []byte, values map[any]any) error
}

// maxDepth bounds the nesting of containers (maps, slices, arrays) inside a
// session value. With the sess object around them that is encoding/json's
// own limit of 10,000 levels, so the store writes exactly what it reads.
// Deeper Go values are almost certainly cycles.
const maxDepth = 9999

// ErrEncode is wrapped by the errors Save returns when a value cannot be
// stored: a non-string key, a reserved key, a key that is not valid UTF-8,
// an unsupported type, NaN, or nesting past 9,999 levels. Nothing is written when it is
// returned.
var ErrEncode = errors.New("pgstore: value cannot be stored")

// JSONCodec stores values as a JSON object, one member per key, so that other
// programs (and Node's express-session) can read them. It uses encoding/json
// both ways. The zero value is ready to use and safe for concurrent use.
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
// Any string comes back byte for byte: NUL characters are stored as
// \u0000, and a string that is not valid UTF-8 (JSON strings are Unicode)
// as an object holding its bytes in base64, {"_pgstore_b64": "..."}. Keys
// must be valid UTF-8.
// Values that JSON cannot represent (channels, functions, complex numbers,
// NaN, infinities, cycles) make Encode fail with an error naming the key.
//
// In Express mode the store writes back the original JSON text of every
// value the application did not change, so that what Node stored survives
// a Go save byte for byte: lone surrogates, -0, integers beyond 2^53 and
// the like.
type JSONCodec struct {
	// ReadGobRows makes Decode read rows GobCodec wrote too, for moving a
	// table from GobCodec without logging anyone out: their values come
	// back as gob decodes them (keep the gob.Register calls), and the next
	// write stores them as JSON. A row is GobCodec's when its one member
	// besides the store's own is "gob", holding base64. So that no session
	// can be mistaken for one, Encode then refuses a session whose one value
	// is a string under "gob" (it could carry a gob stream a user chose).
	// Turn it off once the old rows have been written again or have
	// expired. It cannot be combined with Config.ExpressSecrets.
	ReadGobRows bool
}

// Encode implements Codec.
func (c JSONCodec) Encode(values map[any]any) ([]byte, error) {
	if _, ok := values[gobMember].(string); ok && len(values) == 1 && c.ReadGobRows {
		return nil, fmt.Errorf("%w: session key %q: with ReadGobRows, a session whose one value is a string under %q would read as a GobCodec row", ErrEncode, gobMember, gobMember)
	}
	obj := make(map[string]any, len(values))
	for k, v := range values {
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("%w: session key %#v (%T): JSONCodec keys must be strings", ErrEncode, k, k)
		}
		if err := checkString(ks); err != nil {
			return nil, fmt.Errorf("%w: session key %q: %s", ErrEncode, ks, err)
		}
		jv, err := jsonValue(v, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: session value %q: %s", ErrEncode, ks, err)
		}
		obj[ks] = jv
	}
	b, err := marshal(obj) // encoding/json writes map members sorted by key
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return b, nil
}

// Decode implements Codec. With ReadGobRows it also reads rows GobCodec
// wrote.
func (c JSONCodec) Decode(data []byte, values map[any]any) error {
	obj, err := decodeObject(data)
	if err != nil {
		return err
	}
	if stream, ok := gobRow(obj); ok && c.ReadGobRows {
		return decodeGob(stream, obj, values)
	}
	for k, v := range obj {
		values[k] = v
	}
	return nil
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// jsonValue checks that x can be stored and returns what encoding/json
// should write for it: x itself, or a copy of its containers in which
// floats are json.Numbers that keep a fraction, so that they decode as
// float64 again rather than int. depth counts the containers around x.
func jsonValue(x any, depth int) (any, error) {
	switch v := x.(type) { // the common types, without reflection
	case nil, bool, int, int64, int32, uint, uint64, uint32:
		return x, nil
	case string:
		return jsonString(v), nil
	case float64:
		return jsonFloat(v, 64)
	}
	v := reflect.ValueOf(x)
	t := v.Type()
	if t.Implements(jsonMarshaler) || t.Implements(textMarshaler) {
		if t.Kind() == reflect.Pointer && v.IsNil() {
			return nil, nil
		}
		return marshalRaw(x)
	}
	switch v.Kind() {
	case reflect.String:
		return jsonString(v.String()), nil
	case reflect.Bool:
		return v.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint(), nil
	case reflect.Float32, reflect.Float64:
		return jsonFloat(v.Float(), t.Bits())
	case reflect.Pointer:
		if v.IsNil() {
			return nil, nil
		}
		return jsonValue(v.Elem().Interface(), depth)
	case reflect.Struct:
		return marshalRaw(x)
	case reflect.Slice, reflect.Array, reflect.Map:
		if v.Kind() != reflect.Array && v.IsNil() {
			return nil, nil
		}
		if v.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return marshalRaw(x) // base64, as encoding/json writes []byte
		}
		if depth >= maxDepth {
			return nil, fmt.Errorf("nested more than %d levels (a cycle?)", maxDepth)
		}
		if v.Kind() != reflect.Map {
			arr := make([]any, v.Len())
			for i := range arr {
				e, err := jsonValue(v.Index(i).Interface(), depth+1)
				if err != nil {
					return nil, at(err, strconv.Itoa(i))
				}
				arr[i] = e
			}
			return arr, nil
		}
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key type %s is not a string", t.Key())
		}
		if v.Len() == 1 && v.MapKeys()[0].String() == rawStringKey {
			// It would read back as the string it seems to hold.
			return nil, fmt.Errorf("a map whose one key is %q is reserved for strings that are not UTF-8", rawStringKey)
		}
		obj := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			k := it.Key().String()
			if err := checkString(k); err != nil {
				return nil, at(err, strconv.Quote(k))
			}
			e, err := jsonValue(it.Value().Interface(), depth+1)
			if err != nil {
				return nil, at(err, strconv.Quote(k))
			}
			obj[k] = e
		}
		return obj, nil
	}
	return nil, fmt.Errorf("type %s has no JSON form", t)
}

// valueError says where inside a value encoding failed. Its path is
// built while the recursion unwinds, innermost step first, and formatted
// once: a cycle fails thousands of levels down.
type valueError struct {
	path []string
	err  error
}

func (e *valueError) Error() string {
	steps := slices.Clone(e.path)
	slices.Reverse(steps)
	if len(steps) > 6 {
		steps = append(steps[:3:3], fmt.Sprintf("…%d levels…", len(steps)-5), steps[len(steps)-2], steps[len(steps)-1])
	}
	return "at [" + strings.Join(steps, "][") + "]: " + e.err.Error()
}

func (e *valueError) Unwrap() error { return e.err }

// at records that err happened at step (an index or a quoted key).
func at(err error, step string) error {
	ve, ok := err.(*valueError)
	if !ok {
		ve = &valueError{err: err}
	}
	ve.path = append(ve.path, step)
	return ve
}

// jsonFloat writes f as encoding/json would, but with a fraction when it
// is integral (2.0, not 2).
func jsonFloat(f float64, bits int) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%v has no JSON form", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, bits)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return json.Number(s), nil
}

// rawStringKey is the one member of the object that stands for a string
// that is not valid UTF-8: {"_pgstore_b64": "<its bytes in base64>"}.
// JSON strings are Unicode, and encoding/json would replace the invalid
// bytes.
const rawStringKey = "_pgstore_b64"

// jsonString is what encoding/json should write for s: s itself when it
// is valid UTF-8, else the object that keeps its bytes.
func jsonString(s string) any {
	if utf8.ValidString(s) {
		return s
	}
	return map[string]any{rawStringKey: base64.StdEncoding.EncodeToString([]byte(s))}
}

// rawString returns the string an object written by jsonString stands
// for.
func rawString(obj map[string]any) (string, bool) {
	if len(obj) != 1 {
		return "", false
	}
	text, ok := obj[rawStringKey].(string)
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil || utf8.Valid(b) {
		return "", false // not one jsonString writes
	}
	return string(b), true
}

// checkString refuses invalid UTF-8 where a string cannot be replaced by
// an object: in keys.
func checkString(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("string is not valid UTF-8")
	}
	return nil
}

// marshal is json.Marshal without HTML escaping, as JSON.stringify writes.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// marshalRaw encodes a value with a JSON form of its own (time.Time,
// structs, []byte).
func marshalRaw(v any) (json.RawMessage, error) {
	return marshal(v)
}

// decodeObject decodes a JSON object with encoding/json, integral numbers
// as int.
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// Into an interface, not a map: encoding/json then builds the map
	// without reflection, at half the cost.
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrCorrupt)
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrCorrupt)
	}
	if _, err := numbers(obj); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return obj, nil
}

// decodeValue decodes one JSON value as decodeObject decodes members.
func decodeValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v)
}

// numbers replaces, in place, the json.Numbers in a decoded value: an int
// when the number is written without fraction or exponent and fits, else a
// float64. Numbers beyond float64 are errors, as encoding/json makes them.
// It also turns the objects that stand for strings that are not valid
// UTF-8 (jsonString) back into those strings.
func numbers(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		if !strings.ContainsAny(string(v), ".eE") {
			if n, err := strconv.Atoi(string(v)); err == nil {
				return n, nil
			}
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", v, err)
		}
		return f, nil
	case map[string]any:
		if s, ok := rawString(v); ok {
			return s, nil
		}
		for k, e := range v {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			v[k] = n
		}
	case []any:
		for i, e := range v {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			v[i] = n
		}
	}
	return v, nil
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

// gobMember is the sess member that holds the gob stream.
const gobMember = "gob"

// Encode implements Codec.
func (GobCodec) Encode(values map[any]any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err) // gob's errors say "gob:"
	}
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(buf.Len())+10)
	out = append(out, `{"`+gobMember+`":"`...)
	out = base64.StdEncoding.AppendEncode(out, buf.Bytes())
	out = append(out, `"}`...)
	return out, nil
}

// Decode implements Codec. Members other than the gob stream (the store's
// own) go into values as JSONCodec decodes them.
//
// It also reads rows JSONCodec wrote, so that switching to GobCodec logs
// no one out: their values come back as JSONCodec returns them, and the
// next write stores them with gob. (A JSONCodec session whose only value
// is a base64 string under the key "gob" reads as a gob stream.)
func (GobCodec) Decode(data []byte, values map[any]any) error {
	obj, err := decodeObject(data)
	if err != nil {
		return err
	}
	if stream, ok := gobRow(obj); ok {
		return decodeGob(stream, obj, values)
	}
	if _, ok := obj[gobMember].(string); ok {
		return fmt.Errorf(`%w: the "gob" member is not base64`, ErrCorrupt)
	}
	// A row JSONCodec wrote. Its containers come back as []any and
	// map[string]any, which gob writes only once registered.
	registerJSONTypes()
	for k, v := range obj {
		values[k] = v
	}
	return nil
}

// gobRow returns the gob stream of a row GobCodec wrote: its one member
// besides the store's own is "gob", a base64 string.
func gobRow(obj map[string]any) ([]byte, bool) {
	text, ok := obj[gobMember].(string)
	if !ok {
		return nil, false
	}
	for k := range obj {
		if k != gobMember && k != metaKey && k != cookieKey {
			return nil, false
		}
	}
	stream, err := base64.StdEncoding.DecodeString(text)
	return stream, err == nil
}

// decodeGob puts into values the gob-encoded values of stream and the
// other members of obj, the row it came from.
func decodeGob(stream []byte, obj map[string]any, values map[any]any) error {
	m := make(map[any]any)
	if err := gob.NewDecoder(bytes.NewReader(stream)).Decode(&m); err != nil {
		return fmt.Errorf("%w: gob stream (are its types registered with gob.Register?): %w", ErrCorrupt, err)
	}
	delete(obj, gobMember)
	for k, v := range m {
		values[k] = v
	}
	for k, v := range obj {
		values[k] = v
	}
	return nil
}

var registerOnce sync.Once

// registerJSONTypes registers with gob the containers JSONCodec decodes
// to. A program that registered them under other names keeps its own.
func registerJSONTypes() {
	registerOnce.Do(func() {
		for _, v := range []any{[]any{}, map[string]any{}} {
			func() {
				defer func() { _ = recover() }() // registered already, under another name
				gob.Register(v)
			}()
		}
	})
}
