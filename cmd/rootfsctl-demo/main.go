// Command rootfsctl-demo runs the offline demo: it generates a small
// multi-platform node image and an upstream-layout artifact mirror, serves
// them on loopback (an in-process OCI registry and an HTTP file server with
// Range support), and runs the real rootfsctl binary on plans/demo.yaml, so
// the demo goes through the same code paths as production. Everything lands
// under ./demo.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

const usage = `usage: rootfsctl-demo [ROOTFSCTL]

Serves a generated node image and artifact mirror on loopback and runs
ROOTFSCTL (default bin/rootfsctl) graph and apply, twice, on
plans/demo.yaml, provisioning ./demo. Run from the repository's top
(make demo does).
`

func main() {
	if len(os.Args) > 2 || len(os.Args) == 2 && strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprint(os.Stderr, usage)
		if len(os.Args) == 2 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
			return
		}
		os.Exit(64)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := "bin/rootfsctl"
	if len(os.Args) > 1 {
		bin = os.Args[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	regAddr, mirrorAddr, stopServers, err := serveDemo(ctx)
	if err != nil {
		return err
	}
	defer stopServers()

	vars := []string{"--var", "registry=" + regAddr, "--var", "mirror=http://" + mirrorAddr,
		"--cache-dir", filepath.Join("demo", "cache")}
	steps := [][]string{
		append([]string{"graph", "plans/demo.yaml"}, vars...),
		append([]string{"apply", "plans/demo.yaml"}, vars...),
		append([]string{"apply", "--log-level", "warn", "plans/demo.yaml"}, vars...),
	}
	titles := []string{"the plan's graph", "apply (cold the first time: a new ./demo is empty)", "apply again: every step unchanged"}
	for i, args := range steps {
		fmt.Printf("== %s: rootfsctl %s\n", titles[i], strings.Join(args, " "))
		start := time.Now()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("rootfsctl %s: %w", args[0], err)
		}
		if args[0] == "apply" {
			fmt.Printf("(%s wall)\n", time.Since(start).Round(time.Millisecond))
		}
		fmt.Println()
	}
	fmt.Println("== the machine is in ./demo/machines/demo1, its nspawn settings in ./demo/etc/systemd")
	return nil
}

// serveDemo writes the artifact mirror, starts it and an OCI registry on
// loopback, and pushes the two-platform node image.
func serveDemo(ctx context.Context) (regAddr, mirrorAddr string, stop func(), err error) {
	mirrorDir := filepath.Join("demo", "mirror")
	if err := os.RemoveAll(mirrorDir); err != nil {
		return "", "", nil, err
	}
	if err := fixture.WriteMirror(mirrorDir, fixture.DefaultMirror); err != nil {
		return "", "", nil, fmt.Errorf("write mirror: %w", err)
	}
	reg, err := serve(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	if err != nil {
		return "", "", nil, err
	}
	mirror, err := serve(http.FileServer(http.Dir(mirrorDir)))
	if err != nil {
		reg.Close()
		return "", "", nil, err
	}
	stop = func() { reg.Close(); mirror.Close() }
	regAddr = reg.Addr().String()
	ref, err := name.ParseReference(regAddr + "/rootfsctl/demo-node:v1")
	if err == nil {
		idx := fixture.Index(map[string]v1.Image{"amd64": fixture.NodeImage("amd64"), "arm64": fixture.NodeImage("arm64")})
		err = remote.WriteIndex(ref, idx, remote.WithContext(ctx))
	}
	if err != nil {
		stop()
		return "", "", nil, fmt.Errorf("push demo image: %w", err)
	}
	fmt.Printf("== serving a 2-platform node image at %s and an artifact mirror at http://%s\n\n", ref, mirror.Addr())
	return regAddr, mirror.Addr().String(), stop, nil
}

// listener is a running loopback server.
type listener struct {
	net.Listener
	srv *http.Server
}

func (l *listener) Close() error { return l.srv.Close() }

func serve(h http.Handler) (*listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with Close
	return &listener{Listener: ln, srv: srv}, nil
}
