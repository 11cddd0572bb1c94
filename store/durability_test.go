package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

// childEnv names the data directory when the test binary runs as the
// durability writer.
const childEnv = "MCPD_STORE_DURABILITY_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := durabilityChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// durabilityChild writes grants from several goroutines as fast as it can
// until killed, printing "ack <id>" after each write returned success. Odd
// workers write in a transaction as fosite's token endpoint does, even
// ones through batched single writes.
func durabilityChild(dir string) error {
	s, err := store.Open(dir, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := s.CreateClient(ctx, &store.Client{ID: "c1", TokenEndpointAuthMethod: "none"}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return err
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%d-%d-%d", os.Getpid(), w, i)
				req := newGrant(id, "c1", "alice")
				var err error
				if w%2 == 1 {
					err = writeInTx(ctx, s, id, req)
				} else {
					err = s.CreateAccessTokenSession(ctx, "at-"+id, req)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintln(out, "ack", id)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return nil
}

func writeInTx(ctx context.Context, s *store.Store, id string, req fosite.Requester) error {
	tctx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	if err := s.CreateAccessTokenSession(tctx, "at-"+id, req); err != nil {
		s.Rollback(tctx)
		return err
	}
	if err := s.CreateRefreshTokenSession(tctx, "rt-"+id, "at-"+id, req); err != nil {
		s.Rollback(tctx)
		return err
	}
	return s.Commit(tctx)
}

func TestDurability(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for round := range 4 {
		t.Run(fmt.Sprintf("round %d: every grant acknowledged before SIGKILL is in the reopened, consistent file", round), func(t *testing.T) {
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), childEnv+"="+dir)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 1024)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			select {
			case l := <-lines:
				if l != "ready" {
					t.Fatalf("writer said %q; want ready", l)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("writer not ready within 10s: %s", stderr.String())
			}
			// The kill comes at a random instant after the first
			// acknowledgement, so a loaded machine that is slow to make the
			// first durable write still gets a kill with writes in flight.
			var acked []string
			var kill <-chan time.Time
		read:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						break read
					}
					if id, found := strings.CutPrefix(l, "ack "); found {
						acked = append(acked, id)
						if len(acked) == 1 {
							kill = time.After(time.Duration(150+rand.IntN(500)) * time.Millisecond)
						}
					}
				case <-kill:
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					kill = nil
				}
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("writer ended with %v, not SIGKILL: %s", err, stderr.String())
			}
			if len(acked) == 0 {
				t.Fatalf("writer acknowledged nothing before the kill")
			}

			s, err := store.Open(dir, nil)
			if err != nil {
				t.Fatalf("reopen after SIGKILL: %v", err)
			}
			defer s.Close()
			if err := s.Check(); err != nil {
				t.Errorf("Check after SIGKILL: %v", err)
			}
			missing := 0
			for _, id := range acked {
				if _, err := s.GetAccessTokenSession(context.Background(), "at-"+id, nil); err != nil {
					missing++
					if missing <= 5 {
						t.Errorf("acknowledged grant %s: %v", id, err)
					}
				}
			}
			t.Logf("%d acknowledged grants, %d missing", len(acked), missing)
		})
	}
}
