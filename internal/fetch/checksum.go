package fetch

import (
	"fmt"
	"strings"
)

// ParseChecksum finds the hex SHA-256 for file in a published checksum
// document: a bare digest ("<hex>"), "<hex>  <name>" or "<hex> *<name>"
// lines (sha256sum output, possibly listing several files).
func ParseChecksum(doc []byte, file string) (string, error) {
	var only string
	lines := 0
	for _, line := range strings.Split(string(doc), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		lines++
		sum := strings.ToLower(fields[0])
		if !IsSHA256(sum) {
			return "", fmt.Errorf("checksum document: %q is not a SHA-256 digest", truncate(fields[0], 80))
		}
		if len(fields) == 1 {
			only = sum
			continue
		}
		name := strings.TrimPrefix(fields[1], "*")
		if name == file || strings.HasSuffix(name, "/"+file) {
			return sum, nil
		}
		if lines == 1 {
			only = sum
		}
	}
	if lines == 1 && only != "" {
		return only, nil
	}
	return "", fmt.Errorf("checksum document lists no digest for %s", file)
}

// IsSHA256 reports whether s is 64 lowercase hex digits.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
