//go:build fault

package faulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/testenv"
)

// privateNode is a RabbitMQ node that a test starts for itself, with its
// own name, ports, configuration, cookie and data under t.TempDir(), so
// that what the test configures, closes or restarts never touches the
// shared broker on 5672 and the other tests using it.
type privateNode struct {
	Name     string // warren-<prefix>-<hex>@localhost
	Port     int    // plain AMQP listener on 127.0.0.1
	TLSPort  int    // amqps listener on 127.0.0.1; 0 without nodeConfig.tls
	User     string // the node's only user (default_user)
	Password string
	dir      string
	log      string // the node's stdout and stderr
}

// nodeConfig says how a private node differs from a plain one.
type nodeConfig struct {
	prefix         string // of the node name
	user, password string
	// conf holds extra rabbitmq.conf lines (new-style keys).
	conf []string
	// rabbit holds extra settings of the rabbit application as Erlang
	// terms, {key, value}, for keys rabbitmq.conf has no name for
	// (channel_tick_interval); written to advanced.config.
	rabbit []string
	// tls, when set, adds a TLS listener that requires a client
	// certificate signed by its CA (verify_peer, fail_if_no_peer_cert).
	tls *testPKI
}

// rabbitBin finds a RabbitMQ script. The Debian package's /usr/sbin ones
// switch to the rabbitmq user when run as root, who cannot read a test's
// temporary directory; the real scripts are in /usr/lib/rabbitmq/bin. A
// missing one fails the test: these tests must never pass by skipping.
func rabbitBin(t *testing.T, name string) string {
	t.Helper()
	if p := filepath.Join("/usr/lib/rabbitmq/bin", name); fileExists(p) {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: this test starts a RabbitMQ node of its own (scripts/ensure-rabbitmq.sh installs it)", name)
	}
	return p
}

// rabbitBinPath is rabbitBin for cleanup paths, where a missing script was
// already reported at start.
func rabbitBinPath(name string) string {
	if p := filepath.Join("/usr/lib/rabbitmq/bin", name); fileExists(p) {
		return p
	}
	return name
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(testenv.FreeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startTLSNode boots a node whose AMQP clients must use TLS on TLSPort,
// with a client certificate signed by pki's CA, and user and password as
// its only user.
func startTLSNode(t *testing.T, pki testPKI, user, password string) *privateNode {
	t.Helper()
	return startNode(t, nodeConfig{prefix: "tls", user: user, password: password, tls: &pki})
}

// startNode boots a private node, waits until it is up, and stops it and
// removes its files when the test ends, pass or fail.
func startNode(t *testing.T, cfg nodeConfig) *privateNode {
	t.Helper()
	server := rabbitBin(t, "rabbitmq-server")
	rabbitBin(t, "rabbitmqctl")
	dir := t.TempDir()
	n := &privateNode{
		Name:     "warren-" + cfg.prefix + "-" + randHex(t, 4) + "@localhost",
		Port:     freePort(t),
		User:     cfg.user,
		Password: cfg.password,
		dir:      dir,
		log:      filepath.Join(dir, "node.out"),
	}
	distPort := freePort(t)
	conf := []string{fmt.Sprintf("listeners.tcp.1 = 127.0.0.1:%d", n.Port)}
	if p := cfg.tls; p != nil {
		n.TLSPort = freePort(t)
		conf = append(conf,
			fmt.Sprintf("listeners.ssl.1 = 127.0.0.1:%d", n.TLSPort),
			"ssl_options.cacertfile = "+p.CA,
			"ssl_options.certfile = "+p.ServerCert,
			"ssl_options.keyfile = "+p.ServerKey,
			"ssl_options.verify = verify_peer",
			"ssl_options.fail_if_no_peer_cert = true")
	}
	conf = append(conf,
		"default_user = "+cfg.user,
		"default_pass = "+cfg.password,
		"log.console = true",
		"log.console.level = warning",
		"log.file = false")
	conf = append(conf, cfg.conf...)
	advanced := "[].\n"
	if len(cfg.rabbit) > 0 {
		advanced = "[{rabbit, [" + strings.Join(cfg.rabbit, ", ") + "]}].\n"
	}
	files := map[string]string{
		"rabbitmq.conf":     strings.Join(conf, "\n") + "\n",
		"advanced.config":   advanced,
		"rabbitmq-env.conf": "", // instead of /etc/rabbitmq's, which names the shared node
		"enabled_plugins":   "[].\n",
		".erlang.cookie":    "WARREN" + strings.ToUpper(randHex(t, 8)),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o400); err != nil {
			t.Fatal(err)
		}
	}

	out, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	// The foreground form in a child process: its exit is seen at once, and
	// its process group can be killed if a clean stop fails.
	cmd := exec.Command(server)
	cmd.Dir = dir
	cmd.Env = append(n.env(),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "node.pid"),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", distPort),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = out.Close() }()
	// Registered after t.TempDir, so it runs before the directory is
	// removed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if o, err := n.ctl(ctx, "stop"); err != nil {
			t.Logf("rabbitmqctl -n %s stop: %v\n%s", n.Name, err, o)
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Logf("node %s did not stop; killing its process group", n.Name)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	// Up when the client port accepts and the node says it has booted.
	port := n.Port
	if n.TLSPort != 0 {
		port = n.TLSPort
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("node %s exited during boot: %v\n%s", n.Name, err, n.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not up after 120s\n%s", n.Name, n.output())
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			_ = c.Close()
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	n.mustCtl(t, 60*time.Second, "await_startup")
	return n
}

// URL is the node's plain amqp:// URL.
func (n *privateNode) URL() string {
	return fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", n.User, n.Password, n.Port)
}

// env is what both the node and rabbitmqctl need to find each other: the
// node name, and a HOME holding the node's own Erlang cookie.
func (n *privateNode) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RABBITMQ_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+n.dir, "RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(n.dir, "rabbitmq-env.conf"))
}

// ctl runs rabbitmqctl against this node only.
func (n *privateNode) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, rabbitBinPath("rabbitmqctl"), append([]string{"-n", n.Name}, args...)...)
	cmd.Dir = n.dir
	cmd.Env = n.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// mustCtl is ctl that fails the test on an error or after timeout.
func (n *privateNode) mustCtl(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := n.ctl(ctx, args...)
	if err != nil {
		t.Fatalf("rabbitmqctl -n %s %s: %v\n%s\n%s", n.Name, strings.Join(args, " "), err, out, n.output())
	}
	return out
}

// output is the tail of the node's console, for failure messages.
func (n *privateNode) output() string {
	b, _ := os.ReadFile(n.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
