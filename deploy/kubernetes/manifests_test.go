// Package kubernetes_test checks the manifests of deploy/kubernetes against
// the code they run and against each other, for what would otherwise rot
// silently: the worker flags in the Deployment (parsed by runner.ParseFlags
// itself), the probe paths and port (a real runner.Run answers them), the
// grace period against -shutdown-timeout, Secret keys, queue names in the
// autoscalers, metric names and labels (package metrics), the Dockerfile
// against go.mod and the pod's user and port, and a RabbitMQ cluster's
// settings against the fault suite's (every node in the workers' URL
// list, -quorum, the partition handling of scripts/cluster.sh).
//
// Each kustomization is built with kustomize's own library (krusty, as
// kubectl apply -k does), and every object it emits is strictly decoded
// into its Go type: k8s.io/api for the core kinds, the subsets in
// crd_test.go for KEDA's and the RabbitMQ operator's. An unknown or
// misspelt field, or a value of the wrong type, fails the test.
//
// This directory is its own Go module, so that kustomize and k8s.io/api
// stay out of warren's go.mod:
//
//	cd deploy/kubernetes && go vet ./... && go test -race ./...
package kubernetes_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/runner"
)

const (
	repoRoot      = "../.."
	containerName = "worker"

	// The worker's HTTP endpoints (docs/architecture.md, "Worker binary");
	// TestWorkerAnswersProbes checks that a real worker serves them.
	livenessPath  = "/healthz"
	readinessPath = "/readyz"
	metricsPath   = "/metrics"

	// stopMargin is what a worker may take after -shutdown-timeout: Run
	// waits 5s more for handlers that ignore cancellation, the runner 2s
	// for its HTTP server. Rounded up.
	stopMargin = 10 * time.Second

	// backlogMetric is polled from the broker by every worker (ready
	// messages only); inFlightMetric is counted by each worker.
	backlogMetric  = "warren_queue_messages"
	inFlightMetric = "warren_tasks_in_flight"
	// demandMetric is the external metric prometheus-adapter computes from
	// the two for the HPA: ready messages plus running handlers.
	demandMetric = "warren_queue_demand"
)

// wantKustomizations are the builds docs/kubernetes.md tells users to apply.
var wantKustomizations = []string{"base", "overlays/hpa", "overlays/rabbitmq-cluster"}

// operatorSecretKeys are the keys of Secret <name>-default-user that the
// RabbitMQ Cluster Operator creates for RabbitmqCluster <name>
// (internal/resource/default_user_secret.go in rabbitmq/cluster-operator).
var operatorSecretKeys = []string{"username", "password", "host", "port", "provider", "type", "default_user.conf"}

// TestBuilds builds every kustomization and checks what it emits.
func TestBuilds(t *testing.T) {
	t.Parallel()
	dirs := kustomizations(t)
	for _, want := range wantKustomizations {
		if !slices.Contains(dirs, want) {
			t.Errorf("no kustomization in %s", want)
		}
	}
	f := loadFacts(t)
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			checkBuild(t, render(t, dir), f)
		})
	}
}

// facts are what the manifests are checked against, gathered from the code.
type facts struct {
	flags        map[string]bool // the worker's flag names
	queueMetrics map[string]bool // metrics of package metrics whose only label is queue
}

func loadFacts(t *testing.T) *facts {
	t.Helper()
	f := &facts{flags: map[string]bool{}, queueMetrics: map[string]bool{}}

	// The flag set, walked through its own help text.
	var help bytes.Buffer
	if _, err := runner.ParseFlags([]string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("runner.ParseFlags(-h): %v, want flag.ErrHelp", err)
	}
	for _, m := range regexp.MustCompile(`(?m)^  -([\w-]+)`).FindAllStringSubmatch(help.String(), -1) {
		f.flags[m[1]] = true
	}
	if !f.flags["queues"] {
		t.Fatalf("no -queues in the worker's help; parsed %v from:\n%s", f.flags, help.String())
	}

	// Every collector of package metrics; Vec collectors instantiated with
	// a queue label alone, so that those that accept it show up with
	// exactly that label set, which the autoscalers select on.
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		get := v.Field(i).MethodByName("GetMetricWith")
		if !get.IsValid() {
			continue
		}
		get.Call([]reflect.Value{reflect.ValueOf(prometheus.Labels{"queue": "q"})})
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetName() == "queue" {
				f.queueMetrics[mf.GetName()] = true
			}
		}
	}
	if len(f.queueMetrics) == 0 {
		t.Fatal("no metric of package metrics has a queue label alone")
	}
	return f
}

