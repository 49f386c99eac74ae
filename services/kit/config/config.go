// Package config binds command-line flags to environment variables: every
// flag can also be set by its variable, and an explicit flag wins. Secrets
// are never taken from plain variables; they come from files (*_FILE).
package config

import (
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Binder defines flags whose defaults come from the environment.
type Binder struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

// New returns a Binder over fs reading variables through getenv (os.Getenv
// in production, a map in tests).
func New(fs *flag.FlagSet, getenv func(string) string) *Binder {
	return &Binder{fs: fs, getenv: getenv}
}

func (b *Binder) usage(usage, env string) string {
	if env == "" {
		return usage
	}
	return fmt.Sprintf("%s (env %s)", usage, env)
}

// String defines a string flag.
func (b *Binder) String(name, env, def, usage string) *string {
	if v := b.lookup(env); v != "" {
		def = v
	}
	return b.fs.String(name, def, b.usage(usage, env))
}

// Duration defines a duration flag ("300ms", "10s").
func (b *Binder) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	if v := b.lookup(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: %w", env, v, err))
		} else {
			def = d
		}
	}
	return b.fs.Duration(name, def, b.usage(usage, env))
}

// Int defines an integer flag.
func (b *Binder) Int(name, env string, def int, usage string) *int {
	if v := b.lookup(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: %w", env, v, err))
		} else {
			def = n
		}
	}
	return b.fs.Int(name, def, b.usage(usage, env))
}

// Bool defines a boolean flag.
func (b *Binder) Bool(name, env string, def bool, usage string) *bool {
	if v := b.lookup(env); v != "" {
		x, err := strconv.ParseBool(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: %w", env, v, err))
		} else {
			def = x
		}
	}
	return b.fs.Bool(name, def, b.usage(usage, env))
}

func (b *Binder) lookup(env string) string {
	if env == "" {
		return ""
	}
	return b.getenv(env)
}

// Parse parses args and reports the first malformed variable or flag.
func (b *Binder) Parse(args []string) error {
	if len(b.errs) > 0 {
		return fmt.Errorf("environment: %w", b.errs[0])
	}
	return b.fs.Parse(args)
}
