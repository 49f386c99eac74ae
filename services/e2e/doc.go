// Package e2e holds Brain's end-to-end, fault and bad-input suites: they
// build both binaries, run them as real processes on loopback against a
// throwaway PostgreSQL, and talk to them the way users do.
package e2e
