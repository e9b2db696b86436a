// Command dockerfile-check lints a Dockerfile with BuildKit's own build checks — the rules
// `docker build --check` runs (FromAsCasing, UndefinedVar, JSONArgsRecommended, SecretsUsedInArgOrEnv,
// ...) — without a Docker engine or a registry: every FROM resolves to a fixed, empty Linux image
// config instead of pulling the base image. Checks that depend on a base image's own ENV therefore
// see only PATH. Prints one line per finding and exits 1 when there is any.
//
// Usage: dockerfile-check <Dockerfile>
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/opencontainers/go-digest"
)

// offlineResolver answers every base image lookup with the same minimal config.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
	})
	if err != nil {
		return "", "", nil, err
	}
	return ref, digest.FromBytes(config), config, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-check <Dockerfile>")
		os.Exit(2)
	}
	path := os.Args[1]
	dt, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	// The lint results name their source by an LLB definition; an empty state's is enough offline.
	source := llb.Scratch()
	definition, err := source.Marshal(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sourceMap := llb.NewSourceMap(&source, path, "Dockerfile", dt)
	sourceMap.Definition = definition
	results, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		SourceMap:    sourceMap,
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	findings := 0
	for _, w := range results.Warnings {
		line := int32(0)
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = w.Location.Ranges[0].Start.Line
		}
		fmt.Printf("%s:%d: %s: %s\n", path, line, w.RuleName, w.Detail)
		findings++
	}
	if results.Error != nil {
		fmt.Printf("%s: error: %s\n", path, results.Error.Message)
		findings++
	}
	if findings > 0 {
		os.Exit(1)
	}
	fmt.Printf("%s: no findings\n", path)
}
