package claims_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rootfsctl/rootfsctl/internal/claims"
)

func machineRoot(t *testing.T) *os.Root {
	t.Helper()
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

func inPlan(steps ...string) func(string) bool {
	return func(step string) bool {
		for _, s := range steps {
			if s == step {
				return true
			}
		}
		return false
	}
}

// TestOneOwnerPerPath: a path claimed by a step of the plan is refused to
// another with a *ConflictError naming both; the owner claims it again at
// will, a sibling artifact of the owner takes it over, and once released
// it is free.
func TestOneOwnerPerPath(t *testing.T) {
	t.Parallel()
	root := machineRoot(t)
	ctx := context.Background()
	live := inPlan("kube", "cri")
	kubelet := claims.Claim{Path: "usr/local/bin/kubelet", Step: "kube", Artifact: "kubelet"}
	if err := claims.Take(ctx, root, kubelet, "kubelet 1.33.1 (step kube)", live); err != nil {
		t.Fatal(err)
	}
	if err := claims.Take(ctx, root, kubelet, "kubelet 1.33.2 (step kube)", live); err != nil {
		t.Errorf("Take() again by its owner: %v", err)
	}
	rival := claims.Claim{Path: kubelet.Path, Step: "cri", Artifact: "containerd"}
	var ce *claims.ConflictError
	if err := claims.Take(ctx, root, rival, "containerd 2.0.4 (step cri)", live); !errors.As(err, &ce) ||
		ce.Owner != "kubelet (step kube)" || ce.Want != "containerd 2.0.4 (step cri)" {
		t.Errorf("Take() by another step: %v, want a *ConflictError naming both", err)
	}
	sibling := claims.Claim{Path: kubelet.Path, Step: "kube", Artifact: "kubernetes-server"}
	if err := claims.Take(ctx, root, sibling, "kubernetes-server (step kube)", live); err != nil {
		t.Errorf("Take() by another artifact of the owner step: %v", err)
	}
	claims.Release(root, "kube", map[string]bool{})
	if err := claims.Take(ctx, root, rival, "containerd 2.0.4 (step cri)", live); err != nil {
		t.Errorf("Take() after the owner released the path: %v", err)
	}
}

// TestStaleAndForeignClaimsAreTakenOver: the claim of a step the plan no
// longer has, and a file under a claim's name that rootfsctl did not write
// whole, give way; Release leaves the paths a step still installs.
func TestStaleAndForeignClaimsAreTakenOver(t *testing.T) {
	t.Parallel()
	root := machineRoot(t)
	ctx := context.Background()
	old := claims.Claim{Path: "opt/cni/bin/bridge", Step: "cni", Artifact: "cni-plugins"}
	if err := claims.Take(ctx, root, old, "cni-plugins (step cni)", inPlan("cni")); err != nil {
		t.Fatal(err)
	}
	renamed := claims.Claim{Path: old.Path, Step: "plugins", Artifact: "cni-plugins"}
	if err := claims.Take(ctx, root, renamed, "cni-plugins (step plugins)", inPlan("plugins")); err != nil {
		t.Errorf("Take() over a step no longer in the plan: %v", err)
	}
	des, err := fs.ReadDir(root.FS(), claims.Dir)
	if err != nil || len(des) != 1 {
		t.Fatalf("%s: %v %v, want one claim", claims.Dir, des, err)
	}
	name := filepath.Join(claims.Dir, des[0].Name())
	if err := root.WriteFile(name, []byte("{half"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := claims.Claim{Path: old.Path, Step: "cri", Artifact: "runc"}
	if err := claims.Take(ctx, root, other, "runc (step cri)", inPlan("plugins", "cri")); err != nil {
		t.Errorf("Take() over an unreadable claim: %v", err)
	}
	claims.Release(root, "cri", map[string]bool{old.Path: true})
	var ce *claims.ConflictError
	if err := claims.Take(ctx, root, renamed, "cni-plugins (step plugins)", inPlan("plugins", "cri")); !errors.As(err, &ce) {
		t.Errorf("Take() of a path its owner still installs: %v, want a conflict", err)
	}
}

// TestRacingStepsGetOneOwner: steps claiming one path at the same moment,
// many times over: every time exactly one of them owns it and the others
// get a *ConflictError. (A claim made between another step's read and a
// second look at the name was once removed as "not a claim", and two steps
// went on to install the path.)
func TestRacingStepsGetOneOwner(t *testing.T) {
	t.Parallel()
	steps := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"}
	for round := range 200 {
		root := machineRoot(t)
		start := make(chan struct{})
		errs := make([]error, len(steps))
		var wg sync.WaitGroup
		for i, step := range steps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c := claims.Claim{Path: "usr/local/bin/kubelet", Step: step, Artifact: step}
				errs[i] = claims.Take(context.Background(), root, c, step, inPlan(steps...))
			}()
		}
		close(start)
		wg.Wait()
		var ce *claims.ConflictError
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.As(err, &ce):
				t.Fatalf("round %d: %v, want a conflict or success", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d steps own the path (%v)", round, won, errs)
		}
	}
}
