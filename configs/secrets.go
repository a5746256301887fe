package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/emitd/emitd/configs/redact"
)

// Struct tags that mark secrets and files, on any section type (also those
// that live with a broker's package and sit in the Config behind an
// interface or in a map): the walkers below find them by reflection.
//
//	secret:"true"  a secret string (password, token): `config show` prints
//	               it as <redacted> when set.
//	secret:"url"   a URL or DSN that may carry credentials (a libpq URL or
//	               key=value string, a comma-separated list of URLs):
//	               `config show` masks the password and keeps the rest.
//	file:"true"    a path (CA, certificate, key, creds, password file):
//	               Validate checks that it can be read, when set.
//
// A secret field X with a sibling XFile (yaml key "<x>File", tagged
// file:"true") is a file twin: when XFile is set, Parse reads that file
// (a trailing newline trimmed) into X; setting both is an error.
const (
	TagSecret = "secret"
	TagFile   = "file"
)

// envName is the NAME of a ${NAME} reference.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandEnv replaces ${NAME} in every scalar value of the document with the
// environment variable NAME ("" when it is set but empty); $$ is a literal
// $, and a $ before anything else stays as it is (URLs and passwords hold
// $). An unset variable is a problem naming the field and the variable,
// never a value. It returns, per line, the original text of the scalars it
// changed, so that the decoder's messages (which quote values) can quote
// the reference instead of what it expanded to.
func expandEnv(n *yaml.Node, path string, problems *Problems, changed map[int][]string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			expandEnv(c, p, problems, changed)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], joinPath(path, n.Content[i].Value), problems, changed)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		v, err := expand(n.Value)
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("%s: %v (line %d)", orDocument(path), err, n.Line))
			return
		}
		if v == n.Value {
			return
		}
		changed[n.Line] = append(changed[n.Line], n.Value)
		n.Value = v
		// A plain scalar's type comes from its text: ${PORT} read as a
		// string, its value 4233 is an int. Quoted or explicitly tagged
		// scalars keep their tag.
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle|yaml.TaggedStyle) == 0 {
			n.Tag = ""
		}
	}
	// Aliases are left alone: the node they point to is expanded where it
	// is defined.
}

func orDocument(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}

// expand does the ${NAME} and $$ replacements of one value.
func expand(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 || !envName.MatchString(s[i+2:i+2+end]) {
				return "", errors.New("${ starts no ${NAME} reference (NAME: letters, digits and _, not starting with a digit); write $${ for a literal ${")
			}
			name := s[i+2 : i+2+end]
			v, ok := os.LookupEnv(name)
			if !ok {
				return "", fmt.Errorf("environment variable %s is not set (referenced as ${%s})", name, name)
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// lineRef matches the decoder's "line N: " prefix.
var lineRef = regexp.MustCompile("^line (\\d+): ")

// backticked is a value the decoder quotes in its messages.
var backticked = regexp.MustCompile("`[^`]*`")

// unexpand puts the ${NAME} text back in a decoder message about a line
// whose values were expanded: "cannot unmarshal !!str `hunter2` into int"
// must not show an expanded password.
func unexpand(msg string, changed map[int][]string) string {
	m := lineRef.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	orig, ok := changed[line]
	if !ok {
		return msg
	}
	return backticked.ReplaceAllLiteralString(msg, "`"+strings.Join(orig, " ")+"`")
}

// visit is called for every exported field the walk meets: parent is the
// struct that holds it (addressable), parentPath that struct's field path.
type visit func(parentPath string, parent reflect.Value, sf reflect.StructField, fv reflect.Value)

// walk visits every struct field reachable from v: through pointers,
// slices, arrays, maps and interfaces, with field paths made of yaml names
// (map keys for maps). Map values and values behind an interface are not
// addressable: each is copied, walked, and stored back, so that a visit may
// set fields anywhere.
func walk(v reflect.Value, path string, fn visit) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walk(v.Elem(), path, fn)
		}
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		e := v.Elem()
		if e.Kind() == reflect.Pointer {
			walk(e, path, fn)
			return
		}
		if !holdsStruct(e.Type()) {
			return
		}
		c := reflect.New(e.Type()).Elem()
		c.Set(e)
		walk(c, path, fn)
		if v.CanSet() {
			v.Set(c)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			name, inline, ok := yamlName(sf)
			if !ok {
				continue
			}
			fv := v.Field(i)
			if inline {
				walk(fv, path, fn)
				continue
			}
			fn(path, v, sf, fv)
			walk(fv, joinPath(path, name), fn)
		}
	case reflect.Slice, reflect.Array:
		if !holdsStruct(v.Type().Elem()) {
			return
		}
		for i := range v.Len() {
			walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Map:
		if !holdsStruct(v.Type().Elem()) {
			return
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			e := v.MapIndex(k)
			c := reflect.New(e.Type()).Elem()
			c.Set(e)
			walk(c, joinPath(path, fmt.Sprint(k)), fn)
			v.SetMapIndex(k, c)
		}
	}
}

