package routing_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

func TestShardsNamesAndRoute(t *testing.T) {
	s := routing.Shards{Queue: "bulk", Count: 4, Exchange: "jobs"}
	if got, want := s.Names(), []string{"bulk.0", "bulk.1", "bulk.2", "bulk.3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Names = %v, want %v", got, want)
	}
	for _, id := range []string{"", "a", "0190a6e0-0000-7000-8000-000000000000", strings.Repeat("z", 255)} {
		i := s.Shard(id)
		if i < 0 || i >= s.Count {
			t.Fatalf("Shard(%q) = %d, out of [0,%d)", id, i, s.Count)
		}
		if s.Shard(id) != i {
			t.Fatalf("Shard(%q) not stable", id)
		}
		if r := s.Route(id); r != (routing.Route{Exchange: "jobs", Key: s.Name(i)}) {
			t.Fatalf("Route(%q) = %+v, want shard %d on jobs", id, r, i)
		}
	}
	if got := (routing.Shards{Queue: "bad", Count: -1}).Names(); got != nil {
		t.Fatalf("negative count: Names = %v, want none", got)
	}
	if got := (routing.Shards{Queue: "one", Count: 1}).Shard("anything"); got != 0 {
		t.Fatalf("a single shard: Shard = %d, want 0", got)
	}
}

// warren's ids are version 7 UUIDs, which start with the time: the hash
// must spread ids made in the same millisecond, and in sequence, evenly.
func TestShardsSpreadIDsEvenly(t *testing.T) {
	for _, count := range []int{2, 3, 4, 8} {
		s := routing.Shards{Queue: "q", Count: count}
		const n = 20000
		per := make([]int, count)
		now := time.Now()
		for i := range n {
			per[s.Shard(task.NewID(now.Add(time.Duration(i)*time.Microsecond)))]++
		}
		want := n / count
		for i, got := range per {
			if got < want*9/10 || got > want*11/10 {
				t.Errorf("count %d: shard %d got %d of %d ids, want %d ±10%%: %v", count, i, got, n, want, per)
			}
		}
	}
}

func TestShardsTopology(t *testing.T) {
	s := routing.Shards{Queue: "bulk", Count: 2, Exchange: "jobs", Args: routing.ClassicV2(), DefaultTask: "import"}
	got := s.Topology()
	want := routing.Topology{
		Exchanges: []routing.Exchange{{Name: "jobs", Kind: routing.Direct}},
		Queues: []routing.Queue{
			{Name: "bulk.0", Args: map[string]any{"x-queue-version": 2}, DefaultTask: "import"},
			{Name: "bulk.1", Args: map[string]any{"x-queue-version": 2}, DefaultTask: "import"},
		},
		Bindings: []routing.Binding{{Exchange: "jobs", Queue: "bulk.0", Key: "bulk.0"}, {Exchange: "jobs", Queue: "bulk.1", Key: "bulk.1"}},
		Shards:   []routing.Shards{s},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Topology =\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}

	// On the default exchange there is nothing to declare but the queues.
	def := routing.Shards{Queue: "bulk", Count: 2}.Topology()
	if len(def.Exchanges) != 0 || len(def.Bindings) != 0 || len(def.Queues) != 2 || def.Queues[0].Arguments() != nil {
		t.Fatalf("default-exchange shards: %+v", def)
	}
	if r := (routing.Shards{Queue: "bulk", Count: 2}).Route("x"); r != routing.ToQueue(r.Key) {
		t.Fatalf("default-exchange route %+v is not straight to a queue", r)
	}

	// Quorum shards are quorum work queues, each dead-lettering into its
	// own .dead queue after its delivery limit.
	q := routing.Shards{Queue: "bulk", Count: 2, Quorum: true, DeliveryLimit: 5}.Topology()
	for i, sq := range q.Queues {
		args := sq.Arguments()
		if args["x-queue-type"] != "quorum" || fmt.Sprint(args["x-delivery-limit"]) != "5" || args["x-dead-letter-routing-key"] != fmt.Sprintf("bulk.%d.dead", i) {
			t.Errorf("quorum shard %s: arguments %v", sq.Name, args)
		}
	}

	// Priority shards are classic priority queues, every one.
	p := routing.Shards{Queue: "bulk", Count: 2, MaxPriority: 4}.Topology()
	for _, sq := range p.Queues {
		if args := sq.Arguments(); len(args) != 1 || args[routing.MaxPriorityArg] != int64(4) {
			t.Errorf("priority shard %s: arguments %v", sq.Name, args)
		}
	}
}

