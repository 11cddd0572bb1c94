package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/mcpd/mcpd/store"
)

// adminFlags are the flags every admin subcommand shares.
type adminFlags struct {
	data          *string
	database      *string
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
	f.database = fs.String("database", e.getenv("MCPD_DATABASE"), databaseUsage+" (env MCPD_DATABASE)")
	if withJSON {
		f.json = fs.Bool("json", false, "print JSON")
	}
	if withPassword {
		f.passwordStdin = fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	}
	return fs, f
}

// openAdmin opens the admin of the command's database. Without --database
// the bbolt file DATA/mcpd.db must exist: a command run on the wrong
// directory, or without --database on a PostgreSQL deployment, would
// otherwise work on an empty file it made. create allows making it, for
// `mcpd user add`, which sets up the first user of a new directory (as
// release v1 did); it says so on stderr.
func (e cliEnv) openAdmin(f adminFlags, create bool) (admin, error) {
	created := false
	if *f.database == "" {
		path := filepath.Join(*f.data, store.FileName)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			// No server runs on a directory without its file.
			if !create {
				return nil, errNoDatabase(path)
			}
			created = true
		}
	}
	a, err := openAdmin(e.ctx, *f.data, *f.database, slog.New(slog.DiscardHandler))
	if err == nil && created {
		fmt.Fprintf(e.stderr, "mcpd: created a new database at %s (on a PostgreSQL deployment, pass --database instead)\n", filepath.Join(*f.data, store.FileName))
	}
	return a, err
}

