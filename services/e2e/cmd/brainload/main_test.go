package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"one phase", []string{"--phases", "dead-postgres"}, ""},
		{"unknown phase", []string{"--phases", "grpc,chaos"}, "unknown phase"},
		{"remote target", []string{"--memory-grpc", "10.0.0.5:9091"}, "not a loopback"},
		{"remote front door", []string{"--http", "example.com:8080"}, "not a loopback"},
		{"zero concurrency", []string{"--concurrency", "0"}, "must be positive"},
		{"limit too big", []string{"--limit", "1000"}, "--limit"},
		{"stray argument", []string{"now"}, "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if o.run.concurrency != 8 || len(o.phases) == 0 {
					t.Fatalf("options %+v", o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDBConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		url     string
		env     map[string]string
		wantNil bool
		wantErr string
		host    string
	}{
		{name: "nothing given", env: map[string]string{}, wantNil: true},
		{name: "flag", url: "postgres://brain:pw@127.0.0.1:55442/brain?sslmode=disable", host: "127.0.0.1"},
		{name: "remote refused", url: "postgres://brain:pw@db.example.com:5432/brain", wantErr: "not a loopback"},
		{name: "environment", env: map[string]string{"DATABASE_URL": "postgres://brain@localhost:5432/brain"}, host: "localhost"},
		{name: "password in the environment refused, as memory does", env: map[string]string{"DATABASE_URL": "postgres://brain:pw@localhost:5432/brain"}, wantErr: "DATABASE_URL contains a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := dbConfig(options{databaseURL: tt.url}, env(tt.env))
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tt.wantNil:
				if cfg != nil {
					t.Fatalf("config %v, want none", cfg)
				}
			case cfg == nil || cfg.ConnConfig.Host != tt.host:
				t.Fatalf("config %v, want host %s", cfg, tt.host)
			}
		})
	}
}

func TestSplitEnv(t *testing.T) {
	got := strings.Join(splitEnv("127.0.0.1:6543", "u", "d", "/p"), " ")
	want := "POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=6543 POSTGRES_USER=u POSTGRES_DB=d POSTGRES_SSLMODE=disable POSTGRES_PASSWORD_FILE=/p"
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if strings.Contains(strings.Join(splitEnv("127.0.0.1:1", "u", "d", ""), " "), "PASSWORD") {
		t.Fatal("a password variable without a password")
	}
}
