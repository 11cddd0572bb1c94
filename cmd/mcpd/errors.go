package main

import (
	"errors"
	"flag"
)

// usageErr marks a mistake in how mcpd was called or configured: exit code 2.
type usageErr struct{ msg string }

func (e usageErr) Error() string { return e.msg }

func usageError(msg string) error { return usageErr{msg} }

func exitCode(err error) int {
	var u usageErr
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}
