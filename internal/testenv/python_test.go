package testenv

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
)

// KombuURL must give Kombu the vhost amqp091-go (and so warren) uses.
func TestKombuURL(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want, vhost string }{
		{"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:guest@127.0.0.1:5672//", "/"},
		{"amqp://guest:guest@127.0.0.1:5672", "amqp://guest:guest@127.0.0.1:5672//", "/"},
		{"amqp://guest:guest@127.0.0.1:5672/%2F", "amqp://guest:guest@127.0.0.1:5672//", "/"},
		{"amqp://u:p@h:5672/staging", "amqp://u:p@h:5672/staging", "staging"},
		{"amqp://u:p@h/a%2Fb", "amqp://u:p@h/a%2Fb", "a/b"},
		{"amqps://u:p%40ss@h:5671/v?heartbeat=5", "amqps://u:p%40ss@h:5671/v", "v"},
	}
	for _, c := range cases {
		got, err := KombuURL(c.in)
		if err != nil || got != c.want {
			t.Errorf("KombuURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// Ask Kombu itself which vhost it reads from each converted URL.
	RequirePython(t, "kombu", "--with-kombu")
	ctx, cancel := context.WithTimeout(context.Background(), ScriptTimeout)
	defer cancel()
	var urls []string
	for _, c := range cases {
		urls = append(urls, c.want)
	}
	script := "import json, sys\nfrom kombu import Connection\nprint(json.dumps([Connection(u).virtual_host for u in sys.argv[1:]]))"
	out, err := exec.CommandContext(ctx, Python, append([]string{"-c", script}, urls...)...).Output()
	if err != nil {
		t.Fatalf("asking Kombu for vhosts: %v", err)
	}
	var vhosts []string
	if err := json.Unmarshal(out, &vhosts); err != nil || len(vhosts) != len(cases) {
		t.Fatalf("Kombu printed %q (%v)", out, err)
	}
	for i, c := range cases {
		if vhosts[i] != c.vhost {
			t.Errorf("Kombu reads %q as vhost %q, want %q", c.want, vhosts[i], c.vhost)
		}
	}
}
