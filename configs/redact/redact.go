// Package redact keeps secrets out of what emitd prints: `emitd config
// show`, log lines and error messages. It has no dependencies, so that the
// configuration, the adapters and the commands can all use it.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces a password or token inside a URL or DSN. It is what pgx
// itself writes in its messages, so one form appears everywhere.
const Mask = "xxxxx"

// Redacted replaces a whole secret value (a password, a token).
const Redacted = "<redacted>"

// URL returns s with every password (and NATS token) replaced by Mask,
// the rest left readable. s may be a URL (postgres://, amqp://, nats://,
// ...), a comma-separated list of URLs (a NATS cluster), or a libpq
// key=value string. Credentials are redacted in the userinfo, in the query
// (password=, sslpassword=) and in key=value pairs. A URL that does not
// parse is redacted by its shape: everything between :// and the last @.
func URL(s string) string {
	if !strings.Contains(s, "://") {
		return kvPassword.ReplaceAllString(s, "${1}"+Mask)
	}
	parts := listURLs(s)
	for i, p := range parts {
		parts[i] = oneURL(p)
	}
	return strings.Join(parts, ",")
}

// listURLs splits a comma-separated URL list, giving an entry without a
// scheme the first entry's, as nats.go does with its server lists
// ("nats://a:4222, u:pw@b:4222" is two servers, the second one's password
// as secret as the first's).
func listURLs(s string) []string {
	parts := strings.Split(s, ",")
	scheme, _, _ := strings.Cut(strings.TrimSpace(parts[0]), "://")
	for i, p := range parts {
		if t := strings.TrimSpace(p); t != "" && !strings.Contains(t, "://") {
			parts[i] = p[:len(p)-len(strings.TrimLeft(p, " \t"))] + scheme + "://" + t
		}
	}
	return parts
}

// kvPassword matches a libpq key=value password, quoted or not.
var kvPassword = regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)(?:'(?:\\.|[^'\\])*'|[^\s]*)`)

// queryPassword matches a password in a URL's query.
var queryPassword = regexp.MustCompile(`(?i)((?:^|&)(?:ssl)?password=)[^&#]*`)

func oneURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return kvPassword.ReplaceAllString(s, "${1}"+Mask)
	}
	lead := ""
	if t := strings.TrimLeft(scheme, " \t"); len(t) != len(scheme) {
		lead, scheme = scheme[:len(scheme)-len(t)], t
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil || u.Opaque != "" || (u.User == nil && strings.Contains(rest, "@")) {
		// The shape alone: the credentials sit before the last @ (a raw / or
		// ? in a password ends the authority early for net/url, which then
		// sees no userinfo at all: amqp://u:12/x@h parses as host u:12).
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, _, hasPass := strings.Cut(rest[:at], ":")
			if hasPass || tokenScheme(scheme) {
				if hasPass {
					return lead + scheme + "://" + user + ":" + Mask + rest[at:]
				}
				return lead + scheme + "://" + Mask + rest[at:]
			}
		}
		return lead + scheme + "://" + queryPassword.ReplaceAllString(rest, "${1}"+Mask)
	}
	var b strings.Builder
	b.WriteString(lead + scheme + "://")
	if u.User != nil {
		_, hasPass := u.User.Password()
		switch {
		case hasPass:
			b.WriteString(url.User(u.User.Username()).String() + ":" + Mask + "@")
		case tokenScheme(scheme):
			b.WriteString(Mask + "@") // nats://TOKEN@host: the user is the token
		default:
			b.WriteString(u.User.String() + "@")
		}
	}
	u.User = nil
	u.RawQuery = queryPassword.ReplaceAllString(u.RawQuery, "${1}"+Mask)
	// u.String() without the userinfo, minus the scheme we wrote already.
	b.WriteString(strings.TrimPrefix(u.String(), u.Scheme+"://"))
	return b.String()
}

// tokenScheme: NATS reads a userinfo without a password as a token.
func tokenScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "nats", "tls", "ws", "wss":
		return true
	}
	return false
}

// Secrets returns the secret parts of a URL, URL list or key=value DSN as
// URL sees them (passwords, NATS tokens), raw and as they may be escaped,
// for Error to scrub from messages that quote them.
func Secrets(s string) []string {
	var out []string
	add := func(v string) {
		if v == "" {
			return
		}
		out = append(out, v)
		for _, f := range []func(string) string{url.QueryEscape, url.PathEscape, userEscape} {
			if e := f(v); e != "" && e != v {
				out = append(out, e)
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(s, -1) {
		v := strings.TrimPrefix(m[0], m[1])
		add(strings.Trim(v, "'"))
	}
	parts := []string{s}
	if strings.Contains(s, "://") {
		parts = listURLs(s)
	}
	for _, p := range parts {
		scheme, rest, ok := strings.Cut(strings.TrimSpace(p), "://")
		if !ok {
			continue
		}
		if u, err := url.Parse(scheme + "://" + rest); err == nil && u.User != nil {
			if pw, has := u.User.Password(); has {
				add(pw)
			} else if tokenScheme(scheme) {
				add(u.User.Username())
			}
		}
		// The raw text too: a URL that does not parse still quotes it.
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, pw, hasPass := strings.Cut(rest[:at], ":")
			if hasPass {
				add(pw)
			} else if tokenScheme(scheme) {
				add(user)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) }) // longest first
	return slices.Compact(out)
}

func userEscape(s string) string { return url.UserPassword("", s).String()[1:] }

// Error returns err with every secret replaced by Mask in its message;
// Unwrap still returns err, so errors.Is and errors.As see through it.
// Libraries quote what they could not use (net/url quotes a whole URL that
// does not parse), and a message goes to logs: scrubbing the known values
// is the one guarantee that holds whatever the library wrote.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, Mask)
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

// URLError is Error for an error about the URL (or URL list, or DSN) raw:
// the whole raw text is replaced by its redacted form, then each secret in
// it by Mask.
func URLError(err error, raw string) error {
	if err == nil {
		return nil
	}
	if raw != "" && strings.Contains(err.Error(), raw) {
		err = &scrubbed{msg: strings.ReplaceAll(err.Error(), raw, URL(raw)), err: err}
	}
	secrets := Secrets(raw)
	// net/url quotes the bad escape it met, a piece of the password when
	// that is where it was.
	var ee url.EscapeError
	if errors.As(err, &ee) {
		secrets = append(secrets, string(ee))
	}
	return Error(err, secrets...)
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// quoted is a Go-quoted string in a message ("...", escapes included).
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// ParseError is the reason a URL did not parse (the url.Error's inner
// error), with everything net/url quotes in it replaced by Mask: the bad
// escape, the port, the host. Any of those may be a piece of a password,
// and not only the one the escape names: a password holding / ? or # ends
// the user information early, and what follows is read as host and port.
// Unwrap returns the reason, for errors.As.
func ParseError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &scrubbed{msg: quoted.ReplaceAllString(err.Error(), `"`+Mask+`"`), err: err}
}
