package oci

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// blobGetter fetches blobs of one repository itself, rather than through
// go-containerregistry's layers, which hash every blob to check its
// digest: rootfsctl hashes each one anyway (to store it in the cache, or
// to check it where it is not stored), so the second hash was pure cost,
// 4-5% of a cold apply's CPU time.
type blobGetter struct {
	repo name.Repository
	reg  *Registry

	mu     sync.Mutex
	client *http.Client
}

// transport authenticates once per image, as go-containerregistry's
// fetcher does for an image's blobs.
func (b *blobGetter) transport(ctx context.Context) (*http.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil {
		return b.client, nil
	}
	// A failure is not kept: reaching the registry may work next time.
	auth, err := authn.Resolve(ctx, b.reg.Keychain, b.repo)
	if err != nil {
		return nil, err
	}
	t, err := transport.NewWithContext(ctx, b.repo.Registry, auth, b.reg.Transport, []string{b.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	b.client = &http.Client{Transport: transport.NewUserAgent(t, b.reg.UserAgent)}
	return b.client, nil
}

// get opens the blob digest ("sha256:..."), of size bytes, unverified:
// the caller checks the digest. More than size bytes is an error.
func (b *blobGetter) get(ctx context.Context, digest string, size int64) (io.ReadCloser, error) {
	client, err := b.transport(ctx)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: b.repo.Registry.Scheme(), Host: b.repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/%s", b.repo.RepositoryStr(), digest)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return &sizedBody{rc: resp.Body, size: size, left: size}, nil
}

// sizedBody fails a body that goes on past the size its descriptor gave.
type sizedBody struct {
	rc         io.ReadCloser
	size, left int64
}

func (s *sizedBody) Read(p []byte) (int, error) {
	if s.left <= 0 {
		// One byte more tells a body that ends from one that does not.
		var one [1]byte
		if n, _ := s.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("the registry sent more than the blob's %d bytes", s.size)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.rc.Read(p)
	s.left -= int64(n)
	if err == io.EOF && s.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (s *sizedBody) Close() error { return s.rc.Close() }
