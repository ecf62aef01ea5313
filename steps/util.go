package steps

import (
	"fmt"
	"os"
)

// openMachine opens the machine directory as an os.Root: every read and
// write inside it is confined, whatever symlinks the image put there.
func openMachine(dir string) (*os.Root, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open machine directory %s: %w", dir, err)
	}
	return root, nil
}
