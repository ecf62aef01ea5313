package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// serveRegistry serves go-containerregistry's registry (blobs in memory)
// on a free loopback port, writes host:port to --port-file and runs until
// killed: the benchmark's second registry, unlike docker-registry.
func serveRegistry(args []string) error {
	fl := flag.NewFlagSet("registry", flag.ExitOnError)
	portFile := fl.String("port-file", "", "where to write host:port")
	fl.Parse(args)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := writeAtomic(*portFile, ln.Addr().String()); err != nil {
		return err
	}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

func writeAtomic(path, content string) error {
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// pushLayers pushes --rootfs (a tar) as a linux/amd64 image of --layers
// layers of about equal size, compressed with --compression, as a plain
// image manifest. The compressed layers are kept in --keep (by their
// shape) so later runs push without compressing again.
func pushLayers(args []string) error {
	fl := flag.NewFlagSet("push-layers", flag.ExitOnError)
	rootfs := fl.String("rootfs", "", "tar of the rootfs")
	ref := fl.String("ref", "", "registry/repo:tag")
	n := fl.Int("layers", 1, "number of layers")
	comp := fl.String("compression", "gzip", "gzip or zstd")
	keep := fl.String("keep", "", "directory for the compressed layers")
	fl.Parse(args)
	dir := filepath.Join(*keep, fmt.Sprintf("layers-%d-%s", *n, *comp))
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		if err := splitLayers(*rootfs, dir, *n, *comp); err != nil {
			return err
		}
	}
	mt := types.OCILayer
	if *comp == "zstd" {
		mt = types.OCILayerZStd
	}
	var layers []v1.Layer
	for i := 0; i < *n; i++ {
		l, err := tarball.LayerFromFile(filepath.Join(dir, fmt.Sprint(i)), tarball.WithMediaType(mt))
		if err != nil {
			return err
		}
		layers = append(layers, l)
	}
	img, err := ociImage("amd64", layers)
	if err != nil {
		return err
	}
	r, err := name.ParseReference(*ref)
	if err != nil {
		return err
	}
	if err := remote.Write(r, img); err != nil {
		return fmt.Errorf("push %s: %w", r, err)
	}
	d, _ := img.Digest()
	fmt.Println(d)
	return nil
}

// splitLayers cuts the tar at entry boundaries into n parts of about
// equal content size and compresses each into dir/0, dir/1, ...
func splitLayers(rootfs, dir string, n int, comp string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st, err := os.Stat(rootfs)
	if err != nil {
		return err
	}
	f, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	per := st.Size()/int64(n) + 1
	for i := 0; i < n; i++ {
		if err := writeLayer(tr, filepath.Join(dir, fmt.Sprint(i)), comp, per, i == n-1); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
}

func writeLayer(tr *tar.Reader, path, comp string, per int64, last bool) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	var zw io.WriteCloser
	if comp == "zstd" {
		zw, err = zstd.NewWriter(out)
	} else {
		zw, err = gzip.NewWriterLevel(out, gzip.DefaultCompression)
	}
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	var size int64
	for last || size < per {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		m, err := io.Copy(tw, tr)
		if err != nil {
			return err
		}
		size += m + 512
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}
