package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	var got string
	cmd := func(name string) Command {
		return Command{Name: name, Summary: name + " it", Run: func(args []string, _, _ io.Writer) int {
			got = name + ":" + strings.Join(args, ",")
			return 7
		}}
	}
	cmds := []Command{cmd("serve"), cmd("migrate")}
	tests := []struct {
		args     []string
		wantCode int
		wantRun  string
		wantOut  string
	}{
		{nil, 7, "serve:", ""},
		{[]string{"--grpc-addr", ":1"}, 7, "serve:--grpc-addr,:1", ""},
		{[]string{"migrate", "--timeout", "1s"}, 7, "migrate:--timeout,1s", ""},
		{[]string{"help"}, 0, "", "migrate  migrate it"},
		{[]string{"nope"}, 2, "", ""},
	}
	for _, tt := range tests {
		got = ""
		var out, errOut bytes.Buffer
		code := Dispatch("bin", cmds, tt.args, &out, &errOut)
		if code != tt.wantCode || got != tt.wantRun || !strings.Contains(out.String(), tt.wantOut) {
			t.Errorf("Dispatch(%q) = %d, ran %q, out %q; want %d, %q, %q", tt.args, code, got, out.String(), tt.wantCode, tt.wantRun, tt.wantOut)
		}
		if code == 2 && !strings.Contains(errOut.String(), `unknown command "nope"`) {
			t.Errorf("unknown command message %q", errOut.String())
		}
	}
}
