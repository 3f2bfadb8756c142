//go:build fault

package faulttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/routing"
)

// clusterPort is the first AMQP port of the test cluster: apart from
// scripts/cluster.sh's default (5681), so that a cluster a user runs for
// trying failover is left alone.
const clusterPort = 5781

// cluster is the three-node cluster of scripts/cluster.sh, started once
// for the package's cluster tests and stopped by TestMain.
type cluster struct {
	dir    string
	script string
}

var (
	clusterOnce sync.Once
	theCluster  *cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theCluster != nil {
		if out, err := theCluster.run("stop"); err != nil {
			fmt.Fprintf(os.Stderr, "faulttest: stopping the cluster: %v\n%s", err, out)
		}
	}
	os.Exit(code)
}

// sharedCluster starts the cluster on first use; every test that takes a
// node down brings it back before it ends (restore), so the next finds
// three nodes.
func sharedCluster(t *testing.T) *cluster {
	t.Helper()
	clusterOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir, err := os.MkdirTemp("", "warren-cluster-")
		if err != nil {
			clusterErr = err
			return
		}
		c := &cluster{dir: dir, script: filepath.Join(filepath.Dir(file), "..", "..", "scripts", "cluster.sh")}
		start := time.Now()
		if out, err := c.run("start"); err != nil {
			clusterErr = fmt.Errorf("scripts/cluster.sh start: %v\n%s", err, out)
			_, _ = c.run("stop")
			return
		}
		theCluster = c
		fmt.Fprintf(os.Stderr, "faulttest: three-node cluster up in %v\n", time.Since(start).Round(time.Second))
	})
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return theCluster
}

func (c *cluster) run(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{c.script}, args...)...)
	cmd.Env = append(os.Environ(), "WARREN_CLUSTER_DIR="+c.dir, "WARREN_CLUSTER_PORT="+strconv.Itoa(clusterPort))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *cluster) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatalf("scripts/cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// urls lists the nodes from first on, so that clients start there.
func (c *cluster) urls(first int) string {
	var us []string
	for i := range 3 {
		n := (first-1+i)%3 + 1
		us = append(us, fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", clusterPort+n-1))
	}
	return strings.Join(us, ",")
}

// leader returns the number of the node that leads quorum queue q, asked of
// node ask.
func (c *cluster) leader(t *testing.T, ask int, q string) int {
	t.Helper()
	out := c.must(t, "ctl", strconv.Itoa(ask), "list_queues", "name", "leader", "--formatter", "json", "--quiet")
	var rows []struct{ Name, Leader string }
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &rows); err != nil {
		t.Fatalf("list_queues: %v\n%s", err, out)
	}
	for _, r := range rows {
		if r.Name == q {
			for n := 1; n <= 3; n++ {
				if r.Leader == fmt.Sprintf("warren-c%d@localhost", n) {
					return n
				}
			}
		}
	}
	t.Fatalf("no leader for %s in\n%s", q, out)
	return 0
}

// restore starts node n again (after stop_app or kill -9) and waits until
// the cluster runs three nodes.
func (c *cluster) restore(t *testing.T, n int) {
	t.Helper()
	c.must(t, "restart", strconv.Itoa(n))
	c.must(t, "ctl", "1", "await_online_nodes", "3", "--timeout", "120")
}

// partition cuts node n off from the other two (scripts/cluster.sh
// partition) and returns the heal, which waits until the cluster runs three
// nodes again; if the test has not healed by its end, cleanup does.
func (c *cluster) partition(t *testing.T, n int) (heal func()) {
	t.Helper()
	c.must(t, "partition", strconv.Itoa(n))
	var once sync.Once
	heal = func() { once.Do(func() { c.must(t, "heal", strconv.Itoa(n)) }) }
	t.Cleanup(heal)
	return heal
}

// awaitPaused waits until node n has stopped RabbitMQ, as pause_minority
// has a node do once it sees no majority.
func (c *cluster) awaitPaused(n int, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		out, err := c.run("ctl", strconv.Itoa(n), "eval", "rabbit:is_running().")
		if err == nil && strings.TrimSpace(out) == "false" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d still runs RabbitMQ %v after it was cut off: %v %s", n, timeout, err, out)
		}
	}
}