// workload is the build's worker Deployment and what its args say.
type workload struct {
	deploy      *appsv1.Deployment
	pod         *corev1.PodSpec
	container   *corev1.Container
	opts        runner.Options
	metricsPort int
}

func findWorker(t *testing.T, r *rendered) *workload {
	t.Helper()
	if len(r.deployments) != 1 {
		t.Fatalf("%s: want one Deployment, have %d", r.dir, len(r.deployments))
	}
	w := &workload{deploy: &r.deployments[0]}
	w.pod = &w.deploy.Spec.Template.Spec
	// Overlays patch containers/0: the worker must stay first.
	if len(w.pod.Containers) == 0 || w.pod.Containers[0].Name != containerName {
		t.Fatalf("Deployment %s: the first container must be %q (overlays patch containers/0)", w.deploy.Name, containerName)
	}
	w.container = &w.pod.Containers[0]
	opts, err := runner.ParseFlags(w.container.Args, io.Discard)
	if err != nil {
		t.Fatalf("Deployment %s: the worker rejects args %q: %v", w.deploy.Name, w.container.Args, err)
	}
	w.opts = opts
	if opts.MetricsAddr == "" {
		t.Fatalf("Deployment %s: -metrics-addr is empty: no /healthz, /readyz or /metrics", w.deploy.Name)
	}
	_, port, err := net.SplitHostPort(opts.MetricsAddr)
	if err != nil {
		t.Fatalf("Deployment %s: -metrics-addr=%s: %v", w.deploy.Name, opts.MetricsAddr, err)
	}
	if w.metricsPort, err = strconv.Atoi(port); err != nil || w.metricsPort == 0 {
		t.Fatalf("Deployment %s: -metrics-addr=%s: want a fixed port for probes and scraping", w.deploy.Name, opts.MetricsAddr)
	}
	return w
}

func checkBuild(t *testing.T, r *rendered, f *facts) {
	w := findWorker(t, r)
	checkArgs(t, w, f)
	checkProbes(t, w)
	checkPod(t, w)
	checkSecrets(t, r, w)
	checkAutoscaling(t, r, w)
	checkDisruptionBudgets(t, r, w)
	checkRabbitmqClusters(t, r, w)
}

func checkArgs(t *testing.T, w *workload, f *facts) {
	if len(w.container.Command) != 0 {
		t.Errorf("container %s: command %q replaces the image's ENTRYPOINT (the worker binary); pass flags in args", containerName, w.container.Command)
	}
	for _, a := range w.container.Args {
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !strings.HasPrefix(a, "-"):
			t.Errorf("arg %q is not a flag", a)
		case !f.flags[name]:
			t.Errorf("arg %q: the worker has no flag -%s", a, name)
		case !hasValue:
			t.Errorf("arg %q: write -%s=value, so that a value is never read as a flag", a, name)
		case name == "broker":
			t.Errorf("arg %q: the broker URL holds a password; pass it in env %s from a Secret", a, runner.EnvBrokerURL)
		}
	}
	if !slices.ContainsFunc(w.container.Env, func(e corev1.EnvVar) bool { return e.Name == runner.EnvBrokerURL }) {
		t.Errorf("container %s: no env %s: the worker would dial its default, localhost", containerName, runner.EnvBrokerURL)
	}
	// Go's GC lets the heap reach twice the live data; with a prefetch
	// window of large messages live, that overshoots a memory limit unless
	// GOMEMLIMIT tells the runtime where the limit is.
	if _, limited := w.container.Resources.Limits[corev1.ResourceMemory]; limited {
		i := slices.IndexFunc(w.container.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
		switch {
		case i < 0:
			t.Errorf("container %s: a memory limit but no env GOMEMLIMIT", containerName)
		case w.container.Env[i].ValueFrom == nil || w.container.Env[i].ValueFrom.ResourceFieldRef == nil ||
			w.container.Env[i].ValueFrom.ResourceFieldRef.Resource != "limits.memory" ||
			!w.container.Env[i].ValueFrom.ResourceFieldRef.Divisor.IsZero() && w.container.Env[i].ValueFrom.ResourceFieldRef.Divisor.Value() != 1:
			t.Errorf("container %s: GOMEMLIMIT %+v, want it from resourceFieldRef limits.memory in bytes", containerName, w.container.Env[i])
		}
	}
}