func TestShardsValidate(t *testing.T) {
	ok := routing.Shards{Queue: "bulk", Count: 4}
	for name, tc := range map[string]struct {
		topo routing.Topology
		want string
	}{
		"valid":          {ok.Topology(), ""},
		"no name":        {routing.Topology{Shards: []routing.Shards{{Count: 2}}}, "without a queue name"},
		"zero count":     {routing.Topology{Shards: []routing.Shards{{Queue: "b"}}}, "count 0"},
		"too many":       {routing.Topology{Shards: []routing.Shards{{Queue: "b", Count: routing.MaxShards + 1}}}, "not between"},
		"name too long":  {routing.Shards{Queue: strings.Repeat("q", routing.MaxQueueName-1), Count: 2}.Topology(), "leave no room"},
		"shard missing":  {routing.Topology{Queues: ok.Topology().Queues[:3], Shards: []routing.Shards{ok}}, `shard queue "bulk.3" is not in the topology`},
		"logical queued": {ok.Topology().Merge(routing.Topology{Queues: []routing.Queue{{Name: "bulk"}}}), "has the logical name too"},
		"prio quorum":    {routing.Shards{Queue: "b", Count: 2, Quorum: true, MaxPriority: 3}.Topology(), `queue "b.0": MaxPriority with Quorum`},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.topo.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestTopologyExpand(t *testing.T) {
	topo := routing.Shards{Queue: "bulk", Count: 3}.Topology().
		Merge(routing.Topology{Queues: []routing.Queue{{Name: "video"}}}).
		Merge(routing.Shards{Queue: "bulk", Count: 9}.Topology()) // a repeat: the first counts
	got := topo.Expand([]string{"video", "bulk", "other"})
	want := []string{"video", "bulk.0", "bulk.1", "bulk.2", "other"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Expand = %v, want %v", got, want)
	}
	if len(topo.Shards) != 1 {
		t.Fatalf("Merge kept %d shard groups, want 1", len(topo.Shards))
	}
}

func TestTableShards(t *testing.T) {
	s := routing.Shards{Queue: "bulk", Count: 4, Exchange: "jobs"}
	tbl := routing.NewTable().Add("other", routing.ToQueue("misc")).AddShards("import", s)
	for _, id := range []string{"a", "b", "c"} {
		r, err := tbl.RouteFor("import", id)
		if err != nil || r != s.Route(id) {
			t.Fatalf("RouteFor(import, %q) = %+v, %v; want %+v", id, r, err, s.Route(id))
		}
	}
	if _, err := tbl.Lookup("import"); !errors.Is(err, routing.ErrSharded) {
		t.Fatalf("Lookup of a sharded task = %v, want ErrSharded", err)
	}
	if got, ok := tbl.ShardsFor("import"); !ok || !reflect.DeepEqual(got, s) {
		t.Fatalf("ShardsFor(import) = %+v, %v", got, ok)
	}
	if _, ok := tbl.ShardsFor("other"); ok {
		t.Fatal("ShardsFor(other): a plain route reported as shards")
	}
	if r, err := tbl.RouteFor("other", "a"); err != nil || r != routing.ToQueue("misc") {
		t.Fatalf("RouteFor(other) = %+v, %v", r, err)
	}
	if _, err := tbl.RouteFor("none", "a"); !errors.Is(err, routing.ErrNoRoute) {
		t.Fatalf("RouteFor(none) = %v, want ErrNoRoute", err)
	}
	// A later Add replaces the shards, and a later AddShards a route.
	tbl.Add("import", routing.ToQueue("single"))
	if r, err := tbl.Lookup("import"); err != nil || r != routing.ToQueue("single") {
		t.Fatalf("after Add: %+v, %v", r, err)
	}
	tbl.AddShards("other", s)
	if _, err := tbl.Lookup("other"); !errors.Is(err, routing.ErrSharded) {
		t.Fatalf("after AddShards: Lookup = %v, want ErrSharded", err)
	}
	var zero routing.Table
	if _, err := zero.RouteFor("x", "a"); !errors.Is(err, routing.ErrNoRoute) {
		t.Fatalf("zero table: %v", err)
	}
}
