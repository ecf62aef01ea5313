package steps_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// TestImageIdentityAcrossReferences: an image is the same image when its
// platform manifest digest is the same, wherever it is served from. The
// same image from another registry, repository or as a digest of its index
// leaves the machine unchanged; another image under the machine's old
// reference name is an image change. The recorded reference itself is
// resolved once, so a warm apply asks the registry nothing.
func TestImageIdentityAcrossReferences(t *testing.T) {
	t.Parallel()
	s := provisioned(t)

	s.mu.Lock()
	s.regPaths = nil
	s.mu.Unlock()
	wantAll(t, s.run(nil, false), engine.StatusUnchanged)
	s.mu.Lock()
	if len(s.regPaths) > 0 {
		t.Errorf("warm apply with the recorded reference asked the registry: %v", s.regPaths)
	}
	s.mu.Unlock()

	same := fixture.Index(map[string]v1.Image{"amd64": fixture.NodeImage("amd64"), "arm64": fixture.NodeImage("arm64")})
	indexDigest, err := same.Digest()
	if err != nil {
		t.Fatal(err)
	}
	mirror := newRegistry(t)
	pushIndex(t, mirror+"/mirrored/node:stable", same)
	for _, ref := range []string{
		mirror + "/mirrored/node:stable",                  // another registry, repository and tag
		mirror + "/mirrored/node@" + indexDigest.String(), // a digest of the index, not of the manifest
	} {
		rep := s.run(map[string]string{"image": ref}, false)
		wantAll(t, rep, engine.StatusUnchanged)
		for _, st := range rep.Steps {
			if st.ID == "workspace" && !strings.Contains(st.Message, "the same image from another reference") {
				t.Errorf("%s: workspace reason %q, want it to say it is the same image from another reference", ref, st.Message)
			}
		}
	}

	other := newRegistry(t)
	v2 := fixture.Image("amd64", fixture.Layer(fixture.RootFS("amd64")), fixture.Layer([]fixture.Entry{{Name: "etc/version", Body: "v2\n"}}))
	pushIndex(t, other+"/rootfsctl/demo-node:v1", fixture.Index(map[string]v1.Image{"amd64": v2}))
	rep := s.run(map[string]string{"image": other + "/rootfsctl/demo-node:v1"}, false)
	if st := statusOf(rep)["workspace"]; !strings.HasPrefix(st, "failed: check: machine holds another image") {
		t.Errorf("another image under the old name: workspace %s, want an image change (onImageChange: fail)", st)
	}
}
