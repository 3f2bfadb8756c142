package kubernetes_test

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// standalone YAML files belong to no kustomization.
var standalone = map[string]string{
	"overlays/hpa/prometheus-adapter-values.yaml": "Helm values for prometheus-adapter",
}

// kustomizations lists the directories here holding a kustomization.yaml.
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	for _, p := range yamlFiles(t) {
		if path.Base(p) == "kustomization.yaml" {
			dirs = append(dirs, path.Dir(p))
		}
	}
	return dirs
}

// yamlFiles lists the YAML files under this directory, slash-separated.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestYAMLFiles checks that every kustomization.yaml fits kustomize's own
// type, that every YAML file here is a resource or patch of some
// kustomization (or listed in standalone), and that none has a duplicate
// key, which YAML forbids and some tools silently resolve.
func TestYAMLFiles(t *testing.T) {
	t.Parallel()
	files := yamlFiles(t)
	used := map[string]bool{}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(data), "\n---") {
			if _, err := yaml.YAMLToJSONStrict([]byte(doc)); err != nil {
				t.Errorf("%s document %d: %v", p, i, err)
			}
		}
		if path.Base(p) != "kustomization.yaml" {
			continue
		}
		var k types.Kustomization
		if err := yaml.UnmarshalStrict(data, &k); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if len(k.PatchesStrategicMerge) > 0 || len(k.PatchesJson6902) > 0 {
			t.Errorf("%s: patchesStrategicMerge and patchesJson6902 are deprecated; use patches", p)
		}
		dir := path.Dir(p)
		refs := slices.Clone(k.Resources)
		for _, pt := range k.Patches {
			if pt.Path != "" {
				refs = append(refs, pt.Path)
			}
		}
		for _, ref := range refs {
			full := path.Join(dir, ref)
			if fi, err := os.Stat(full); err != nil {
				t.Errorf("%s: %s: %v", p, ref, err)
			} else if !fi.IsDir() {
				used[full] = true
			}
		}
	}
	for _, p := range files {
		if path.Base(p) != "kustomization.yaml" && !used[p] && standalone[p] == "" {
			t.Errorf("%s is in no kustomization (resources or patches): add it to one, or list it in standalone", p)
		}
	}
	for p := range standalone {
		if !slices.Contains(files, p) {
			t.Errorf("standalone file %s is missing", p)
		}
	}
}
