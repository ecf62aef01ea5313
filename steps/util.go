package steps

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
)

func newSHA256() hash.Hash { return sha256.New() }

func hexSum(b []byte) string { return hex.EncodeToString(b) }

// openMachine opens the machine directory as an os.Root: every read and
// write inside it is confined, whatever symlinks the image put there.
func openMachine(dir string) (*os.Root, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open machine directory %s: %w", dir, err)
	}
	return root, nil
}
