package unpack

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// maxHops bounds the symlinks followed while resolving one path, as
// runtimes that resolve paths in user space bound them; a loop ends in
// ELOOP instead of running forever.
const maxHops = 255

// parent is a directory resolved inside the root: a handle on it, and its
// path with every symlink resolved (only real directories on it), which
// os.Root can open as it is.
type parent struct {
	fd   int
	path string
}

// resolve finds directory name inside the root the way a path resolves in
// a chroot at the root, which is how container runtimes resolve layer
// paths: symlinks are followed in every component, an absolute target
// starts again at the root (not at the host's /), and ".." at the root
// stays there. Images rely on that (Debian's var/run -> /run); os.Root
// refuses such symlinks instead.
//
// Each component is opened with O_NOFOLLOW|O_DIRECTORY on the handle of the
// one before, and a symlink is read with readlinkat and its target walked
// the same way, so nothing outside the root is ever opened. With create,
// missing directories are made on the way, through a dangling symlink too
// (as MkdirAll in a chroot would).
func (u *Unpacker) resolve(name string, create bool) (parent, error) {
	top, err := u.topFd()
	if err != nil {
		return parent{}, err
	}
	w := walker{top: top, create: create, todo: strings.Split(name, "/"), link: u.link}
	defer w.release()
	for len(w.todo) > 0 {
		if err := w.step(); err != nil {
			return parent{}, fmt.Errorf("resolve %s: %w", name, err)
		}
	}
	return w.result()
}

// walker is the state of one resolution.
type walker struct {
	top    int      // the root's handle; not the walker's to close
	stack  []int    // handles below the root, down to the current directory
	names  []string // their names: the path resolved so far
	todo   []string // components still to resolve
	hops   int      // symlinks followed
	create bool
	link   []byte // readlinkat buffer
}

func (w *walker) cur() int {
	if len(w.stack) == 0 {
		return w.top
	}
	return w.stack[len(w.stack)-1]
}

// at names component c of the current directory, for messages.
func (w *walker) at(c string) string {
	return path.Join(strings.Join(w.names, "/"), c)
}

// pop goes up one directory; at the root, ".." is the root itself.
func (w *walker) pop() {
	if len(w.stack) == 0 {
		return
	}
	unix.Close(w.stack[len(w.stack)-1]) // read-only directory handle: nothing to lose
	w.stack = w.stack[:len(w.stack)-1]
	w.names = w.names[:len(w.names)-1]
}

// step resolves the next component.
func (w *walker) step() error {
	c := w.todo[0]
	w.todo = w.todo[1:]
	switch c {
	case "", ".":
		return nil
	case "..":
		w.pop()
		return nil
	}
	fd, err := openDir(w.cur(), c)
	if errors.Is(err, unix.ENOENT) && w.create {
		if err := unix.Mkdirat(w.cur(), c, 0o755); err != nil {
			return fmt.Errorf("create directory %s: %w", w.at(c), err)
		}
		fd, err = openDir(w.cur(), c)
	}
	if errors.Is(err, unix.ENOTDIR) {
		// With O_NOFOLLOW a symlink is not a directory either.
		return w.follow(c)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", w.at(c), err)
	}
	w.stack = append(w.stack, fd)
	w.names = append(w.names, c)
	return nil
}

// follow continues through c, which is not a directory: if it is a
// symlink, its target takes its place; anything else cannot be a parent.
func (w *walker) follow(c string) error {
	n, err := unix.Readlinkat(w.cur(), c, w.link)
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("open %s: %w", w.at(c), unix.ENOTDIR)
	case err != nil:
		return fmt.Errorf("read symlink %s: %w", w.at(c), err)
	case n == len(w.link):
		return fmt.Errorf("read symlink %s: %w", w.at(c), unix.ENAMETOOLONG)
	}
	if w.hops++; w.hops > maxHops {
		return fmt.Errorf("follow %s: %w", w.at(c), unix.ELOOP)
	}
	target := string(w.link[:n])
	if strings.HasPrefix(target, "/") {
		for len(w.stack) > 0 {
			w.pop()
		}
	}
	w.todo = append(strings.Split(target, "/"), w.todo...)
	return nil
}

// result hands over the handle on the directory reached; the caller owns
// it. The root's own handle is the Unpacker's, so the root is a duplicate.
func (w *walker) result() (parent, error) {
	if len(w.stack) == 0 {
		fd, err := unix.FcntlInt(uintptr(w.top), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return parent{}, fmt.Errorf("duplicate root handle: %w", err)
		}
		return parent{fd: fd, path: "."}, nil
	}
	fd := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	return parent{fd: fd, path: strings.Join(w.names, "/")}, nil
}

// release closes the handles the walk opened and did not hand over.
func (w *walker) release() {
	for _, fd := range w.stack {
		unix.Close(fd) // read-only directory handles: nothing to lose
	}
	w.stack = nil
}

// openDir opens directory c in dfd, refusing to follow a symlink there
// (ENOTDIR, as for any other non-directory).
func openDir(dfd int, c string) (int, error) {
	for {
		fd, err := unix.Openat(dfd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
