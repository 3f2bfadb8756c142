package routing

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/retry"
)

// topicMatch is RabbitMQ's topic matching: "*" is one word, "#" zero or
// more. Simulating it lets the delay topology be checked without a broker.
func topicMatch(pattern, key string) bool {
	return matchWords(strings.Split(pattern, "."), strings.Split(key, "."))
}

func matchWords(p, k []string) bool {
	if len(p) == 0 {
		return len(k) == 0
	}
	switch p[0] {
	case "#":
		for i := 0; i <= len(k); i++ {
			if matchWords(p[1:], k[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(k) > 0 && matchWords(p[1:], k[1:])
	}
	return len(k) > 0 && p[0] == k[0] && matchWords(p[1:], k[1:])
}

// travel follows a delayed message through DelayTopology as the broker
// would, returning the time spent in level queues and the work queues it
// reaches.
func travel(t *testing.T, topo Topology, workQueues []string, key string) (time.Duration, []string) {
	t.Helper()
	ttl := map[string]time.Duration{}
	dlx := map[string]string{}
	for _, q := range topo.Queues {
		if q.Name == DelayUnroutable {
			continue
		}
		ttl[q.Name] = time.Duration(q.Args["x-message-ttl"].(int64)) * time.Millisecond
		dlx[q.Name] = q.Args["x-dead-letter-exchange"].(string)
	}
	var waited time.Duration
	exchange := DelayEntry
	for hops := 0; exchange != DelayDeliver; hops++ {
		if hops > 3*DelayLevels {
			t.Fatalf("key %s loops in the delay topology", key)
		}
		var toQueue, toExchange []string
		for _, b := range topo.Bindings {
			if b.Exchange == exchange && topicMatch(b.Key, key) {
				toQueue = append(toQueue, b.Queue)
			}
		}
		for _, b := range topo.ExchangeBindings {
			if b.Source == exchange && topicMatch(b.Key, key) {
				toExchange = append(toExchange, b.Destination)
			}
		}
		if len(toQueue)+len(toExchange) != 1 {
			t.Fatalf("key %s at %s routes to queues %v and exchanges %v; want exactly one", key, exchange, toQueue, toExchange)
		}
		if len(toQueue) == 1 {
			waited += ttl[toQueue[0]]
			exchange = dlx[toQueue[0]]
		} else {
			exchange = toExchange[0]
		}
	}
	var reached []string
	for _, q := range workQueues {
		if topicMatch(DelayBinding(q).Key, key) {
			reached = append(reached, q)
		}
	}
	return waited, reached
}

func TestDelayTopologyDeliversAfterTheDelay(t *testing.T) {
	topo := DelayTopology()
	if err := topo.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(topo.Queues) != DelayLevels+1 || len(topo.Exchanges) != DelayLevels+2 {
		t.Fatalf("%d queues, %d exchanges; want %d and %d", len(topo.Queues), len(topo.Exchanges), DelayLevels+1, DelayLevels+2)
	}
	queues := []string{"video", "other.video", "video.hd", "a.b.c"}
	delays := []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 30 * time.Second, time.Hour, 2 * time.Hour,
		30 * 24 * time.Hour, MaxDelay, 1500 * time.Millisecond}
	for _, q := range queues {
		for _, d := range delays {
			key := DelayKey(d, q)
			waited, reached := travel(t, topo, queues, key)
			want := (d + time.Second - 1).Truncate(time.Second)
			if waited != want {
				t.Errorf("DelayKey(%v, %q): waited %v, want %v", d, q, waited, want)
			}
			if len(reached) != 1 || reached[0] != q {
				t.Errorf("DelayKey(%v, %q) reached %v, want only %q", d, q, reached, q)
			}
		}
	}
}

func TestDelayKeyBounds(t *testing.T) {
	tests := []struct {
		in, want time.Duration
	}{
		{0, time.Second},
		{-time.Hour, time.Second},
		{time.Millisecond, time.Second},
		{1001 * time.Millisecond, 2 * time.Second},
		{100 * 24 * time.Hour, MaxDelay},
	}
	for _, tt := range tests {
		got, q, err := ParseDelayKey(DelayKey(tt.in, "q.x"))
		if err != nil || got != tt.want || q != "q.x" {
			t.Errorf("round trip of %v: %v %q %v; want %v", tt.in, got, q, err, tt.want)
		}
	}
	longest := strings.Repeat("q", MaxQueueName)
	if k := DelayKey(MaxDelay, longest); len(k) != 255 {
		t.Errorf("delay key for a queue of MaxQueueName bytes is %d bytes, want exactly 255 (an AMQP short string)", len(k))
	}
	if n := len(DeadQueue(longest)); n > 255 {
		t.Errorf("dead-letter queue of a queue of MaxQueueName bytes is %d bytes, over 255", n)
	}
	if MaxDelay < 30*24*time.Hour {
		t.Errorf("MaxDelay %v is under 30 days", MaxDelay)
	}
	for _, bad := range []string{"", "video", "1.0.video", strings.Repeat("2.", DelayLevels) + "q", strings.Repeat("0.", DelayLevels)} {
		if _, _, err := ParseDelayKey(bad); err == nil {
			t.Errorf("ParseDelayKey(%q) accepted a bad key", bad)
		}
	}
}

func TestTopicMatchSimulator(t *testing.T) {
	// The simulator itself must agree with RabbitMQ's documented rules.
	cases := []struct {
		p, k string
		want bool
	}{
		{"*.video", "x.video", true},
		{"*.video", "x.other.video", false},
		{"#.video", "x.other.video", true},
		{"1.#", "1", true},
		{"1.#", "1.0.q", true},
		{"*.1.#", "0.1.q", true},
		{"*.1.#", "1.0.q", false},
	}
	for _, c := range cases {
		if got := topicMatch(c.p, c.k); got != c.want {
			t.Errorf("topicMatch(%q, %q) = %v", c.p, c.k, got)
		}
	}
}

func TestMaxDelayMatchesRetry(t *testing.T) {
	// retry may not import routing, so it keeps its own copy of the bound.
	if retry.MaxDelay != MaxDelay {
		t.Errorf("retry.MaxDelay %v != routing.MaxDelay %v", retry.MaxDelay, MaxDelay)
	}
}
