package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// EnvPrefix starts every configuration variable.
const EnvPrefix = "CAIRN_"

// key is one settable key of Config, found by walking its toml tags.
type key struct {
	name  string // as written in the file: "raft.persistence.strategy"
	env   string // CAIRN_RAFT_PERSISTENCE_STRATEGY
	index []int  // field path from Config, for reflect.Value.FieldByIndex
	typ   reflect.Type
}

var (
	tomlUnmarshaler = reflect.TypeFor[toml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// isLeaf reports whether a value of t is one key (not a table).
func isLeaf(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(tomlUnmarshaler) || p.Implements(textUnmarshaler) || t.Kind() != reflect.Struct
}

var keysOnce = sync.OnceValue(func() []key {
	ks := walk(reflect.TypeFor[Config](), "", nil)
	seen := map[string]string{}
	for _, k := range ks {
		if other, ok := seen[k.env]; ok {
			panic(fmt.Sprintf("config: keys %s and %s have the same variable %s", other, k.name, k.env))
		}
		seen[k.env] = k.name
	}
	return ks
})

// keys lists every key of Config in file order: a table's own keys, then
// its subtables.
func keys() []key { return keysOnce() }

func walk(t reflect.Type, prefix string, index []int) []key {
	var leaves, tables []key
	for i := range t.NumField() {
		f := t.Field(i)
		idx := append(slices.Clone(index), i)
		tag := f.Tag.Get("toml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			leaves = append(leaves, walk(f.Type, prefix, idx)...) // flattened, as the decoder does
			continue
		}
		if name == "" {
			panic(fmt.Sprintf("config: field %s.%s has no toml tag", t, f.Name))
		}
		full := prefix + name
		if !isLeaf(f.Type) {
			tables = append(tables, walk(f.Type, full+".", idx)...)
			continue
		}
		leaves = append(leaves, key{
			name:  full,
			env:   EnvName(full),
			index: idx,
			typ:   f.Type,
		})
	}
	return append(leaves, tables...)
}

// EnvName returns the environment variable of a key: EnvPrefix and the key
// in upper case, dots replaced by underscores (cluster.data_dir is
// CAIRN_CLUSTER_DATA_DIR).
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys returns the name of every key, in the order of the file.
func Keys() []string {
	var out []string
	for _, k := range keys() {
		out = append(out, k.name)
	}
	return out
}

func lookupKey(name string) (key, bool) {
	for _, k := range keys() {
		if k.name == name {
			return k, true
		}
	}
	return key{}, false
}

// Get returns the value of a key as Set takes it (a list comma-separated);
// ok is false if there is no such key.
func (c Config) Get(name string) (value string, ok bool) {
	k, ok := lookupKey(name)
	if !ok {
		return "", false
	}
	v := reflect.ValueOf(c).FieldByIndex(k.index)
	switch v.Kind() {
	case reflect.String:
		return v.String(), true
	case reflect.Slice:
		return strings.Join(v.Interface().([]string), ","), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), true
	}
	return formatValue(v), true
}

// Set sets one key from its text, as a flag or a variable gives it (see the
// package doc for lists, integers and flush_policy). An unknown key or a
// value of the wrong type is an *Error; c is unchanged then. Set checks the
// type only: Validate checks the value.
func (c *Config) Set(name, value string) error {
	k, ok := lookupKey(name)
	if !ok {
		return &Error{Key: name, Value: strconv.Quote(value), Reason: "unknown key" + suggest(name, Keys())}
	}
	return c.set(k, value, "")
}

// set parses value into key k of c; source names where value came from.
func (c *Config) set(k key, value, source string) error {
	v := reflect.New(k.typ).Elem()
	if err := parseInto(v, k.name, value); err != nil {
		q := strconv.Quote(value)
		return &Error{Key: k.name, Value: q, Source: source, Reason: stripKey(k.name, q, err).Error()}
	}
	reflect.ValueOf(c).Elem().FieldByIndex(k.index).Set(v)
	return nil
}

// parseInto sets v, a zero value of a key's type, from text. The error says
// what is allowed.
func parseInto(v reflect.Value, name, text string) error {
	p := v.Addr().Interface()
	if u, ok := p.(toml.Unmarshaler); ok {
		return decodeValue(u, text)
	}
	if u, ok := p.(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(text))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return errors.New(allowed(v.Type()))
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(digits(text), 10, v.Type().Bits())
		if err != nil {
			return errors.New(allowed(v.Type()))
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(digits(text), 10, v.Type().Bits())
		if err != nil {
			return errors.New(allowed(v.Type()))
		}
		v.SetUint(n)
	case reflect.Slice:
		var list []string
		for s := range strings.SplitSeq(text, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		panic(fmt.Sprintf("config: key %s: unsupported type %s", name, v.Type()))
	}
	return nil
}

// allowed says what a value of a key of type t must be.
func allowed(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "must be a string"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("must be an integer from 1 to %d", int64(math.MaxInt64)>>(64-t.Bits()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("must be an integer from 1 to %d", uint64(math.MaxUint64)>>(64-t.Bits()))
	case reflect.Slice:
		return "must be a list of strings"
	}
	return "has the wrong type"
}

// digits removes underscores between digits, as TOML allows in integers.
func digits(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
		return s // left for ParseInt to refuse
	}
	return strings.ReplaceAll(s, "_", "")
}

// decodeValue decodes text as the TOML value of a key into u. Text that
// does not open a TOML string, table or array (Immediate) is read as a string.
func decodeValue(u toml.Unmarshaler, text string) error {
	t := reflect.TypeOf(u).Elem()
	holder := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: t, Tag: `toml:"v"`}}))
	text = strings.TrimSpace(text)
	if text == "" || !strings.ContainsRune(`{"'[`, rune(text[0])) {
		text = strconv.Quote(text)
	}
	if _, err := toml.Decode("v = "+text, holder.Interface()); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return errors.New(perr.Message)
		}
		return err
	}
	reflect.ValueOf(u).Elem().Set(holder.Elem().Field(0))
	return nil
}

// stripKey drops the leading "key = value: " from err, which the engine's
// types write themselves, leaving what is allowed. value is quoted as %q
// quotes it.
func stripKey(name, value string, err error) error {
	if rest, ok := strings.CutPrefix(err.Error(), name+" = "+value+": "); ok {
		return errors.New(rest)
	}
	return err
}

// ApplyEnv sets the keys named by the CAIRN_ variables of environ (as
// os.Environ returns it: "NAME=value"). A CAIRN_ variable that names no key,
// or a value of the wrong type, is an error naming the variable; then c is
// unchanged. Other variables are ignored.
func (c *Config) ApplyEnv(environ []string) error {
	byEnv := map[string]key{}
	var names []string
	for _, k := range keys() {
		byEnv[k.env] = k
		names = append(names, k.env)
	}
	next := *c
	var errs []error
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		k, ok := byEnv[name]
		if !ok {
			errs = append(errs, &invalidError{msg: fmt.Sprintf("%s: unknown variable: it names no configuration key%s",
				name, suggest(name, names))})
			continue
		}
		if err := next.set(k, value, name); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return joinErrors(errs)
	}
	*c = next
	return nil
}

// suggest returns " (did you mean X?)" for the candidate closest to name, if
// one is close.
func suggest(name string, candidates []string) string {
	best, bestD := "", len(name)/3+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