// holdsStruct says whether a value of t may lead to a struct: the walk
// skips plain data (strings, numbers, []string, map[string][]string).
func holdsStruct(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Interface
}

// yamlName is the key of sf in YAML, as yaml.v3 names it; ok is false for
// fields YAML does not see.
func yamlName(sf reflect.StructField) (name string, inline, ok bool) {
	if !sf.IsExported() {
		return "", false, false
	}
	tag := sf.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "-" {
		return "", false, false
	}
	if slices.Contains(strings.Split(opts, ","), "inline") {
		return "", true, true
	}
	if name == "" {
		name = strings.ToLower(sf.Name)
	}
	return name, false, true
}

// twin returns the XFile sibling of the secret field sf in parent.
func twin(parent reflect.Value, sf reflect.StructField) (reflect.StructField, reflect.Value, bool) {
	if sf.Tag.Get(TagSecret) == "" || sf.Type.Kind() != reflect.String {
		return reflect.StructField{}, reflect.Value{}, false
	}
	tf, ok := parent.Type().FieldByName(sf.Name + "File")
	if !ok || tf.Tag.Get(TagFile) != "true" || tf.Type.Kind() != reflect.String || len(tf.Index) != 1 {
		return reflect.StructField{}, reflect.Value{}, false
	}
	return tf, parent.FieldByIndex(tf.Index), true
}

// readTwins reads every file twin that is set into its secret field.
func readTwins(c *Config) Problems { return readTwinsIn(reflect.ValueOf(c).Elem()) }

// readTwinsIn is readTwins of any (addressable) value.
func readTwinsIn(v reflect.Value) Problems {
	var p Problems
	walk(v, "", func(parentPath string, parent reflect.Value, sf reflect.StructField, fv reflect.Value) {
		tf, tv, ok := twin(parent, sf)
		if !ok || tv.String() == "" {
			return
		}
		name, _, _ := yamlName(sf)
		tname, _, _ := yamlName(tf)
		path, tpath := joinPath(parentPath, name), joinPath(parentPath, tname)
		if fv.String() != "" {
			p = append(p, fmt.Sprintf("%s and %s: both set; give the value in one of them", path, tpath))
			return
		}
		b, err := os.ReadFile(tv.String())
		if err != nil {
			p = append(p, tpath+": "+cannotRead(tv.String(), err))
			return
		}
		fv.SetString(strings.TrimRight(string(b), "\r\n"))
	})
	return p
}

// checkFiles reports every file:"true" field whose file cannot be read.
func (c *Config) checkFiles(add func(string, string, ...any)) {
	checkFilesIn(reflect.ValueOf(c).Elem(), add)
}

