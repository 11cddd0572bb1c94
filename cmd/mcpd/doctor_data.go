package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres"
)

// doctorData is `mcpd doctor --data DIR`: the database checked offline, or
// by the server that has it open.
func (e cliEnv) doctorData(dir string, asJSON bool) error {
	v, err := checkData(e, dir)
	if err != nil {
		return err
	}
	return e.reportCheckView(v, asJSON)
}

// doctorDatabase is `mcpd doctor --database URL`: the PostgreSQL database
// answers, has a schema this build reads (Open brings an older one up to
// date, as serve does) and takes a write.
func (e cliEnv) doctorDatabase(database string, asJSON bool) error {
	if err := checkDatabaseURL(database); err != nil {
		return usageError("invalid --database: " + err.Error())
	}
	v := checkView{Path: displayDatabase(database, ""), Online: true}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, database, &postgres.Options{Logger: slog.New(slog.DiscardHandler), NoTokenCache: true})
	v.Checks = append(v.Checks, checkOf(fmt.Sprintf("the database answers, at schema version %d (this mcpd's)", postgres.SchemaVersion()), err))
	if err == nil {
		defer s.Close()
		v.Checks = append(v.Checks, checkOf("a write commits", s.ProbeWrite(ctx)))
	}
	return e.reportCheckView(v, asJSON)
}

// reportCheckView prints v and fails when one of its checks did.
func (e cliEnv) reportCheckView(v checkView, asJSON bool) error {
	failed := 0
	for _, c := range v.Checks {
		if !c.OK {
			failed++
		}
	}
	if asJSON {
		if err := e.printJSON(v); err != nil {
			return err
		}
	} else {
		e.printCheckView(v)
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d of %d checks of %s failed", failed, len(v.Checks), v.Path)
	}
	return nil
}

// checkData checks dir/mcpd.db: through the admin socket when a server
// runs on dir, else by inspecting every page and running bbolt's check on
// a read-only handle.
func checkData(e cliEnv, dir string) (checkView, error) {
	if a, err := dialAdmin(dir); err == nil {
		defer a.Close()
		return a.Check(e.ctx)
	}
	path := filepath.Join(dir, store.FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return checkView{}, errNoDatabase(path)
	}
	v := checkView{Path: path}
	info, err := store.Inspect(path)
	v.Checks = append(v.Checks, checkOf("every page is inside the file, reached once and well formed", err))
	if err != nil {
		return v, nil
	}
	if info.OneMetaDamaged {
		v.Checks = append(v.Checks, check{Name: "both meta pages are valid", OK: true,
			Detail: "one is torn (a commit was cut short); bbolt uses the other, and the next write repairs it"})
	}
	_, err = store.Verify(path, 0)
	if errors.Is(err, store.ErrLocked) {
		return v, fmt.Errorf("%s is in use by a process that has no admin socket in %s: stop it, or check a copy made with `mcpd backup`", path, dir)
	}
	v.Checks = append(v.Checks, checkOf("bbolt's consistency check of every page", err))
	if err != nil {
		return v, nil
	}
	s, err := store.Open(dir, &store.Options{ReadOnly: true, Check: store.CheckQuick, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		v.Checks = append(v.Checks, checkOf("the file opens", err))
		return v, nil
	}
	defer s.Close()
	if v.Stats, err = s.Stats(e.ctx); err != nil {
		return v, err
	}
	v.Checks = append(v.Checks, schemaCheck(v.Stats.SchemaVersion))
	return v, nil
}

func (e cliEnv) printCheckView(v checkView) {
	how := "offline"
	if strings.HasPrefix(v.Path, "postgres://") {
		how = "on the server"
	} else if v.Online {
		how = "by the running server"
	}
	fmt.Fprintf(e.stdout, "%s, checked %s\n", v.Path, how)
	e.printChecks(v.Checks)
	if v.Stats.FileBytes == 0 {
		return
	}
	st := v.Stats
	fmt.Fprintf(e.stdout, "file %s: records take %s of pages (%s of keys and values)", bytesText(st.FileBytes), bytesText(st.LiveBytes), bytesText(st.DataBytes))
	if st.FreeBytes > 0 {
		fmt.Fprintf(e.stdout, ", %s of pages are free; `mcpd compact` gives the space back", bytesText(st.FreeBytes))
	}
	fmt.Fprintln(e.stdout)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tRECORDS\tDATA\tPAGES")
	for _, b := range st.Buckets {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", b.Name, b.Records, bytesText(b.DataBytes), bytesText(b.LiveBytes))
	}
	tw.Flush()
}
