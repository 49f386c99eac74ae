package config

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestBinder(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		addr    string
		timeout time.Duration
		n       int
		on      bool
		wantErr bool
	}{
		{name: "defaults", addr: ":9091", timeout: time.Second, n: 4},
		{name: "env", env: map[string]string{"ADDR": ":1", "TIMEOUT": "2s", "N": "7", "ON": "true"}, addr: ":1", timeout: 2 * time.Second, n: 7, on: true},
		{name: "flag wins", env: map[string]string{"ADDR": ":1"}, args: []string{"--addr", ":2"}, addr: ":2", timeout: time.Second, n: 4},
		{name: "bad duration", env: map[string]string{"TIMEOUT": "soon"}, wantErr: true},
		{name: "bad int", env: map[string]string{"N": "x"}, wantErr: true},
		{name: "bad bool", env: map[string]string{"ON": "maybe"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			b := New(fs, func(k string) string { return tt.env[k] })
			addr := b.String("addr", "ADDR", ":9091", "address")
			timeout := b.Duration("timeout", "TIMEOUT", time.Second, "timeout")
			n := b.Int("n", "N", 4, "n")
			on := b.Bool("on", "ON", false, "on")
			err := b.Parse(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if *addr != tt.addr || *timeout != tt.timeout || *n != tt.n || *on != tt.on {
				t.Fatalf("got %q %s %d %v", *addr, *timeout, *n, *on)
			}
		})
	}
}
