package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load returns Default with the TOML file at path over it. Keys the file
// leaves out keep their defaults. A key Config does not have, or a value of
// the wrong type, is an error naming the key; every one found is reported.
// Load does not Validate.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return parse(path, string(b))
}

// parse decodes text, read from the file called name, over Default.
func parse(name, text string) (Config, error) {
	c := Default()
	md, err := toml.Decode(text, &c)
	if err != nil {
		return Config{}, fileError(name, text, err)
	}
	var raw map[string]any
	if _, err := toml.Decode(text, &raw); err != nil {
		return Config{}, fileError(name, text, err)
	}
	var errs []error
	for _, k := range keys() {
		// The decoder wraps a negative number around into an unsigned key.
		if n, ok := lookupRaw(raw, k.name).(int64); ok && n < 0 && k.typ.Kind() >= reflect.Uint && k.typ.Kind() <= reflect.Uint64 {
			errs = append(errs, &Error{Key: k.name, Value: strconv.FormatInt(n, 10), Source: name, Reason: allowed(k.typ)})
		}
	}
	undecoded := md.Undecoded()
	for _, k := range undecoded {
		k := k.String()
		inner := slices.ContainsFunc(undecoded, func(o toml.Key) bool { return strings.HasPrefix(o.String(), k+".") })
		if inner {
			continue // a table of unknown keys: they are reported
		}
		errs = append(errs, &Error{Key: k, Source: name, Reason: "unknown key" + suggest(k, Keys())})
	}
	if len(errs) > 0 {
		return Config{}, joinErrors(errs)
	}
	if len(c.Cluster.Join) == 0 {
		c.Cluster.Join = nil // join = [] is the default
	}
	return c, nil
}

// decodeErr matches the decoder's errors that are not ParseErrors.
var decodeErr = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "(.*)"\): (.*)$`)

// fileError turns the decoder's error into one that names the file, line,
// key, value and what is allowed.
func fileError(name, text string, err error) error {
	var (
		line         int
		lastKey, msg string
		perr         toml.ParseError
	)
	if errors.As(err, &perr) {
		line, lastKey, msg = perr.Position.Line, perr.LastKey, perr.Message
	} else if m := decodeErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		lastKey, msg = m[2], m[3]
	} else {
		return &invalidError{msg: fmt.Sprintf("%s: %v", name, err), err: err}
	}
	source := name
	if line > 0 {
		source = fmt.Sprintf("%s:%d", name, line)
	}
	k, ok := lookupKey(lastKey)
	if !ok {
		if lastKey != "" {
			msg = lastKey + ": " + msg
		}
		return &invalidError{msg: source + ": " + msg, err: err}
	}
	var raw map[string]any
	value := ""
	if _, rerr := toml.Decode(text, &raw); rerr == nil {
		value = formatRaw(lookupRaw(raw, k.name))
	}
	reason := stripKey(k.name, value, errors.New(msg)).Error()
	if strings.HasPrefix(msg, "incompatible types") || strings.Contains(msg, "out of range") {
		reason = allowed(k.typ)
	}
	return &Error{Key: k.name, Value: value, Source: source, Reason: reason}
}

func lookupRaw(raw map[string]any, key string) any {
	var v any = raw
	for part := range strings.SplitSeq(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

// formatRaw renders a decoded TOML value as it is written in the file.
func formatRaw(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return strconv.Quote(v)
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = formatRaw(e)
		}
		return "[" + strings.Join(s, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		s := make([]string, len(keys))
		for i, k := range keys {
			s[i] = k + " = " + formatRaw(v[k])
		}
		return "{ " + strings.Join(s, ", ") + " }"
	}
	return fmt.Sprint(v)
}
