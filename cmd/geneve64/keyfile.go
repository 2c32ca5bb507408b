package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"geneve64/nat64"
)

const maxKeyFile = 4096

// errKeyFileMode: a key file that others than its owner may read.
var errKeyFileMode = errors.New("key file readable by others")

// readKeyFile reads and parses the --key file. Like ssh with a private key,
// it refuses a file that group or others may read or write: whoever can
// read the key can join the tunnel or forge its packets. Windows keeps
// access in ACLs that the file mode does not show, so there the mode is not
// checked.
func readKeyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: mode %04o, want no access for group and others (chmod 600 %s)", errKeyFileMode, perm, name)
	}
	// A key is tens of bytes of text: a larger file is not a key file, and
	// is not read whole.
	text, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(text) > maxKeyFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", nat64.ErrKey, maxKeyFile)
	}
	return nat64.ParseKey(text)
}
