package replicated

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// File names are bytes: a POSIX name may hold any byte but NUL and "/", and
// need not be UTF-8. JSON strings are Unicode, and encoding/json replaces
// every invalid byte with U+FFFD, so a name sent as it is would arrive as
// another name. Every name that crosses JSON — requests, views, log entries,
// snapshots — goes through EncodeName and DecodeName:
//
//   - a name that is valid UTF-8 and does not begin with NUL is sent as
//     itself: every name of earlier builds, logs and clients is unchanged;
//   - any other name is sent as NUL (U+0000, written "\u0000" in JSON)
//     followed by the name with each byte that is not part of valid UTF-8,
//     and each "%", written as "%" and two upper-case hexadecimal digits.
//
// No file name holds a NUL byte, so a leading NUL tells the two apart; the
// escaped form is valid UTF-8, so JSON carries it unchanged. A client may
// send a name escaped that it need not (DecodeName reads it all the same).
// docs/architecture.md (File names in JSON) documents it for clients.

// nameEscape marks an escaped name.
const nameEscape = "\x00"

// EncodeName returns the form of the file name s that JSON carries byte for
// byte (see above): s itself when it is valid UTF-8 and does not begin with
// NUL.
func EncodeName(s string) string {
	if plainName(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(nameEscape) + len(s) + 8)
	b.WriteString(nameEscape)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || s[i] == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// ErrBadName is DecodeName's error for an escaped name that EncodeName
// cannot have written.
var ErrBadName = errors.New("malformed escaped file name")

// DecodeName is the inverse of EncodeName: the file name that e stands for.
func DecodeName(e string) (string, error) {
	if !strings.HasPrefix(e, nameEscape) {
		return e, nil
	}
	body := e[len(nameEscape):]
	b := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		if body[i] != '%' {
			b = append(b, body[i])
			continue
		}
		if i+3 > len(body) {
			return "", fmt.Errorf("%w: %q: %% without two hexadecimal digits", ErrBadName, e)
		}
		v, err := strconv.ParseUint(body[i+1:i+3], 16, 8)
		if err != nil || strings.ToUpper(body[i+1:i+3]) != body[i+1:i+3] {
			return "", fmt.Errorf("%w: %q: %q is not %% and two upper-case hexadecimal digits", ErrBadName, e, body[i:i+3])
		}
		b = append(b, byte(v))
		i += 2
	}
	return string(b), nil
}

// decodeNames decodes each of names in place (see DecodeName).
func decodeNames(names ...*string) error {
	for _, p := range names {
		if !strings.HasPrefix(*p, nameEscape) {
			continue
		}
		s, err := DecodeName(*p)
		if err != nil {
			return err
		}
		*p = s
	}
	return nil
}

// plainName reports whether EncodeName leaves s as it is.
func plainName(s string) bool {
	return utf8.ValidString(s) && !strings.HasPrefix(s, nameEscape)
}

// QuoteName is a file name as a line of text shows it (the CLI's tables):
// the name itself when it is valid UTF-8 with no control character (a
// newline would break the line) and does not begin with a double quote;
// else the name in double quotes with Go's escapes (strconv.Quote: \n, \t,
// \\, \", \xff for a byte that is not UTF-8, \u00ad …), so that every name
// takes one line and two names never look alike.
func QuoteName(s string) string {
	if !utf8.ValidString(s) || strings.HasPrefix(s, `"`) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if unicode.IsControl(r) || !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// Text is a message (a reason) made fit for one line of text: its control
// characters and bytes that are not UTF-8 escaped as Go escapes them, the
// rest unchanged.
func Text(s string) string {
	clean := utf8.ValidString(s)
	for _, r := range s {
		if unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// nameList is a list of file names that JSON carries byte for byte: each
// as EncodeName writes it.
type nameList []string

func (l nameList) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("null"), nil
	}
	for _, s := range l {
		if !plainName(s) {
			enc := make([]string, len(l))
			for i, s := range l {
				enc[i] = EncodeName(s)
			}
			return json.Marshal(enc)
		}
	}
	return json.Marshal([]string(l))
}

func (l *nameList) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, (*[]string)(l)); err != nil {
		return err
	}
	for i := range *l {
		if err := decodeNames(&(*l)[i]); err != nil {
			return err
		}
	}
	return nil
}

// nameOf is one file name that JSON carries byte for byte.
type nameOf string

func (n nameOf) MarshalJSON() ([]byte, error) { return json.Marshal(EncodeName(string(n))) }

func (n *nameOf) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	s, err := DecodeName(s)
	*n = nameOf(s)
	return err
}
