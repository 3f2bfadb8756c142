package broker

import (
	"strings"
	"testing"

	"github.com/warrenq/warren/conn"
)

func TestNewKeepsPasswordsOutOfURLErrors(t *testing.T) {
	for _, u := range []string{
		"amqp://user:s3cr%zzet@host/",
		"http://user:s3cret@host/",
		"amqp://user:s3cret@host:notaport/",
	} {
		_, err := New(Config{Conn: conn.Config{URL: u}})
		if err == nil {
			t.Errorf("New(%q) accepted a bad URL", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cr") {
			t.Errorf("New(%q) error leaks the password: %v", u, err)
		}
	}
}