func checkProbes(t *testing.T, w *workload) {
	named := map[string]int32{}
	var exposed bool
	for _, p := range w.container.Ports {
		named[p.Name] = p.ContainerPort
		exposed = exposed || int(p.ContainerPort) == w.metricsPort
	}
	if !exposed {
		t.Errorf("no containerPort %d (the port of -metrics-addr=%s)", w.metricsPort, w.opts.MetricsAddr)
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
		paths []string
	}{
		{"livenessProbe", w.container.LivenessProbe, []string{livenessPath}},
		{"readinessProbe", w.container.ReadinessProbe, []string{readinessPath}},
		{"startupProbe", w.container.StartupProbe, []string{livenessPath, readinessPath}},
	}
	for _, p := range probes {
		if p.probe == nil {
			if p.name != "startupProbe" {
				t.Errorf("no %s: want an httpGet on %s", p.name, p.paths[0])
			}
			continue
		}
		hg := p.probe.HTTPGet
		if hg == nil {
			t.Errorf("%s: want an httpGet on %s", p.name, strings.Join(p.paths, " or "))
			continue
		}
		if !slices.Contains(p.paths, hg.Path) {
			t.Errorf("%s: path %q, want %s", p.name, hg.Path, strings.Join(p.paths, " or "))
		}
		port := int(hg.Port.IntVal)
		if hg.Port.Type == intstr.String {
			n, ok := named[hg.Port.StrVal]
			if !ok {
				t.Errorf("%s: port %q is no container port's name", p.name, hg.Port.StrVal)
			}
			port = int(n)
		}
		if port != w.metricsPort {
			t.Errorf("%s: port %s (%d), want the port of -metrics-addr=%s", p.name, hg.Port.String(), port, w.opts.MetricsAddr)
		}
		if hg.Scheme != "" && hg.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s: scheme %s, want HTTP", p.name, hg.Scheme)
		}
	}
	ann := w.deploy.Spec.Template.Annotations
	for k, want := range map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(w.metricsPort), "prometheus.io/path": metricsPath} {
		if have := ann[k]; have != want {
			t.Errorf("pod annotation %s: %q, want %q", k, have, want)
		}
	}
}

func checkPod(t *testing.T, w *workload) {
	if g := w.pod.TerminationGracePeriodSeconds; g == nil {
		t.Errorf("no terminationGracePeriodSeconds: the default 30s is not above -shutdown-timeout=%s plus the worker's stop", w.opts.ShutdownTimeout)
	} else if time.Duration(*g)*time.Second < w.opts.ShutdownTimeout+stopMargin {
		t.Errorf("terminationGracePeriodSeconds %d: want at least -shutdown-timeout (%s) + %s, or the kubelet kills running tasks before the worker requeues them", *g, w.opts.ShutdownTimeout, stopMargin)
	}
	res := w.container.Resources
	for _, need := range []struct {
		list corev1.ResourceList
		name corev1.ResourceName
		what string
	}{{res.Requests, corev1.ResourceCPU, "requests.cpu"}, {res.Requests, corev1.ResourceMemory, "requests.memory"}, {res.Limits, corev1.ResourceMemory, "limits.memory"}} {
		if q, ok := need.list[need.name]; !ok || q.IsZero() {
			t.Errorf("container %s: no resources.%s", containerName, need.what)
		}
	}
	if w.deploy.Spec.Replicas != nil {
		t.Errorf("Deployment %s: replicas %d: the autoscaler owns it, and every apply would reset it", w.deploy.Name, *w.deploy.Spec.Replicas)
	}
	if !selects(t, w.deploy.Spec.Selector, w.deploy.Spec.Template.Labels) {
		t.Errorf("Deployment %s: selector %v does not select its pod labels %v", w.deploy.Name, w.deploy.Spec.Selector, w.deploy.Spec.Template.Labels)
	}
	if ru := w.deploy.Spec.Strategy.RollingUpdate; w.deploy.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "0" {
		t.Errorf("Deployment %s: want a RollingUpdate with maxUnavailable 0, so that an old worker stops only once a new one consumes", w.deploy.Name)
	}
}

