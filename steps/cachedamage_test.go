package steps_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// TestDamagedLargeLayerIsDroppedFromCache: a cached layer damaged near its
// start fails the unpack long before the verifying reader reaches the end
// (the gzip or tar error comes first). The cache must still find the
// damage, drop the entry, and let the next attempt pull the layer again,
// so provisioning succeeds instead of failing on every apply.
func TestDamagedLargeLayerIsDroppedFromCache(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	// 16 MiB that do not compress: far more than the unpack reads ahead.
	r := rand.New(rand.NewPCG(3, 4))
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	layer := fixture.Layer([]fixture.Entry{{Name: "var/big.bin", Body: string(big)}})
	img := fixture.Image("amd64", fixture.Layer(fixture.RootFS("amd64")), layer)
	s.push("rootfsctl/big:v1", fixture.Index(map[string]v1.Image{"amd64": img}))
	image := map[string]string{"image": s.registry + "/rootfsctl/big:v1"}

	shared := mustCache(t)
	rep, err := s.apply(shared, zerolog.Nop(), image)
	if err != nil || rep.Failed() {
		t.Fatalf("first machine: %v %v", err, statusOf(rep))
	}
	digest, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(shared.Dir(), "sha256", digest.Hex)
	f, err := os.OpenFile(entry, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("the layer is not in the cache: %v", err)
	}
	// Offset 12 is the first deflate block's header: inflating fails at
	// once (damage inside a stored block would only show at the end).
	if _, err := f.WriteAt([]byte("damaged by a bad disk"), 12); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// Up to two applies: the damage may fail the first (it must be dropped
	// then), never the second.
	for attempt := 1; ; attempt++ {
		extra := map[string]string{"image": image["image"], "machine": "second"}
		rep, err = s.apply(shared, zerolog.Nop(), extra)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Failed() {
			break
		}
		if attempt == 2 {
			t.Fatalf("second machine still fails after the damage was seen: %v", statusOf(rep))
		}
	}
	wantAll(t, rep, engine.StatusChanged)
	if got := readFile(t, filepath.Join(s.out, "machines/second/var/big.bin")); got != string(big) {
		t.Error("var/big.bin of the second machine differs from the image's")
	}
	ef, err := os.Open(entry)
	if err != nil {
		t.Fatalf("the layer was not cached again: %v", err)
	}
	defer ef.Close()
	h := sha256.New()
	io.Copy(h, ef)
	if hex.EncodeToString(h.Sum(nil)) != digest.Hex {
		t.Error("the cache entry is still damaged")
	}
}
