//go:build !unix

package config

import "os"

// openNonBlocking opens path for reading. Systems that are not Unix have no FIFOs that
// os.Open would wait on; readLimited still refuses anything but a regular file.
func openNonBlocking(path string) (*os.File, error) {
	return os.Open(path)
}