// selects reports whether a non-empty selector matches the labels.
func selects(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	if sel == nil || len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return s.Matches(labels.Set(set))
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func checkSecrets(t *testing.T, r *rendered, w *workload) {
	known := r.secretKeys()
	ref := func(where, name, key string) *string {
		keys, ok := known[name]
		if !ok {
			t.Errorf("%s: Secret %q is not in this build", where, name)
			return nil
		}
		v, ok := keys[key]
		if !ok {
			t.Errorf("%s: Secret %q has no key %q", where, name, key)
		}
		return v
	}
	for _, c := range append(slices.Clone(w.pod.InitContainers), w.pod.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref("container "+c.Name+" env "+e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				if _, ok := known[e.SecretRef.Name]; !ok {
					t.Errorf("container %s envFrom: Secret %q is not in this build", c.Name, e.SecretRef.Name)
				}
			}
		}
	}
	for _, ta := range r.triggerAuths {
		for _, e := range ta.Spec.SecretTargetRef {
			ref("TriggerAuthentication "+ta.Name+" parameter "+e.Parameter, e.Name, e.Key)
		}
	}

	// The broker URL as the worker will see it.
	defined := map[string]bool{}
	var brokerURL *string
	for _, e := range w.container.Env {
		if e.ValueFrom == nil {
			for _, m := range envRef.FindAllStringSubmatch(e.Value, -1) {
				if !defined[m[1]] {
					t.Errorf("env %s: $(%s) is not defined earlier in the list; Kubernetes would leave it as is", e.Name, m[1])
				}
			}
			if e.Name == runner.EnvBrokerURL {
				brokerURL = ptr(envRef.ReplaceAllString(e.Value, "x"))
			}
		} else if s := e.ValueFrom.SecretKeyRef; s != nil && e.Name == runner.EnvBrokerURL {
			brokerURL = known[s.Name][s.Key]
		}
		defined[e.Name] = true
	}
	// One URL, or a cluster's nodes separated by commas, each checked as
	// the worker checks it at start; every node on the same vhost.
	var brokerVhost string
	if brokerURL != nil {
		if err := conn.CheckURL(*brokerURL); err != nil {
			t.Errorf("%s %q: the worker would refuse it: %v", runner.EnvBrokerURL, *brokerURL, err)
		}
		for i, raw := range conn.SplitURLs(*brokerURL) {
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "amqp" && u.Scheme != "amqps" || u.Host == "" {
				t.Errorf("%s node %d %q: want amqp://user:password@host:port/vhost", runner.EnvBrokerURL, i+1, raw)
				continue
			}
			if v := amqpVhost(u); i == 0 {
				brokerVhost = v
			} else if v != brokerVhost {
				t.Errorf("%s node %d on vhost %q, node 1 on %q: a cluster's nodes share their vhosts", runner.EnvBrokerURL, i+1, v, brokerVhost)
			}
		}
	}

	// KEDA's management URL: http(s), with credentials in it unless the
	// TriggerAuthentication gives them, on the workers' vhost.
	for _, ta := range r.triggerAuths {
		params := map[string]*string{}
		for _, e := range ta.Spec.SecretTargetRef {
			if keys := known[e.Name]; keys != nil {
				params[e.Parameter] = keys[e.Key]
			}
		}
		host := params["host"]
		if host == nil {
			continue
		}
		u, err := url.Parse(*host)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			t.Errorf("TriggerAuthentication %s: host %q: want RabbitMQ's management API, http(s)://host:15672/vhost (KEDA counts unacked messages only over http)", ta.Name, *host)
			continue
		}
		_, hasUser := params["username"]
		_, hasPassword := params["password"]
		if hasUser != hasPassword {
			t.Errorf("TriggerAuthentication %s: give username and password together", ta.Name)
		}
		if u.User == nil && !hasUser {
			t.Errorf("TriggerAuthentication %s: host %q has no credentials and no username/password parameters", ta.Name, *host)
		}
		if v := managementVhost(u); brokerVhost != "" && v != brokerVhost {
			t.Errorf("TriggerAuthentication %s: management URL on vhost %q, the workers' broker URL on %q", ta.Name, v, brokerVhost)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// amqpVhost is the vhost of an AMQP URI: the path without its slash, "/"
// when empty.
func amqpVhost(u *url.URL) string {
	if v := strings.TrimPrefix(u.Path, "/"); v != "" {
		return v
	}
	return "/"
}

// managementVhost is the vhost KEDA takes from a management URL: its last
// path segment, "/" when empty.
func managementVhost(u *url.URL) string {
	p := u.EscapedPath()
	seg, err := url.PathUnescape(p[strings.LastIndex(p, "/")+1:])
	if err != nil || seg == "" {
		return "/"
	}
	return seg
}

func checkAutoscaling(t *testing.T, r *rendered, w *workload) {
	var scalers []string
	auths := map[string]triggerAuthentication{}
	for _, ta := range r.triggerAuths {
		auths[ta.Name] = ta
	}

	for _, so := range r.scaledObjects {
		id := "ScaledObject " + so.Name
		scalers = append(scalers, id)
		if ref := so.Spec.ScaleTargetRef; ref == nil || ref.Name != w.deploy.Name || ref.Kind != "" && ref.Kind != "Deployment" {
			t.Errorf("%s: scaleTargetRef %+v, want Deployment %s", id, ref, w.deploy.Name)
		}
		if lo, hi := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount; lo != nil && hi != nil && *lo > *hi {
			t.Errorf("%s: minReplicaCount %d above maxReplicaCount %d", id, *lo, *hi)
		}
		covered := map[string]bool{}
		for i, tr := range so.Spec.Triggers {
			where := fmt.Sprintf("%s trigger %d", id, i)
			if tr.Type != "rabbitmq" {
				continue
			}
			md := tr.Metadata
			for k := range md {
				if !kedaRabbitMQMetadata[k] {
					t.Errorf("%s: metadata %q is no setting of KEDA's rabbitmq scaler", where, k)
				}
			}
			if p := md["protocol"]; p != "http" {
				t.Errorf("%s: protocol %q, want http: over amqp KEDA counts ready messages only, and scales away pods that are still running tasks", where, p)
			}
			if m := md["mode"]; m != "QueueLength" {
				t.Errorf("%s: mode %q, want QueueLength", where, m)
			}
			if md["excludeUnacknowledged"] == "true" {
				t.Errorf("%s: excludeUnacknowledged true counts ready messages only", where)
			}
			if md["host"] != "" || md["hostFromEnv"] != "" {
				t.Errorf("%s: the management URL belongs in the TriggerAuthentication's Secret, not the ScaledObject", where)
			}
			q := md["queueName"]
			if !slices.Contains(w.opts.Queues, q) {
				t.Errorf("%s: queueName %q is not in the worker's -queues %v", where, q, w.opts.Queues)
			}
			covered[q] = true
			// KEDA wants ceil(held/value) pods. Below -prefetch, it adds pods
			// for messages that running pods already hold; above what a
			// busy pod holds (-prefetch, at most -concurrency of them
			// running), it counts busy pods as spare and scales them away.
			if v, err := strconv.ParseFloat(md["value"], 64); err != nil || v != float64(w.opts.Prefetch) {
				t.Errorf("%s: value %q, want -prefetch=%d: below, pods are added that find nothing to take; above, pods with every handler busy are scaled away", where, md["value"], w.opts.Prefetch)
			}
			if tr.AuthenticationRef == nil {
				t.Errorf("%s: no authenticationRef", where)
			} else if ta, ok := auths[tr.AuthenticationRef.Name]; !ok {
				t.Errorf("%s: authenticationRef %q: no TriggerAuthentication of that name in this build", where, tr.AuthenticationRef.Name)
			} else if !slices.ContainsFunc(ta.Spec.SecretTargetRef, func(e secretTargetRef) bool { return e.Parameter == "host" }) {
				t.Errorf("%s: TriggerAuthentication %s gives no host", where, ta.Name)
			}
		}
		for _, q := range w.opts.Queues {
			if !covered[q] {
				t.Errorf("%s: no rabbitmq trigger for queue %q of -queues", id, q)
			}
		}
		checkPrefetchFitsConcurrency(t, id, w)
		if a := so.Spec.Advanced; a == nil || a.HorizontalPodAutoscalerConfig == nil || !slowScaleDown(a.HorizontalPodAutoscalerConfig.Behavior) {
			t.Errorf("%s: want advanced.horizontalPodAutoscalerConfig.behavior.scaleDown with a stabilization window: every pod removed requeues its prefetched messages", id)
		}
	}

	for _, h := range r.hpas {
		id := "HorizontalPodAutoscaler " + h.Name
		scalers = append(scalers, id)
		if ref := h.Spec.ScaleTargetRef; ref.Name != w.deploy.Name || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
			t.Errorf("%s: scaleTargetRef %+v, want apps/v1 Deployment %s", id, ref, w.deploy.Name)
		}
		if lo := h.Spec.MinReplicas; lo == nil || *lo < 1 {
			t.Errorf("%s: minReplicas %v: warren's queue metrics exist only while a worker runs; want at least 1", id, lo)
		}
		if !slowScaleDown(h.Spec.Behavior) {
			t.Errorf("%s: want behavior.scaleDown with a stabilization window: every pod removed requeues its prefetched messages", id)
		}
		covered := map[string]bool{}
		for i, m := range h.Spec.Metrics {
			where := fmt.Sprintf("%s metric %d", id, i)
			if m.Type != autoscalingv2.ExternalMetricSourceType || m.External == nil {
				t.Errorf("%s: type %q, want External (served by prometheus-adapter)", where, m.Type)
				continue
			}
			if name := m.External.Metric.Name; name != demandMetric {
				t.Errorf("%s: metric %q, want %s (ready messages plus running handlers): a backlog alone reads 0 while every task runs", where, name, demandMetric)
				continue
			}
			var q string
			if sel := m.External.Metric.Selector; sel != nil {
				q = sel.MatchLabels["queue"]
			}
			if !slices.Contains(w.opts.Queues, q) {
				t.Errorf("%s: queue %q is not in the worker's -queues %v", where, q, w.opts.Queues)
				continue
			}
			covered[q] = true
			target := m.External.Target
			if target.Type != autoscalingv2.AverageValueMetricType || target.AverageValue == nil {
				t.Errorf("%s: target type %q, want AverageValue (per pod)", where, target.Type)
				continue
			}
			// ceil((ready + running)/target) pods: at -concurrency, pods
			// with every handler busy are all kept, and each ready message
			// beyond them adds a handler's worth of pod.
			if v := target.AverageValue.AsApproximateFloat64(); v != float64(w.opts.Concurrency) {
				t.Errorf("%s: %s per pod %v, want -concurrency=%d: above, busy pods are scaled away; below, pods are added that find nothing to take", where, demandMetric, v, w.opts.Concurrency)
			}
		}
		for _, q := range w.opts.Queues {
			if !covered[q] {
				t.Errorf("%s: no %s metric for queue %q of -queues", id, demandMetric, q)
			}
		}
		checkPrefetchFitsConcurrency(t, id, w)
	}
	if len(scalers) != 1 {
		t.Errorf("want one autoscaler for Deployment %s, have %v", w.deploy.Name, scalers)
	}
}

// checkPrefetchFitsConcurrency fails a worker that holds more messages per
// queue than it runs: those wait in its prefetch window, invisible to new
// pods, and an autoscaler counting held messages would take their pod for
// a spare one.
func checkPrefetchFitsConcurrency(t *testing.T, scaler string, w *workload) {
	if w.opts.Prefetch > w.opts.Concurrency {
		t.Errorf("%s scales Deployment %s, whose -prefetch=%d exceeds -concurrency=%d: with an autoscaler, hold no more than you run", scaler, w.deploy.Name, w.opts.Prefetch, w.opts.Concurrency)
	}
}

// slowScaleDown reports whether b holds scale-downs back for a while.
func slowScaleDown(b *autoscalingv2.HorizontalPodAutoscalerBehavior) bool {
	return b != nil && b.ScaleDown != nil && b.ScaleDown.StabilizationWindowSeconds != nil && *b.ScaleDown.StabilizationWindowSeconds >= 60
}

func checkDisruptionBudgets(t *testing.T, r *rendered, w *workload) {
	if len(r.pdbs) == 0 {
		t.Errorf("no PodDisruptionBudget for Deployment %s", w.deploy.Name)
	}
	for _, p := range r.pdbs {
		if !selects(t, p.Spec.Selector, w.deploy.Spec.Template.Labels) {
			t.Errorf("PodDisruptionBudget %s: selector %v does not select the worker's pods %v", p.Name, p.Spec.Selector, w.deploy.Spec.Template.Labels)
		}
		if p.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget %s: minAvailable blocks node drains at the autoscaler's minimum; use maxUnavailable", p.Name)
		}
	}
}

