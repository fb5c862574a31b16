// dockerfile-lint runs BuildKit's own Dockerfile front end over a Dockerfile without a builder or a
// registry: parse, every stage converted (stage names, COPY --from, ARG/ENV use) and the checks of
// `docker build --check` (BuildKit's linter rules). Base images are never fetched: a resolver
// answers every image reference with an empty config, offline, so what needs an image's contents
// (its ENV, USER, file system) is not checked. Exit status 1 on an error or a warning.
//
//	dockerfile-lint Dockerfile
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
)

// offline resolves every image to an empty linux/amd64 config without any network access.
type offline struct{}

func (offline) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`)
	return ref, digest.FromBytes(cfg), cfg, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-lint <Dockerfile>")
		os.Exit(2)
	}
	dt, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sm := llb.NewSourceMap(nil, os.Args[1], "Dockerfile", dt)
	sm.Definition = &llb.Definition{} // no build context: nothing to map
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{},
		SourceMap:    sm,
		MetaResolver: offline{},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	bad := false
	if res.Error != nil {
		fmt.Fprintln(os.Stderr, "error:", res.Error.Message)
		bad = true
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		fmt.Fprintf(os.Stderr, "warning: %s:%d: %s: %s\n", os.Args[1], line, w.RuleName, w.Detail)
		bad = true
	}
	if bad {
		os.Exit(1)
	}
	fmt.Println("ok: no errors, no warnings (BuildKit's Dockerfile checks)")
}