// errNoDatabase is the answer of an admin command run on a data directory
// without a database.
func errNoDatabase(path string) error {
	return fmt.Errorf("no database at %s — start `mcpd serve` once, or pass --database for PostgreSQL", path)
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
	if !utf8.ValidString(line) {
		return "", usageError("the password on standard input is not valid UTF-8")
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

// adminCmd is one admin subcommand: its positional arguments, its optional
// flags, and what it does with an open admin.
type adminCmd struct {
	args     []string // names of the positional arguments, for messages
	json     bool     // takes --json
	password bool     // needs --password-stdin
	userFlag bool     // takes --user NAME
	// email makes --email ADDR available, and with it --password-stdin
	// optional (a user who signs in only through an identity provider).
	email  bool
	remove bool // takes --remove ID
	// creates lets it make DATA/mcpd.db when there is none (user add).
	creates bool
	run     func(e cliEnv, a admin, in adminInput) error
}

// adminInput is what a subcommand was given.
type adminInput struct {
	pos      []string
	json     bool
	password string
	user     string
	email    string
	remove   string
}

// dispatch runs the subcommand args[0] of group (user, client, consent).
func (e cliEnv) dispatch(group, usage string, cmds map[string]adminCmd, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, usage)
		return usageError(group + ": missing subcommand")
	}
	sub := args[0]
	cmd, ok := cmds[sub]
	if !ok {
		if sub == "-h" || sub == "--help" || sub == "help" {
			fmt.Fprintln(e.stdout, usage)
			return nil
		}
		fmt.Fprintln(e.stderr, usage)
		return usageError(fmt.Sprintf("%s: unknown subcommand %q", group, sub))
	}
	name := group + " " + sub
	fs, f := e.adminFlagSet(name, usage, cmd.json, cmd.password)
	var user, email, remove *string
	if cmd.userFlag {
		user = fs.String("user", "", "only this user's entries")
	}
	if cmd.email {
		email = fs.String("email", "", "the user's email address, by which a sign-in at an identity provider finds the user")
	}
	if cmd.remove {
		remove = fs.String("remove", "", "remove the passkey of this ID (as listed)")
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != len(cmd.args) {
		if len(cmd.args) == 0 {
			return usageError(name + " takes no arguments")
		}
		return usageError(fmt.Sprintf("%s: want %s", name, strings.Join(cmd.args, " and ")))
	}
	// Arguments travel to a running server as JSON, which would turn bytes
	// that are not UTF-8 into U+FFFD: the name stored would not be the
	// name given. Refuse them here, the same with the server up or down.
	for i, p := range pos {
		if !utf8.ValidString(p) {
			return usageError(fmt.Sprintf("%s: %s %q is not valid UTF-8", name, cmd.args[i], p))
		}
	}
	if user != nil && !utf8.ValidString(*user) {
		return usageError(fmt.Sprintf("%s: --user %q is not valid UTF-8", name, *user))
	}
	in := adminInput{pos: pos}
	if cmd.json {
		in.json = *f.json
	}
	if user != nil {
		in.user = *user
	}
	if remove != nil {
		in.remove = *remove
	}
	if email != nil && *email != "" {
		if _, err := store.NormalizeEmail(*email); err != nil {
			return usageError(fmt.Sprintf("%s: --email %q is not an email address", name, *email))
		}
		in.email = *email
	}
	if cmd.password && !*f.passwordStdin && in.email == "" {
		if cmd.email {
			return usageError(name + ": pass the password on standard input with --password-stdin, or give --email ADDR for a user who signs in with an identity provider")
		}
		return usageError(name + ": pass the password on standard input with --password-stdin")
	}
	if cmd.password && *f.passwordStdin {
		if in.password, err = e.readPassword(); err != nil {
			return err
		}
	}
	a, err := e.openAdmin(f, cmd.creates)
	if err != nil {
		return err
	}
	defer a.Close()
	return cmd.run(e, a, in)
}

func (e cliEnv) user(args []string) error {
	const usage = `Usage:
  mcpd user add NAME --password-stdin [--email ADDR]
  mcpd user add NAME --email ADDR       (no password: signs in with an identity provider)
  mcpd user email NAME ADDR
  mcpd user unlink NAME PROVIDER        (forget the user's accounts at that identity provider)
  mcpd user list [--json]
  mcpd user passwd NAME --password-stdin
  mcpd user passkeys NAME [--json] [--remove ID]
  mcpd user remove NAME`
	return e.dispatch("user", usage, map[string]adminCmd{
		"add": {args: []string{"NAME"}, password: true, email: true, creates: true, run: func(e cliEnv, a admin, in adminInput) error {
			var err error
			if in.email != "" {
				err = a.AddUserWithEmail(e.ctx, in.pos[0], in.password, in.email)
			} else {
				err = a.AddUser(e.ctx, in.pos[0], in.password)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "added user %s\n", in.pos[0])
			return nil
		}},
		"email": {args: []string{"NAME", "ADDR"}, run: func(e cliEnv, a admin, in adminInput) error {
			if _, err := store.NormalizeEmail(in.pos[1]); err != nil {
				return usageError(fmt.Sprintf("user email: %q is not an email address", in.pos[1]))
			}
			if err := a.SetUserEmail(e.ctx, in.pos[0], in.pos[1]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "set the email of %s to %s\n", in.pos[0], in.pos[1])
			return nil
		}},
		"unlink": {args: []string{"NAME", "PROVIDER"}, run: func(e cliEnv, a admin, in adminInput) error {
			n, err := a.UnlinkUser(e.ctx, in.pos[0], in.pos[1])
			if err != nil {
				return err
			}
			word := "identities"
			if n == 1 {
				word = "identity"
			}
			fmt.Fprintf(e.stdout, "unlinked %d %s of %s at %s\n", n, word, in.pos[0], in.pos[1])
			return nil
		}},
		"passwd": {args: []string{"NAME"}, password: true, run: func(e cliEnv, a admin, in adminInput) error {
			if err := a.SetPassword(e.ctx, in.pos[0], in.password); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "changed the password of %s and signed %[1]s out of every browser\n", in.pos[0])
			return nil
		}},
		"list": {json: true, run: func(e cliEnv, a admin, in adminInput) error {
			users, err := a.ListUsers(e.ctx)
			if err != nil || in.json {
				return e.jsonOr(users, err, in.json)
			}
			var rows [][]string
			for _, u := range users {
				var providers []string
				for _, id := range u.Identities {
					if !slices.Contains(providers, id.Provider) {
						providers = append(providers, id.Provider)
					}
				}
				rows = append(rows, []string{u.Name, orDash(u.Email), orDash(strings.Join(providers, ",")), when(u.CreatedAt), fmt.Sprint(u.Passkeys)})
			}
			e.table("NAME\tEMAIL\tPROVIDERS\tCREATED\tPASSKEYS", rows)
			return nil
		}},
		"passkeys": {args: []string{"NAME"}, json: true, remove: true, run: func(e cliEnv, a admin, in adminInput) error {
			if in.remove != "" {
				if err := a.RemovePasskey(e.ctx, in.pos[0], in.remove); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "removed passkey %s of %s\n", in.remove, in.pos[0])
				return nil
			}
			keys, err := a.ListPasskeys(e.ctx, in.pos[0])
			if err != nil || in.json {
				return e.jsonOr(keys, err, in.json)
			}
			var rows [][]string
			for _, k := range keys {
				rows = append(rows, []string{k.ID, k.Name, when(k.CreatedAt), when(k.LastUsedAt)})
			}
			e.table("ID\tNAME\tCREATED\tLAST USED", rows)
			return nil
		}},
		"remove": {args: []string{"NAME"}, run: func(e cliEnv, a admin, in adminInput) error {
			res, err := a.RemoveUser(e.ctx, in.pos[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "removed user %s and ended %d grants\n", in.pos[0], res.Grants)
			return nil
		}},
	}, args)
}