// clusterScript starts the three-node cluster the fault suite runs on;
// its rabbitmq.conf is what the tests prove.
const clusterScript = repoRoot + "/scripts/cluster.sh"

// partitionHandling is the cluster_partition_handling that clusterScript
// writes into every node's rabbitmq.conf.
func partitionHandling(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(clusterScript)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^cluster_partition_handling = (\S+)$`).FindAllStringSubmatch(string(data), -1)
	if len(m) != 1 {
		t.Fatalf("%s: want one cluster_partition_handling line in the nodes' rabbitmq.conf, found %d", clusterScript, len(m))
	}
	return m[0][1]
}

// checkNodeURLs checks that list, a broker URL list, names each node of
// cluster c once, by the name the operator gives its pod on the cluster's
// headless Service: <name>-server-<i>.<name>-nodes, port 5672.
func checkNodeURLs(t *testing.T, id string, c rabbitmqCluster, list string) {
	t.Helper()
	if c.Spec.Replicas == nil {
		return // reported with the replica count
	}
	var nodes []string
	listed := map[string]bool{}
	for i := range int(*c.Spec.Replicas) {
		nodes = append(nodes, fmt.Sprintf("%s-server-%d.%s-nodes", c.Name, i, c.Name))
		listed[nodes[i]] = false
	}
	for i, raw := range conn.SplitURLs(list) {
		u, err := url.Parse(raw)
		var host string
		if err == nil {
			host = strings.TrimSuffix(strings.TrimSuffix(u.Hostname(), ".cluster.local"), "."+c.Namespace+".svc")
		}
		seen, ok := listed[host]
		switch {
		case !ok || u.Port() != "5672":
			t.Errorf("%s: %s node %d %q: want a node of the cluster, %s-server-N.%s-nodes:5672", id, runner.EnvBrokerURL, i+1, conn.Redact(raw), c.Name, c.Name)
		case seen:
			t.Errorf("%s: %s lists node %s twice", id, runner.EnvBrokerURL, host)
		default:
			listed[host] = true
		}
	}
	for _, host := range nodes {
		if !listed[host] {
			t.Errorf("%s: %s lacks node %s: a worker moves only between the nodes it is given", id, runner.EnvBrokerURL, host)
		}
	}
}

// quorumByDefault is the rabbitmq.conf line that makes every durable queue
// declared without x-queue-type a quorum queue (RabbitMQ 4.0 and later).
var quorumByDefault = regexp.MustCompile(`(?m)^\s*default_queue_type\s*=\s*quorum\s*$`)

// rabbitmqMajor is the major version in an image name such as
// rabbitmq:4.1-management, 0 when it names none.
func rabbitmqMajor(image string) int {
	m := regexp.MustCompile(`^(?:.*/)?rabbitmq:(\d+)[.-]`).FindStringSubmatch(image)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func checkRabbitmqClusters(t *testing.T, r *rendered, w *workload) {
	known := r.secretKeys()
	for _, c := range r.clusters {
		id := "RabbitmqCluster " + c.Name
		if n := c.Spec.Replicas; n == nil || *n < 3 || *n%2 == 0 {
			t.Errorf("%s: replicas %v: quorum queues want an odd number, at least 3", id, n)
		}
		if !quorumByDefault.MatchString(c.Spec.Rabbitmq.AdditionalConfig) {
			t.Errorf("%s: rabbitmq.additionalConfig has no %q: queues the workers' topology names plainly would be classic, on one node", id, "default_queue_type = quorum")
		}
		if len(c.Spec.Rabbitmq.AdditionalConfig) > 2000 {
			t.Errorf("%s: rabbitmq.additionalConfig is %d characters; the CRD allows 2000", id, len(c.Spec.Rabbitmq.AdditionalConfig))
		}
		if c.Spec.Image != "" && rabbitmqMajor(c.Spec.Image) < 4 {
			t.Errorf("%s: image %q: default_queue_type needs RabbitMQ 4.0 or later", id, c.Spec.Image)
		}
		// The workers' URL lists every node by its own name, as the fault
		// suite gives producer and worker every node of its cluster: a
		// failed dial or a lost connection moves to the next at once.
		for _, e := range w.container.Env {
			if e.Name != runner.EnvBrokerURL {
				continue
			}
			if e.ValueFrom != nil {
				t.Errorf("%s: %s comes from a Secret, not the cluster (set it from %s-default-user)", id, runner.EnvBrokerURL, c.Name)
				continue
			}
			checkNodeURLs(t, id, c, envRef.ReplaceAllString(e.Value, "x"))
		}
		if want := partitionHandling(t); !regexp.MustCompile(`(?m)^\s*cluster_partition_handling\s*=\s*` + regexp.QuoteMeta(want) + `\s*$`).MatchString(c.Spec.Rabbitmq.AdditionalConfig) {
			t.Errorf("%s: rabbitmq.additionalConfig does not set cluster_partition_handling = %s, as the fault suite's cluster (%s) does", id, want, clusterScript)
		}
		// Quorum queues as the fault suite declares them: with a delivery
		// limit and their .dead queue. default_queue_type alone gives
		// neither dead-lettering nor, on a broker before 4.0, anything.
		if !w.opts.Quorum {
			t.Errorf("%s: the worker's args lack -quorum=true: queues its topology leaves out would not be declared quorum with a delivery limit and dead letters", id)
		}
		// KEDA runs in its own namespace: the management URL needs the
		// service's namespace.
		for _, ta := range r.triggerAuths {
			for _, e := range ta.Spec.SecretTargetRef {
				if e.Parameter != "host" {
					continue
				}
				v := known[e.Name][e.Key]
				if v == nil {
					continue
				}
				u, err := url.Parse(*v)
				if want := c.Name + "." + c.Namespace + ".svc"; err != nil || c.Namespace == "" || u.Hostname() != want && !strings.HasPrefix(u.Hostname(), want+".") || u.Port() != "15672" {
					t.Errorf("TriggerAuthentication %s: management URL %q, want http://%s.%s.svc:15672/", ta.Name, *v, c.Name, c.Namespace)
				}
			}
		}
	}
}
