package cli

import (
	"fmt"
	"io"
	"strings"
)

// Command is one subcommand of a binary.
type Command struct {
	Name    string
	Summary string
	Run     func(args []string, stdout, stderr io.Writer) int
}

// Dispatch runs the subcommand named by args[0], or the first command when
// args is empty or starts with a flag (so `memory --grpc-addr :1` serves).
// `help` lists the commands. It returns the process exit code.
func Dispatch(binary string, cmds []Command, args []string, stdout, stderr io.Writer) int {
	name := cmds[0].Name
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	for _, c := range cmds {
		if c.Name == name {
			return c.Run(args, stdout, stderr)
		}
	}
	var names []string
	for _, c := range cmds {
		names = append(names, c.Name)
	}
	if name == "help" || len(args) == 0 && (name == "-h" || name == "--help") {
		fmt.Fprintf(stdout, "usage: %s [command] [flags]   (%s -h for a command's flags)\n\n", binary, binary+" <command>")
		for _, c := range cmds {
			fmt.Fprintf(stdout, "  %-8s %s\n", c.Name, c.Summary)
		}
		return 0
	}
	fmt.Fprintf(stderr, "%s: unknown command %q (%s)\n", binary, name, strings.Join(names, ", "))
	return 2
}

// HealthCommand is the `health` subcommand for a binary whose gRPC listen
// address is in GRPC_ADDR (default defListen).
func HealthCommand(getenv func(string) string, defListen string) Command {
	return Command{Name: "health", Summary: "gRPC health check of the local server; exit 0 when SERVING",
		Run: func(args []string, stdout, stderr io.Writer) int {
			return Health(args, LocalAddr(getenv("GRPC_ADDR"), defListen), stdout, stderr)
		}}
}

// VersionCommand is the `version` subcommand.
func VersionCommand(binary string) Command {
	return Command{Name: "version", Summary: "print build information",
		Run: func(_ []string, stdout, _ io.Writer) int {
			fmt.Fprintln(stdout, Version(binary))
			return 0
		}}
}
