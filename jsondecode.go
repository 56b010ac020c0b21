package pgstore

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON reader for the load path. It produces what encoding/json
// would decode into interface values, except that integral numbers become
// int, and it does so with a fraction of the allocations: Get runs it on
// every request.

// maxDecodeDepth bounds nesting while reading, as encoding/json does.
const maxDecodeDepth = 10000

type jsonReader struct {
	data  []byte
	pos   int
	depth int
}

var errNotObject = errors.New("pgstore: decode sess: not a JSON object")

func (d *jsonReader) fail(what string) error {
	return fmt.Errorf("pgstore: decode sess: %s at offset %d", what, d.pos)
}

func (d *jsonReader) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// readObject reads a whole document that must be one JSON object, calling
// set for each member (the last of duplicate names wins, as it would in a
// map).
func readObject(data []byte, set func(key string, v any)) error {
	return readObjectWith(data, func(d *jsonReader, key string) error {
		v, err := d.value()
		if err != nil {
			return err
		}
		set(key, v)
		return nil
	})
}

// readObjectWith reads a whole document that must be one JSON object,
// calling member for each member name with d positioned on its value,
// which member must read.
func readObjectWith(data []byte, member func(d *jsonReader, key string) error) error {
	d := jsonReader{data: data}
	d.skipSpace()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		if _, err := d.value(); err == nil {
			return errNotObject
		}
		return d.fail("expected a JSON object")
	}
	if err := d.members(member); err != nil {
		return err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return d.fail("data after the JSON object")
	}
	return nil
}

func (d *jsonReader) value() (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, d.fail("unexpected end of JSON")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.string()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	default:
		return nil, d.fail(fmt.Sprintf("invalid character %q", c))
	}
}

func (d *jsonReader) literal(word string) error {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return d.fail("invalid literal")
	}
	d.pos += len(word)
	return nil
}

func (d *jsonReader) enter() error {
	d.depth++
	if d.depth > maxDecodeDepth {
		return d.fail("nested too deeply")
	}
	return nil
}

func (d *jsonReader) object() (any, error) {
	obj := make(map[string]any)
	err := d.members(func(d *jsonReader, k string) error {
		v, err := d.value()
		if err != nil {
			return err
		}
		obj[k] = v
		return nil
	})
	return obj, err
}

// members reads an object, d.pos on its '{', calling member for each
// member name with d positioned before its value, which member must read.
func (d *jsonReader) members(member func(d *jsonReader, key string) error) error {
	if err := d.enter(); err != nil {
		return err
	}
	d.pos++ // '{'
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return d.fail("expected a member name")
		}
		key, err := d.key()
		if err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return d.fail("expected ':'")
		}
		d.pos++
		if err := member(d, key); err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return d.fail("unexpected end of JSON")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			return nil
		default:
			return d.fail("expected ',' or '}'")
		}
	}
}

func (d *jsonReader) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // '['
	arr := []any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return arr, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.fail("unexpected end of JSON")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			return arr, nil
		default:
			return nil, d.fail("expected ',' or ']'")
		}
	}
}

// number reads a JSON number, checking its grammar: an int when it is
// integral and fits, else a float64.
func (d *jsonReader) number() (any, error) {
	n, isInt, f, err := d.scanNumber()
	switch {
	case err != nil:
		return nil, err
	case isInt:
		return n, nil
	default:
		return f, nil
	}
}

// scanNumber reads a JSON number without boxing it: n when it is integral
// and fits in an int (isInt), else f.
func (d *jsonReader) scanNumber() (n int, isInt bool, f float64, err error) {
	start := d.pos
	integral := true
	if d.data[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(d.data) && d.data[d.pos] == '0':
		d.pos++
	case d.pos < len(d.data) && '1' <= d.data[d.pos] && d.data[d.pos] <= '9':
		for d.pos < len(d.data) && '0' <= d.data[d.pos] && d.data[d.pos] <= '9' {
			d.pos++
		}
	default:
		return 0, false, 0, d.fail("invalid number")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		integral = false
		d.pos++
		if !d.digits() {
			return 0, false, 0, d.fail("invalid number")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		integral = false
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if !d.digits() {
			return 0, false, 0, d.fail("invalid number")
		}
	}
	text := d.data[start:d.pos]
	if integral {
		if n, err := strconv.Atoi(string(text)); err == nil {
			return n, true, 0, nil
		}
	}
	f, err = strconv.ParseFloat(string(text), 64)
	if errors.Is(err, strconv.ErrRange) {
		// encoding/json refuses numbers beyond float64; so do we.
		return 0, false, 0, d.fail("number out of range")
	}
	if err != nil {
		return 0, false, 0, d.fail("invalid number")
	}
	return 0, false, f, nil
}

func (d *jsonReader) digits() bool {
	start := d.pos
	for d.pos < len(d.data) && '0' <= d.data[d.pos] && d.data[d.pos] <= '9' {
		d.pos++
	}
	return d.pos > start
}

// key reads a member name. The store's own member names come back as
// constants, so reading them allocates nothing.
func (d *jsonReader) key() (string, error) {
	for _, k := range [...]string{metaKey, cookieKey} {
		end := d.pos + 1 + len(k)
		if end < len(d.data) && d.data[end] == '"' && string(d.data[d.pos+1:end]) == k {
			d.pos = end + 1
			return k, nil
		}
	}
	return d.string()
}

// string reads a JSON string. Invalid UTF-8 and lone surrogates become
// U+FFFD, as encoding/json makes them.
func (d *jsonReader) string() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	// Fast path: no escapes, valid UTF-8, no control characters.
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c == '"' {
			s := d.data[start:d.pos]
			d.pos++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return d.slowString(start)
		}
		if c == '\\' || c < 0x20 {
			return d.slowString(start)
		}
		d.pos++
	}
	return "", d.fail("unterminated string")
}

func (d *jsonReader) slowString(start int) (string, error) {
	d.pos = start
	buf := make([]byte, 0, 32)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c < 0x20:
			return "", d.fail("control character in string")
		case c == '\\':
			if d.pos+1 >= len(d.data) {
				return "", d.fail("unterminated string")
			}
			esc := d.data[d.pos+1]
			d.pos += 2
			switch esc {
			case '"', '\\', '/':
				buf = append(buf, esc)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", d.fail("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
						save := d.pos
						d.pos += 2
						if v, ok := d.hex4(); ok {
							r2 = v
						} else {
							d.pos = save
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							buf = utf8.AppendRune(buf, dec)
							continue
						}
						d.pos = save
					}
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", d.fail("invalid escape")
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.pos++
		default:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, d.data[d.pos:d.pos+size]...)
			}
			d.pos += size
		}
	}
	return "", d.fail("unterminated string")
}

func (d *jsonReader) hex4() (rune, bool) {
	if len(d.data)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}
