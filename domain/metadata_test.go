package domain

import (
	"strings"
	"testing"
)

func TestDefaultMetadataIsValid(t *testing.T) {
	if errs := DefaultMetadata().Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
}

func TestMetadataValidateReportsEverything(t *testing.T) {
	errs := Metadata{}.Validate()
	for _, f := range []string{"version", "lifecycleStage", "domain", "system", "service", "team"} {
		if !hasErrorFor(errs, f) {
			t.Errorf("no error names metadata.%s in %v", f, errs)
		}
	}
	if len(errs) != 6 {
		t.Errorf("got %d errors, want 6 (optional fields are optional): %v", len(errs), errs)
	}

	m := DefaultMetadata()
	m.LifecycleStage, m.DataSensitivity, m.Team = "prod", "top-secret", " "
	m.Tags = []string{"ok", ""}
	errs = m.Validate()
	want := []string{
		`metadata.lifecycleStage: must be one of production, qa, test, development, staging, demo, got "prod"`,
		"metadata.team: required",
		"metadata.tags[1]: must not be empty",
		`metadata.dataSensitivity: must be one of public, sensitive, proprietary, secret, got "top-secret"`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %v, want %v", errs, want)
	}
	for i := range want {
		if errs[i].Error() != want[i] {
			t.Errorf("error %d\n got: %s\nwant: %s", i, errs[i], want[i])
		}
	}
}

func hasErrorFor(errs []error, field string) bool {
	for _, e := range errs {
		if strings.HasPrefix(e.Error(), "metadata."+field+":") {
			return true
		}
	}
	return false
}
