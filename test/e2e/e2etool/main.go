// Command e2etool does the parts of the end-to-end test that are easier in
// Go than in shell: pushing the debootstrap rootfs as a multi-platform OCI
// index, serving the artifact mirror with Range support, and writing
// manifests of directory trees for before/after comparisons; for the
// benchmark, go-containerregistry's registry and images of other shapes.
//
// It only talks to loopback addresses.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2etool push-image|serve|manifest|registry|push-layers ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "push-image":
		err = pushImage(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	case "manifest":
		err = manifest(os.Args[2:])
	case "registry":
		err = serveRegistry(os.Args[2:])
	case "push-layers":
		err = pushLayers(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2etool:", err)
		os.Exit(1)
	}
}

// pushImage pushes --rootfs (a tar of the debootstrap tree) as the
// linux/amd64 image, plus a small linux/arm64 image, as one OCI index.
// Each image has a last layer writing /etc/e2e-platform, so the machine
// shows which platform was unpacked. The gzipped rootfs layer is cached
// next to the tar.
func pushImage(args []string) error {
	fl := flag.NewFlagSet("push-image", flag.ExitOnError)
	rootfs := fl.String("rootfs", "", "tar of the rootfs")
	ref := fl.String("ref", "", "registry/repo:tag to push the index to")
	fl.Parse(args)
	gz := *rootfs + ".gz"
	if _, err := os.Stat(gz); err != nil {
		if err := compress(*rootfs, gz); err != nil {
			return err
		}
	}
	base, err := tarball.LayerFromFile(gz, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	images := map[string]v1.Image{}
	for _, arch := range []string{"amd64", "arm64"} {
		var layers []v1.Layer
		if arch == "amd64" {
			layers = append(layers, base)
		}
		marker, err := markerLayer(arch)
		if err != nil {
			return err
		}
		layers = append(layers, marker)
		img, err := ociImage(arch, layers)
		if err != nil {
			return err
		}
		images[arch] = img
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: images[arch],
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	r, err := name.ParseReference(*ref)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		return fmt.Errorf("push %s: %w", r, err)
	}
	for arch, img := range images {
		d, _ := img.Digest()
		fmt.Printf("%s %s\n", arch, d)
	}
	return nil
}

// ociImage is an OCI image of layers for linux/arch.
func ociImage(arch string, layers []v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layers...)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	return mutate.ConfigFile(img, cf)
}

func compress(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(out, gzip.DefaultCompression)
	if _, err := io.Copy(zw, in); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func markerLayer(arch string) (v1.Layer, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	body := arch + "\n"
	if err := tw.WriteHeader(&tar.Header{Name: "etc/e2e-platform", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0)}); err != nil {
		return nil, err
	}
	io.WriteString(tw, body)
	// A device node the image carries, whatever debootstrap put in /dev,
	// so the test can prove device nodes survive unpacking.
	if err := tw.WriteHeader(&tar.Header{Name: "dev/e2e-null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: time.Unix(1700000000, 0)}); err != nil {
		return nil, err
	}
	tw.Close()
	data := b.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// serve serves --dir on a free loopback port with Range support, writes the
// port to --port-file and runs until killed.
func serve(args []string) error {
	fl := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fl.String("dir", ".", "directory to serve")
	portFile := fl.String("port-file", "", "where to write the port")
	logFile := fl.String("log", "", "append one line per request (method and path) to this file")
	fl.Parse(args)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	if err := os.WriteFile(*portFile+".tmp", []byte(port), 0o644); err != nil {
		return err
	}
	if err := os.Rename(*portFile+".tmp", *portFile); err != nil {
		return err
	}
	var h http.Handler = http.FileServer(http.Dir(*dir))
	if *logFile != "" {
		lf, err := os.OpenFile(*logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		files := h
		var mu sync.Mutex
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			fmt.Fprintf(lf, "%s %s\n", r.Method, r.URL.Path)
			mu.Unlock()
			files.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// manifest prints one line per entry under a directory: path, type and
// mode, owner, size, and the digest of regular files or the target of
// symlinks or the device numbers.
func manifest(args []string) error {
	fl := flag.NewFlagSet("manifest", flag.ExitOnError)
	withMtime := fl.Bool("mtime", false, "also record modification times of files (a rewrite with equal content shows)")
	fl.Parse(args)
	if fl.NArg() != 1 {
		return fmt.Errorf("usage: manifest [--mtime] DIR")
	}
	root := fl.Arg(0)
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		extra := ""
		switch {
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			extra = hex.EncodeToString(h.Sum(nil))
			if *withMtime {
				extra += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			extra, _ = os.Readlink(p)
		case fi.Mode()&fs.ModeDevice != 0:
			extra = fmt.Sprintf("dev %d,%d", st.Rdev>>8&0xfff, st.Rdev&0xff|(st.Rdev>>12)&0xfff00)
		}
		size := fi.Size()
		if fi.IsDir() {
			size = 0 // directory sizes depend on history, not content
		}
		lines = append(lines, fmt.Sprintf("%s\t%v\t%d:%d\t%d\t%s", rel, fi.Mode(), st.Uid, st.Gid, size, extra))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	return nil
}
