package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed embedded.yaml
var embeddedYAML []byte

// EmbeddedName is what Source reports for the built-in configuration.
const EmbeddedName = "(built-in embedded default)"

// Problems is every problem found in a configuration, each naming the
// field's path, so an operator fixes them all in one go.
type Problems []string

func (p Problems) Error() string {
	return "invalid configuration:\n  " + strings.Join(p, "\n  ")
}

// EmbeddedYAML returns the built-in default configuration file.
func EmbeddedYAML() []byte { return bytes.Clone(embeddedYAML) }

// Load reads the file at path, or the built-in default when path is "".
// The error, if any, is a Problems listing everything wrong at once
// (or an I/O error when the file cannot be read).
func Load(path string) (*Config, error) {
	data := embeddedYAML
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read configuration: %w", err)
		}
		data = b
	}
	return Parse(data)
}

// Parse decodes and validates one configuration document.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{"yaml: " + err.Error()}
	}
	if root.Kind == 0 {
		return nil, Problems{"the configuration is empty"}
	}
	var problems Problems
	// ${NAME} is expanded in the document, before decoding, so that every
	// value (a port, a flag) may come from the environment.
	changed := map[int][]string{}
	expandEnv(&root, "", &problems, changed)
	checkKeys(&root, reflect.TypeOf(Config{}), "", &problems)
	var cfg Config
	if err := root.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				problems = append(problems, unexpand(e, changed))
			}
		} else {
			problems = append(problems, "yaml: "+unexpand(err.Error(), changed))
		}
	}
	// The …File twins are read before the defaults: a store.urlFile wins
	// over the EMITD_STORE_URL fallback of an empty store.url.
	problems = append(problems, readTwins(&cfg)...)
	// Validate even when keys were unknown: a misspelt key usually leaves a
	// required field empty, and both lines together tell the whole story.
	cfg.applyDefaults()
	problems = append(problems, cfg.Validate()...)
	problems = dedupe(problems) // a twin's unreadable file is also a file check
	if len(problems) > 0 {
		return nil, problems
	}
	return &cfg, nil
}

func dedupe(p Problems) Problems {
	seen := map[string]bool{}
	return slices.DeleteFunc(p, func(s string) bool {
		dup := seen[s]
		seen[s] = true
		return dup
	})
}

// checkKeys walks the document beside the Go type and reports every mapping
// key that has no field, with its path and line. yaml.v3's KnownFields stops
// at the first one and gives no path.
func checkKeys(n *yaml.Node, t reflect.Type, path string, problems *Problems) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkKeys(c, t, path, problems)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]reflect.Type(nil)
	switch {
	case t == brokersType:
		fields = brokerFields() // brokers: each registered broker's section
	case t.Kind() == reflect.Struct:
		fields = yamlFields(t)
	}
	switch {
	case fields != nil:
		if n.Kind != yaml.MappingNode {
			return // a type mismatch: the decoder reports it
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := joinPath(path, key.Value)
			ft, ok := fields[key.Value]
			if !ok {
				*problems = append(*problems, fmt.Sprintf("%s: unknown field (line %d); known fields here: %s",
					p, key.Line, strings.Join(sortedKeys(fields), ", ")))
				continue
			}
			checkKeys(val, ft, p, problems)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), problems)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	return slices.Sorted(maps.Keys(m))
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