func (e cliEnv) client(args []string) error {
	const usage = `Usage:
  mcpd client list [--json]
  mcpd client show ID [--json]
  mcpd client revoke ID`
	return e.dispatch("client", usage, map[string]adminCmd{
		"list": {json: true, run: func(e cliEnv, a admin, in adminInput) error {
			cs, err := a.ListClients(e.ctx)
			if err != nil || in.json {
				return e.jsonOr(cs, err, in.json)
			}
			var rows [][]string
			for _, c := range cs {
				rows = append(rows, []string{c.ID, c.Name, c.RegisteredBy, strings.Join(c.RedirectHosts, ","), when(c.CreatedAt), when(c.LastUsedAt), fmt.Sprint(c.LiveGrants)})
			}
			e.table("ID\tNAME\tREGISTERED\tREDIRECT HOSTS\tCREATED\tLAST USED\tLIVE GRANTS", rows)
			return nil
		}},
		"show": {args: []string{"ID"}, json: true, run: func(e cliEnv, a admin, in adminInput) error {
			c, err := a.ShowClient(e.ctx, in.pos[0])
			if err != nil || in.json {
				return e.jsonOr(c, err, in.json)
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
		}},
		"revoke": {args: []string{"ID"}, run: func(e cliEnv, a admin, in adminInput) error {
			res, err := a.RevokeClient(e.ctx, in.pos[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "revoked client %s: ended %d grants\n", in.pos[0], res.Grants)
			return nil
		}},
	}, args)
}

func (e cliEnv) consent(args []string) error {
	const usage = `Usage:
  mcpd consent list [--user NAME] [--json]
  mcpd consent revoke USER CLIENT_ID`
	return e.dispatch("consent", usage, map[string]adminCmd{
		"list": {json: true, userFlag: true, run: func(e cliEnv, a admin, in adminInput) error {
			cs, err := a.ListConsents(e.ctx, in.user)
			if err != nil || in.json {
				return e.jsonOr(cs, err, in.json)
			}
			var rows [][]string
			for _, c := range cs {
				rows = append(rows, []string{c.User, c.ClientID, strings.Join(c.Scopes, " "), c.RedirectHost, when(c.ExpiresAt)})
			}
			e.table("USER\tCLIENT\tSCOPES\tREDIRECT HOST\tEXPIRES", rows)
			return nil
		}},
		"revoke": {args: []string{"USER", "CLIENT_ID"}, run: func(e cliEnv, a admin, in adminInput) error {
			if err := a.RevokeConsent(e.ctx, in.pos[0], in.pos[1]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "forgot the consent of %s for %s\n", in.pos[0], in.pos[1])
			return nil
		}},
	}, args)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// jsonOr returns err, or prints v as JSON when asJSON.
func (e cliEnv) jsonOr(v any, err error, asJSON bool) error {
	if err != nil {
		return err
	}
	if asJSON {
		return e.printJSON(v)
	}
	return nil
}

func (e cliEnv) backup(args []string) error {
	const usage = `Usage: mcpd backup FILE

Writes a consistent copy of the database to FILE (mode 0600), online when
the server runs. Restore by stopping the server and copying FILE to
DATA/mcpd.db. On PostgreSQL (--database, MCPD_DATABASE) use pg_dump and
pg_restore instead.`
	fs, f := e.adminFlagSet("backup", usage, false, false)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("backup: want exactly one FILE")
	}
	if *f.database != "" {
		return errBackupPostgres
	}
	a, err := e.openAdmin(f, false)
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
