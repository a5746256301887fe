package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A broker's section as another package declares it: the tags work on any
// type, wherever it sits (behind an interface, in a map, in a list).
type testAuth struct {
	User         string `yaml:"user"`
	Password     string `yaml:"password" secret:"true"`
	PasswordFile string `yaml:"passwordFile" file:"true"`
	CAFile       string `yaml:"caFile" file:"true"`
}

type testSection struct {
	URL  string     `yaml:"url" secret:"url"`
	Auth testAuth   `yaml:"auth"`
	More []testAuth `yaml:"more"`
}

type testRoot struct {
	Sections map[string]any         `yaml:"brokers"`
	ByValue  map[string]testSection `yaml:"byValue"`
	One      any                    `yaml:"one"`
}

func TestWalkerFindsTagsBehindInterfacesAndMaps(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("from-file\n"), 0o600)
	missing := filepath.Join(dir, "missing-ca.pem")

	root := testRoot{
		Sections: map[string]any{"kafka": &testSection{Auth: testAuth{User: "u", PasswordFile: pw}}},
		ByValue:  map[string]testSection{"nats": {More: []testAuth{{PasswordFile: pw}, {Password: "inline", PasswordFile: pw}}}},
		One:      testSection{URL: "amqp://u:urlpw@h:5672/", Auth: testAuth{Password: "p", CAFile: missing}},
	}
	v := reflect.ValueOf(&root).Elem()
	problems := readTwinsIn(v)
	if got := root.Sections["kafka"].(*testSection).Auth.Password; got != "from-file" {
		t.Errorf("behind an interface in a map: password %q", got)
	}
	if got := root.ByValue["nats"].More[0].Password; got != "from-file" {
		t.Errorf("in a list in a map of values: password %q", got)
	}
	if len(problems) != 1 || problems[0] != "byValue.nats.more[1].password and byValue.nats.more[1].passwordFile: both set; give the value in one of them" {
		t.Errorf("problems: %q", problems)
	}

	var files []string
	checkFilesIn(v, func(path, format string, args ...any) {
		files = append(files, path+": "+strings.ReplaceAll(format, "%s", args[0].(string)))
	})
	if want := "one.auth.caFile: cannot read " + missing + ": no such file or directory"; len(files) != 1 || files[0] != want {
		t.Errorf("file checks: %q, want [%q]", files, want)
	}

	redactIn(v)
	one := root.One.(testSection)
	if one.Auth.Password != "<redacted>" || one.URL != "amqp://u:xxxxx@h:5672/" || one.Auth.User != "" {
		t.Errorf("redacted: %+v", one)
	}
	if got := root.Sections["kafka"].(*testSection); got.Auth.Password != "<redacted>" || got.Auth.User != "u" {
		t.Errorf("redacted behind an interface: %+v", got.Auth)
	}
}