// clusterScenario sets up 3000 tasks at 200/s through a quorum work queue
// on the cluster, producer and worker given every node, starting with
// producerNode and workerNode, with one task in 10 delayed and one in 7
// failing its first run, so that the delay levels carry messages through
// the faults too.
func clusterScenario(t *testing.T, c *cluster, producerNode, workerNode int, faults ...func(q string)) *scenario {
	t.Helper()
	b := brokertest.New(t) // names only: the queue lives on the cluster
	q := b.Queue("cluster")
	s := &scenario{t: t, b: b, n: 3000, producerURL: c.urls(producerNode), workerURL: c.urls(workerNode),
		handlerDelay: 500 * time.Microsecond, rate: 200,
		queue:      routing.Queue{Name: q, Quorum: true},
		delayEvery: 10, failEvery: 7}
	for _, f := range faults {
		s.faults = append(s.faults, func() { f(q) })
	}
	return s
}

// The node that producer and worker are connected to stops (stop_app):
// both move to the next node of their list, the quorum queues elect new
// leaders, and no task is lost.
func TestFaultClusterConnectedNodeStops(t *testing.T) {
	c := sharedCluster(t)
	r := clusterScenario(t, c, 1, 1, func(string) { c.must(t, "ctl", "1", "stop_app") }).run()
	c.restore(t, 1)
	checkReport(t, "cluster: connected node stopped", r)
}

// The node leading the work queue is killed with SIGKILL: no clean close,
// the followers elect a new leader, and no task is lost.
func TestFaultClusterLeaderKilled(t *testing.T) {
	c := sharedCluster(t)
	var killed int
	r := clusterScenario(t, c, 1, 1, func(q string) {
		killed = c.leader(t, 2, q)
		t.Logf("killing node %d, the leader of %s", killed, q)
		c.must(t, "kill", strconv.Itoa(killed))
	}).run()
	c.restore(t, killed)
	checkReport(t, "cluster: queue leader killed -9", r)
}

// A node other than the clients' stops and starts again a few seconds
// later while tasks flow: it rejoins and catches up, and no task is lost.
func TestFaultClusterNodeRestarts(t *testing.T) {
	c := sharedCluster(t)
	r := clusterScenario(t, c, 1, 1, func(string) {
		c.must(t, "ctl", "2", "stop_app")
		time.Sleep(3 * time.Second)
		c.restore(t, 2)
	}).run()
	checkReport(t, "cluster: node 2 stopped and started", r)
}

// One node is cut off from the other two while tasks flow, producer on node
// 1 and worker on node 2: once with the producer's node cut, once with the
// worker's. The cut is silent, as when a network drops packets: the nodes
// notice when net_ticktime (10 s on the test cluster) passes without a
// tick, and until then the clients on the cut node get no confirms and no
// deliveries. Then pause_minority stops RabbitMQ on the cut node, which
// closes their connections, and they move to the next node. The node stays
// cut 3 s more while the other two carry on, then the partition heals and
// the node starts RabbitMQ again and rejoins, with tasks still flowing
// (8000 of them, so that the feed outlasts the cut), and no task is lost.
func TestFaultClusterPartition(t *testing.T) {
	c := sharedCluster(t)
	for _, tc := range []struct {
		name string
		cut  int
	}{
		{"producer's node", 1},
		{"worker's node", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			healed := make(chan struct{})
			s := clusterScenario(t, c, 1, 2,
				func(string) {
					heal := c.partition(t, tc.cut)
					cut := time.Now()
					go func() {
						defer close(healed)
						if err := c.awaitPaused(tc.cut, time.Minute); err != nil {
							t.Error(err)
							return
						}
						t.Logf("node %d paused %v after the cut", tc.cut, time.Since(cut).Round(100*time.Millisecond))
						time.Sleep(3 * time.Second) // the other two run on their own
						healing := time.Now()
						heal()
						t.Logf("node %d healed and back in the cluster in %v", tc.cut, time.Since(healing).Round(100*time.Millisecond))
					}()
				},
				// Only waits for the heal, so that the second recovery
				// counts from it.
				func(string) { <-healed })
			s.n = 8000
			checkReport(t, fmt.Sprintf("cluster: node %d (the %s) partitioned off and healed", tc.cut, tc.name), s.run())
		})
	}
}
