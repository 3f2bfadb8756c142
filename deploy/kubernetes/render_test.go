package kubernetes_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// rendered is one kustomization as kubectl apply -k would send it to the
// API server, each object strictly decoded into its Go type.
type rendered struct {
	dir   string
	ids   []string         // "Kind/namespace/name" of every object, in order
	plain []map[string]any // the same objects, untyped (for comparisons)

	deployments   []appsv1.Deployment
	pdbs          []policyv1.PodDisruptionBudget
	hpas          []autoscalingv2.HorizontalPodAutoscaler
	secrets       []corev1.Secret
	namespaces    []corev1.Namespace
	scaledObjects []scaledObject
	triggerAuths  []triggerAuthentication
	clusters      []rabbitmqCluster
}

// render builds the kustomization in dir (relative to this directory) with
// kustomize's own library, under kubectl's defaults: loads restricted to
// the kustomization's root, no plugins.
func render(t *testing.T, dir string) *rendered {
	t.Helper()
	r, err := renderDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func renderDir(dir string) (*rendered, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return decodeResMap(dir, m)
}

// kinds maps each apiVersion and kind the manifests may hold to the
// function that decodes it. Anything else is an error: a new kind needs
// its schema here first.
var kinds = map[string]func(r *rendered, y []byte) error{
	"apps/v1/Deployment":                     decodeInto(func(r *rendered) *[]appsv1.Deployment { return &r.deployments }),
	"policy/v1/PodDisruptionBudget":          decodeInto(func(r *rendered) *[]policyv1.PodDisruptionBudget { return &r.pdbs }),
	"autoscaling/v2/HorizontalPodAutoscaler": decodeInto(func(r *rendered) *[]autoscalingv2.HorizontalPodAutoscaler { return &r.hpas }),
	"v1/Secret":                              decodeInto(func(r *rendered) *[]corev1.Secret { return &r.secrets }),
	"v1/Namespace":                           decodeInto(func(r *rendered) *[]corev1.Namespace { return &r.namespaces }),
	"keda.sh/v1alpha1/ScaledObject":          decodeInto(func(r *rendered) *[]scaledObject { return &r.scaledObjects }),
	"keda.sh/v1alpha1/TriggerAuthentication": decodeInto(func(r *rendered) *[]triggerAuthentication { return &r.triggerAuths }),
	"rabbitmq.com/v1beta1/RabbitmqCluster":   decodeInto(func(r *rendered) *[]rabbitmqCluster { return &r.clusters }),
}

// decodeInto returns a decoder that appends the object, strictly decoded
// (unknown or duplicate fields are errors), to the slice field picks.
func decodeInto[T any](field func(*rendered) *[]T) func(*rendered, []byte) error {
	return func(r *rendered, y []byte) error {
		var v T
		if err := yaml.UnmarshalStrict(y, &v); err != nil {
			return err
		}
		s := field(r)
		*s = append(*s, v)
		return nil
	}
}

func decodeResMap(dir string, m resmap.ResMap) (*rendered, error) {
	r := &rendered{dir: dir}
	for _, res := range m.Resources() {
		id := res.GetKind() + "/" + res.GetNamespace() + "/" + res.GetName()
		y, err := res.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", dir, id, err)
		}
		decode, ok := kinds[res.GetApiVersion()+"/"+res.GetKind()]
		if !ok {
			return nil, fmt.Errorf("%s: %s: apiVersion %s kind %s has no schema in this test (render_test.go)", dir, id, res.GetApiVersion(), res.GetKind())
		}
		if err := decode(r, y); err != nil {
			return nil, fmt.Errorf("%s: %s does not fit its schema: %w", dir, id, err)
		}
		plain, err := res.Map()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", dir, id, err)
		}
		r.ids = append(r.ids, id)
		r.plain = append(r.plain, plain)
	}
	return r, nil
}

// secretKeys maps each Secret the build creates, and each one the RabbitMQ
// Cluster Operator will create for the build's clusters, to its keys with
// their values where the manifest gives them in stringData (nil: unknown).
func (r *rendered) secretKeys() map[string]map[string]*string {
	s := map[string]map[string]*string{}
	for _, sec := range r.secrets {
		keys := map[string]*string{}
		for k, v := range sec.StringData {
			keys[k] = &v
		}
		for k := range sec.Data {
			keys[k] = nil
		}
		s[sec.Name] = keys
	}
	for _, c := range r.clusters {
		keys := map[string]*string{}
		for _, k := range operatorSecretKeys {
			keys[k] = nil
		}
		s[c.Name+"-default-user"] = keys
	}
	return s
}

// TestKubectlKustomizeAgrees builds every kustomization with the kubectl on
// PATH too: what kubectl apply -k would send must be what the checks saw.
func TestKubectlKustomizeAgrees(t *testing.T) {
	t.Parallel()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH; the builds are checked with kustomize's library alone")
	}
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			ours := render(t, dir)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
			}
			theirs := map[string]any{}
			for _, doc := range strings.Split(string(out), "\n---\n") {
				var o struct {
					Kind     string `json:"kind"`
					Metadata struct {
						Name      string `json:"name"`
						Namespace string `json:"namespace"`
					} `json:"metadata"`
				}
				if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
					t.Fatalf("kubectl kustomize %s: %v", dir, err)
				}
				theirs[o.Kind+"/"+o.Metadata.Namespace+"/"+o.Metadata.Name] = normalize(t, []byte(doc))
			}
			for i, id := range ours.ids {
				y, err := yaml.Marshal(ours.plain[i])
				if err != nil {
					t.Fatal(err)
				}
				k, ok := theirs[id]
				if !ok {
					t.Errorf("%s: in our build, not in kubectl's", id)
					continue
				}
				delete(theirs, id)
				if o := normalize(t, y); !reflect.DeepEqual(o, k) {
					t.Errorf("%s differs:\nours: %v\nkubectl's: %v", id, o, k)
				}
			}
			for id := range theirs {
				t.Errorf("%s: in kubectl's build, not in ours", id)
			}
		})
	}
}

// normalize decodes one YAML document into plain JSON values.
func normalize(t *testing.T, y []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
