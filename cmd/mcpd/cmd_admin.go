package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// adminFlags are the flags every admin subcommand shares.
type adminFlags struct {
	data          *string
	json          *bool
	passwordStdin *bool
}

func (e cliEnv) adminFlagSet(name, usage string, withJSON, withPassword bool) (*flag.FlagSet, adminFlags) {
	fs := newFlagSet(name, e.stderr, usage)
	var f adminFlags
	def := e.getenv("MCPD_DATA")
	if def == "" {
		def = defaultDataDir()
	}
	f.data = fs.String("data", def, "data directory (env MCPD_DATA)")
	if withJSON {
		f.json = fs.Bool("json", false, "print JSON")
	}
	if withPassword {
		f.passwordStdin = fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	}
	return fs, f
}

func (e cliEnv) openAdmin(f adminFlags) (admin, error) {
	return openAdmin(*f.data, slog.New(slog.DiscardHandler))
}

// readPassword reads one line of stdin; the trailing newline (and a CR
// before it) is not part of the password.
func (e cliEnv) readPassword() (string, error) {
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", usageError("empty password on standard input")
	}
	return line, nil
}

func (e cliEnv) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e cliEnv) table(header string, rows [][]string) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func (e cliEnv) user(args []string) error {
	const usage = `Usage:
  mcpd user add NAME --password-stdin
  mcpd user list [--json]
  mcpd user passwd NAME --password-stdin
  mcpd user remove NAME`
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, usage)
		return usageError("user: missing subcommand")
	}
	sub := args[0]
	switch sub {
	case "add", "passwd":
		fs, f := e.adminFlagSet("user "+sub, usage, false, true)
		pos, err := parseInterleaved(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("user " + sub + ": want exactly one NAME")
		}
		if !*f.passwordStdin {
			return usageError("user " + sub + ": pass the password on standard input with --password-stdin")
		}
		pw, err := e.readPassword()
		if err != nil {
			return err
		}
		a, err := e.openAdmin(f)
		if err != nil {
			return err
		}
		defer a.Close()
		if sub == "add" {
			if err := a.AddUser(e.ctx, pos[0], pw); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "added user %s\n", pos[0])
			return nil
		}
		if err := a.SetPassword(e.ctx, pos[0], pw); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "changed the password of %s\n", pos[0])
		return nil
	case "list":
		fs, f := e.adminFlagSet("user list", usage, true, false)
		if pos, err := parseInterleaved(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return usageError("user list takes no arguments")
		}
		a, err := e.openAdmin(f)
		if err != nil {
			return err
		}
		defer a.Close()
		users, err := a.ListUsers(e.ctx)
		if err != nil {
			return err
		}
		if *f.json {
			return e.printJSON(users)
		}
		var rows [][]string
		for _, u := range users {
			rows = append(rows, []string{u.Name, when(u.CreatedAt)})
		}
		e.table("NAME\tCREATED", rows)
		return nil
	case "remove":
		fs, f := e.adminFlagSet("user remove", usage, false, false)
		pos, err := parseInterleaved(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("user remove: want exactly one NAME")
		}
		a, err := e.openAdmin(f)
		if err != nil {
			return err
		}
		defer a.Close()
		res, err := a.RemoveUser(e.ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed user %s and ended %d grants\n", pos[0], res.Grants)
		return nil
	case "-h", "--help", "help":
		fmt.Fprintln(e.stdout, usage)
		return nil
	}
	fmt.Fprintln(e.stderr, usage)
	return usageError(fmt.Sprintf("user: unknown subcommand %q", sub))
}

