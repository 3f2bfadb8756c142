package kubernetes_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDockerfile checks the image against go.mod, the main package it
// builds, the pod's user and port, and .dockerignore against the sources.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Instructions, with continuation lines joined.
	var instrs [][2]string
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(data), " ")
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		op, rest, _ := strings.Cut(l, " ")
		instrs = append(instrs, [2]string{strings.ToUpper(op), strings.TrimSpace(rest)})
	}
	var froms []string
	var last int // index of the final stage's FROM
	for i, in := range instrs {
		if in[0] == "FROM" {
			froms = append(froms, in[1])
			last = i
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a final one", len(froms))
	}

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	builder := regexp.MustCompile(`golang:(\d+\.\d+)\b`).FindStringSubmatch(froms[0])
	if goVer == nil || builder == nil || builder[1] != string(goVer[1]) {
		t.Errorf("build stage FROM %q: want golang:%s, the Go of go.mod", froms[0], goVer[1])
	}
	final := strings.Fields(froms[len(froms)-1])
	if img := final[len(final)-1]; img != "scratch" && !strings.HasPrefix(img, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %q: want distroless static or scratch", img)
	}

	var build, user, expose, entrypoint, mainPkg string
	for i, in := range instrs {
		switch {
		case in[0] == "RUN" && strings.Contains(in[1], "go build"):
			build = in[1]
		case in[0] == "ARG" && strings.HasPrefix(in[1], "MAIN="):
			mainPkg = strings.TrimPrefix(in[1], "MAIN=")
		case in[0] == "USER" && i > last:
			user = in[1]
		case in[0] == "EXPOSE" && i > last:
			expose = in[1]
		case in[0] == "ENTRYPOINT" && i > last:
			entrypoint = in[1]
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
		if !strings.Contains(build, want) {
			t.Errorf("go build %q: no %s", build, want)
		}
	}
	if mainPkg == "" {
		t.Error("no ARG MAIN=<main package>")
	} else if src, err := os.ReadFile(filepath.Join(repoRoot, mainPkg, "main.go")); err != nil || !bytes.Contains(src, []byte("package main")) {
		t.Errorf("ARG MAIN=%s: no package main there", mainPkg)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 {
		t.Errorf("ENTRYPOINT %s: want the exec form, [\"/worker\"]", entrypoint)
	} else if !strings.Contains(string(data), "COPY --from=build /out/worker "+ep[0]) || !strings.Contains(build, "-o /out/worker") {
		t.Errorf("ENTRYPOINT %s is not the binary the build stage writes and the final stage copies", entrypoint)
	}

	w := findWorker(t, render(t, "base"))
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root uid, which Kubernetes' runAsNonRoot can check", user)
	}
	var podUser *int64
	if sc := w.pod.SecurityContext; sc != nil {
		podUser = sc.RunAsUser
	}
	if sc := w.container.SecurityContext; sc != nil && sc.RunAsUser != nil {
		podUser = sc.RunAsUser
	}
	if podUser == nil || strconv.FormatInt(*podUser, 10) != uid {
		t.Errorf("pod runAsUser %v, image USER %q: the pod must run as the image's user", podUser, user)
	}
	if expose != strconv.Itoa(w.metricsPort) && expose != strconv.Itoa(w.metricsPort)+"/tcp" {
		t.Errorf("EXPOSE %q, want the port of -metrics-addr=%s", expose, w.opts.MetricsAddr)
	}

	// .dockerignore must leave every Go source and go.mod in the context.
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/"))
		}
	}
	needed := []string{"go.mod", "go.sum"}
	err = filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() && (rel == ".git" || rel == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") {
			needed = append(needed, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range needed {
		if pat := dockerIgnored(patterns, p); pat != "" {
			t.Errorf(".dockerignore %q leaves %s out of the build context", pat, p)
		}
	}
}

// dockerIgnored returns the pattern that excludes p (or a directory above
// it), or "". It knows "**/" prefixes and path.Match patterns, not "!".
func dockerIgnored(patterns []string, p string) string {
	for _, pat := range patterns {
		if rest, ok := strings.CutPrefix(pat, "**/"); ok {
			for _, part := range strings.Split(p, "/") {
				if m, _ := path.Match(rest, part); m {
					return pat
				}
			}
			continue
		}
		for q := p; q != "." && q != "/"; q = path.Dir(q) {
			if m, _ := path.Match(pat, q); m {
				return pat
			}
		}
	}
	return ""
}