// checkFilesIn is checkFiles of any (addressable) value.
func checkFilesIn(v reflect.Value, add func(string, string, ...any)) {
	walk(v, "", func(parentPath string, _ reflect.Value, sf reflect.StructField, fv reflect.Value) {
		if sf.Tag.Get(TagFile) != "true" || fv.Kind() != reflect.String || fv.String() == "" {
			return
		}
		name, _, _ := yamlName(sf)
		if err := readable(fv.String()); err != nil {
			add(joinPath(parentPath, name), "%s", cannotRead(fv.String(), err))
		}
	})
}

// readable opens path and reads a byte of it: a directory opens, and only
// the read tells.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func cannotRead(file string, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is in the message already
	}
	return fmt.Sprintf("cannot read %s: %v", file, err)
}

// Redacted returns a deep copy of c with every secret field redacted:
// secret:"true" values as <redacted>, secret:"url" values with their
// passwords masked. c is left as it is.
func Redacted(c *Config) *Config {
	cp := deepCopy(reflect.ValueOf(c)).Interface().(*Config)
	redactIn(reflect.ValueOf(cp).Elem())
	return cp
}

// redactIn redacts the secret fields of any (addressable) value in place.
func redactIn(v reflect.Value) {
	walk(v, "", func(_ string, _ reflect.Value, sf reflect.StructField, fv reflect.Value) {
		kind := sf.Tag.Get(TagSecret)
		if kind == "" {
			return
		}
		red := func(s string) string {
			switch {
			case s == "":
				return ""
			case kind == "url":
				return redact.URL(s)
			default:
				return redact.Redacted
			}
		}
		switch {
		case fv.Kind() == reflect.String:
			fv.SetString(red(fv.String()))
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			for i := range fv.Len() {
				fv.Index(i).SetString(red(fv.Index(i).String()))
			}
		case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.String && !fv.IsNil():
			fv.Elem().SetString(red(fv.Elem().String()))
		}
	})
}

// deepCopy copies v so that no pointer, slice, map or interface of the copy
// shares memory with v (unexported fields are copied as they are).
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(deepCopy(v.Elem()))
		return c
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type()).Elem()
		c.Set(deepCopy(v.Elem()))
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				c.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return c
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Array:
		c := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for _, k := range v.MapKeys() {
			c.SetMapIndex(k, deepCopy(v.MapIndex(k)))
		}
		return c
	}
	return v
}

// ShowYAML is the effective configuration c as YAML (what `emitd config
// show` prints), every secret redacted and settings left unset omitted.
func ShowYAML(c *Config) ([]byte, error) {
	r := Redacted(c)
	if r.HTTP.Listen == nil {
		l := DefaultHTTPListen // the effective value, not "left out"
		r.HTTP.Listen = &l
	}
	// A *string set to "" says something ("" is off for http.listen):
	// those are kept; a plain "" string is the same as left out.
	keep := map[string]bool{}
	walk(reflect.ValueOf(r).Elem(), "", func(parentPath string, _ reflect.Value, sf reflect.StructField, fv reflect.Value) {
		if fv.Kind() == reflect.Pointer && !fv.IsNil() {
			name, _, _ := yamlName(sf)
			keep[joinPath(parentPath, name)] = true
		}
	})
	var n yaml.Node
	if err := n.Encode(r); err != nil {
		return nil, err
	}
	dropUnset(&n, "", keep)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2) // as the shipped files
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// dropUnset removes the mapping entries whose value is null or "" (unless
// keep names its path): the sections and settings a configuration leaves
// out and that have no default.
func dropUnset(n *yaml.Node, path string, keep map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(path, n.Content[i].Value)
			v := n.Content[i+1]
			if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Tag == "!!str" && v.Value == "" && !keep[p]) {
				continue
			}
			dropUnset(v, p, keep)
			kept = append(kept, n.Content[i], v)
		}
		n.Content = kept
	case yaml.SequenceNode:
		for i, c := range n.Content {
			dropUnset(c, fmt.Sprintf("%s[%d]", path, i), keep)
		}
	case yaml.DocumentNode:
		for _, c := range n.Content {
			dropUnset(c, path, keep)
		}
	}
}
