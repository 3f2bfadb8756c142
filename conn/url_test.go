package conn

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	const unparsable = "(unparsable broker URL)"
	tests := []struct {
		name   string
		url    string
		want   string
		secret string // must not appear in the result
	}{
		{name: "amqp", url: "amqp://guest:secret@127.0.0.1:5672/", want: "amqp://guest:xxxxx@127.0.0.1:5672/", secret: "secret"},
		{name: "amqps", url: "amqps://warren:s3cr3t@rabbit.example.com:5671/", want: "amqps://warren:xxxxx@rabbit.example.com:5671/", secret: "s3cr3t"},
		{name: "no path", url: "amqp://guest:secret@rabbit", want: "amqp://guest:xxxxx@rabbit", secret: "secret"},
		{name: "vhost", url: "amqp://guest:secret@rabbit:5672/media", want: "amqp://guest:xxxxx@rabbit:5672/media", secret: "secret"},
		{name: "escaped vhost", url: "amqp://guest:secret@rabbit:5672/%2F", want: "amqp://guest:xxxxx@rabbit:5672/%2F", secret: "secret"},
		{
			name: "vhost and query", url: "amqps://u:secret@rabbit:5671/prod?heartbeat=10&connection_timeout=5000",
			want: "amqps://u:xxxxx@rabbit:5671/prod?heartbeat=10&connection_timeout=5000", secret: "secret",
		},
		{name: "IPv6 host", url: "amqp://u:secret@[::1]:5672/", want: "amqp://u:xxxxx@[::1]:5672/", secret: "secret"},
		{name: "escaped password", url: "amqp://u:p%40ss%2Fw0rd@rabbit/", want: "amqp://u:xxxxx@rabbit/", secret: "w0rd"},
		{name: "unescaped @ in password", url: "amqp://u:p@ssw0rd@rabbit/", want: "amqp://u:xxxxx@rabbit/", secret: "ssw0rd"},
		{name: "empty password", url: "amqp://guest:@rabbit/", want: "amqp://guest:xxxxx@rabbit/"},
		{name: "user without password", url: "amqp://guest@rabbit:5672/", want: "amqp://guest@rabbit:5672/"},
		{name: "no user", url: "amqp://rabbit:5672/media", want: "amqp://rabbit:5672/media"},
		{name: "empty", url: "", want: ""},
		{
			name: "several nodes", url: "amqp://u:secret@n1:5672/,amqps://u:secret2@n2:5671/, amqp://n3/",
			want: "amqp://u:xxxxx@n1:5672/,amqps://u:xxxxx@n2:5671/,amqp://n3/", secret: "secret",
		},
		{name: "comma in a node's password", url: "amqp://u:a,b@n1/,amqp://u:a,b@n2/", want: "amqp://u:xxxxx@n1/,amqp://u:xxxxx@n2/", secret: "a,b"},
		{name: "one bad node of two", url: "amqp://u:secret@n1/,amqp://u:sec#ret@n2/", want: "amqp://u:xxxxx@n1/," + unparsable, secret: "sec"},
		{name: "space in password", url: "amqp://u:my secret@rabbit/", want: unparsable, secret: "secret"},
		{name: "bad port", url: "amqp://u:secret@rabbit:amqp/", want: unparsable, secret: "secret"},
		{name: "# in password", url: "amqp://u:sec#ret@rabbit/", want: unparsable, secret: "sec"},
		{name: "control character", url: "amqp://u:secret@rabbit/\x7f", want: unparsable, secret: "secret"},
		{name: "missing scheme colon", url: "://u:secret@rabbit/", want: unparsable, secret: "secret"},
		{
			name: "no scheme", url: "guest:secret@rabbit:5672", secret: "secret",
		},
		{
			name: "opaque amqp URL", url: "amqp:guest:secret@rabbit:5672", secret: "secret",
		},
		{
			name: "unescaped / in password", url: "amqp://u:1234/5678@rabbit/", secret: "1234",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Redact(tc.url)
			if tc.secret != "" && strings.Contains(got, tc.secret) {
				t.Errorf("Redact(%q) = %q, leaks %q", tc.url, got, tc.secret)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.url, got, tc.want)
			}
			if tc.want == "" && tc.url == "" && got != "" {
				t.Errorf("Redact(\"\") = %q", got)
			}
		})
	}
}

func TestSplitURLs(t *testing.T) {
	tests := []struct {
		list string
		want []string
	}{
		{"", nil},
		{"amqp://h/", []string{"amqp://h/"}},
		{"amqp://a/,amqp://b/,amqps://c:5671/", []string{"amqp://a/", "amqp://b/", "amqps://c:5671/"}},
		{" amqp://a/ , AMQP://b/ ", []string{"amqp://a/", "AMQP://b/"}},
		{"amqp://u:p,w@a/,amqp://u:p,w@b/", []string{"amqp://u:p,w@a/", "amqp://u:p,w@b/"}},
		{"amqp://a/,,amqp://b/,", []string{"amqp://a/", "amqp://b/"}},
		{",", nil},
	}
	for _, tc := range tests {
		got := SplitURLs(tc.list)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("SplitURLs(%q) = %q, want %q", tc.list, got, tc.want)
		}
	}
}

// A URL that cannot work is refused before any dial, with what to fix,
// and never with its password.
func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		says string // "" for a good URL
	}{
		{"amqp://guest:secret@127.0.0.1:5672/", ""},
		{"amqps://u:secret@rabbit.example.com/prod", ""},
		{"amqp://rabbit", ""},
		{"", "is empty"},
		{"amqp//guest:secret@127.0.0.1:5672/", "does not start with amqp://"},
		{"guest:secret@127.0.0.1:5672", "does not start with amqp://"},
		{"127.0.0.1:5672", "does not start with amqp://"},
		{"http://guest:secret@127.0.0.1:15672/", `the scheme is "http"`},
		{"amqp:/127.0.0.1", "has no host"},
		{"amqp://:5672/", "has no host"},
		{"amqp://guest:secret@127.0.0.1:notaport/", "is malformed"},
		{"amqp://u:p%zzsecret@h/", "is malformed"},
		{"amqp://u:sec ret@h/", "is malformed"},
		{"amqp://u:secret@n1/,amqps://u:secret@n2:5671/", ""},
		{" , ", "is empty"},
		{"amqp://u:secret@n1/,amqp://u:secret@:5672/", "node 2 of 2: broker URL amqp://u:xxxxx@:5672/ has no host"},
		{"amqp://u:secret@n1/,amqp://u:sec#ret@n2/", "node 2 of 2: the broker URL is malformed"},
	} {
		err := CheckURL(tc.url)
		switch {
		case tc.says == "" && err != nil:
			t.Errorf("CheckURL(%q) = %v, want nil", tc.url, err)
		case tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)):
			t.Errorf("CheckURL(%q) = %v, want an error saying %q", tc.url, err, tc.says)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("CheckURL(%q) shows the password: %v", tc.url, err)
		}
	}
}