func (e cliEnv) client(args []string) error {
	const usage = `Usage:
  mcpd client list [--json]
  mcpd client show ID [--json]
  mcpd client revoke ID`
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, usage)
		return usageError("client: missing subcommand")
	}
	sub := args[0]
	switch sub {
	case "list":
		fs, f := e.adminFlagSet("client list", usage, true, false)
		if pos, err := parseInterleaved(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return usageError("client list takes no arguments")
		}
		a, err := e.openAdmin(f)
		if err != nil {
			return err
		}
		defer a.Close()
		cs, err := a.ListClients(e.ctx)
		if err != nil {
			return err
		}
		if *f.json {
			return e.printJSON(cs)
		}
		var rows [][]string
		for _, c := range cs {
			rows = append(rows, []string{c.ID, c.Name, c.RegisteredBy, strings.Join(c.RedirectHosts, ","), when(c.CreatedAt), when(c.LastUsedAt), fmt.Sprint(c.LiveGrants)})
		}
		e.table("ID\tNAME\tREGISTERED\tREDIRECT HOSTS\tCREATED\tLAST USED\tLIVE GRANTS", rows)
		return nil
	case "show":
		fs, f := e.adminFlagSet("client show", usage, true, false)
		pos, err := parseInterleaved(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("client show: want exactly one ID")
		}
		a, err := e.openAdmin(f)
		if err != nil {
			return err
		}
		defer a.Close()
		c, err := a.ShowClient(e.ctx, pos[0])
		if err != nil {
			return err
		}
		if *f.json {
			return e.printJSON(c)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, kv := range [][2]string{
			{"id", c.ID}, {"name", c.Name}, {"registered by", c.RegisteredBy}, {"client uri", c.ClientURI},
			{"metadata url", c.MetadataURL}, {"redirect uris", strings.Join(c.RedirectURIs, " ")},
			{"grant types", strings.Join(c.GrantTypes, " ")}, {"scopes", strings.Join(c.Scopes, " ")},
			{"token endpoint auth", c.TokenEndpointAuthMethod}, {"created", when(c.CreatedAt)},
			{"last used", when(c.LastUsedAt)}, {"live grants", fmt.Sprint(c.LiveGrants)},
		} {
			if kv[1] != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
			}
		}
		return tw.Flush()
	case "revoke":
		fs, f := e.adminFlagSet("client revoke", usage, false, false)
		pos, err := parseInterleaved(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("client revoke: want exactly one ID")
		}
		a, err := e.openAdmin(f)
		if err != nil {
			return err
		}
		defer a.Close()
		res, err := a.RevokeClient(e.ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "revoked client %s: ended %d grants\n", pos[0], res.Grants)
		return nil
	case "-h", "--help", "help":
		fmt.Fprintln(e.stdout, usage)
		return nil
	}
	fmt.Fprintln(e.stderr, usage)
	return usageError(fmt.Sprintf("client: unknown subcommand %q", sub))
}

func (e cliEnv) consent(args []string) error {
	const usage = `Usage:
  mcpd consent list [--user NAME] [--json]
  mcpd consent revoke USER CLIENT_ID`
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, usage)
		return usageError("consent: missing subcommand")
	}
	sub := args[0]
	switch sub {
	case "list":
		fs, f := e.adminFlagSet("consent list", usage, true, false)
		user := fs.String("user", "", "only this user's consents")
		if pos, err := parseInterleaved(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return usageError("consent list takes no arguments")
		}
		a, err := e.openAdmin(f)
		if err != nil {
			return err
		}
		defer a.Close()
		cs, err := a.ListConsents(e.ctx, *user)
		if err != nil {
			return err
		}
		if *f.json {
			return e.printJSON(cs)
		}
		var rows [][]string
		for _, c := range cs {
			rows = append(rows, []string{c.User, c.ClientID, strings.Join(c.Scopes, " "), c.RedirectHost, when(c.ExpiresAt)})
		}
		e.table("USER\tCLIENT\tSCOPES\tREDIRECT HOST\tEXPIRES", rows)
		return nil
	case "revoke":
		fs, f := e.adminFlagSet("consent revoke", usage, false, false)
		pos, err := parseInterleaved(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 2 {
			return usageError("consent revoke: want USER and CLIENT_ID")
		}
		a, err := e.openAdmin(f)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := a.RevokeConsent(e.ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "forgot the consent of %s for %s\n", pos[0], pos[1])
		return nil
	case "-h", "--help", "help":
		fmt.Fprintln(e.stdout, usage)
		return nil
	}
	fmt.Fprintln(e.stderr, usage)
	return usageError(fmt.Sprintf("consent: unknown subcommand %q", sub))
}

func (e cliEnv) backup(args []string) error {
	const usage = `Usage: mcpd backup FILE

Writes a consistent copy of the database to FILE (mode 0600), online when
the server runs. Restore by stopping the server and copying FILE to
DATA/mcpd.db.`
	fs, f := e.adminFlagSet("backup", usage, false, false)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("backup: want exactly one FILE")
	}
	a, err := e.openAdmin(f)
	if err != nil {
		return err
	}
	defer a.Close()
	dst := pos[0]
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".mcpd-backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	n, err := a.Backup(e.ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %d bytes to %s\n", n, dst)
	return nil
}
