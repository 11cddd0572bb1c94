// Package postgres is mcpd's PostgreSQL backend: a second implementation of
// store.Backend, for several replicas of mcpd on one database. It keeps the
// records of package store in the JSON that package encodes (a data column)
// next to the columns its queries need, keys tokens and JTIs by
// store.SigHash, and passes the same conformance suite (store/storetest)
// as the bbolt store.
//
// What replicas must share lives in the database: the token HMAC secret
// (Secret), refresh rotation and single-use codes (row locks taken by one
// statement each), client-assertion JTIs, refresh successors, and the
// locks of LockKey and of the janitor (advisory locks: one replica sweeps
// at a time). The schema is versioned SQL embedded from migrations/,
// applied at Open in one transaction under an advisory lock, so replicas
// that start at once do not race, and recorded in mcpd_schema_migrations.
//
// LookupAccessToken answers repeated bearer tokens from a cache that is
// trusted only while the process listens (LISTEN/NOTIFY through
// github.com/jackc/pgxlisten) for the revocations other processes make, and
// only for Options.TokenCacheMaxAge: a revocation on one replica is
// refused by every other within that age, and usually within
// milliseconds.
//
// An error that means the database cannot take the request now but may
// later (its disk full, SQLSTATE 53100; read-only, 25006, as a hot standby
// after a failover; out of resources; stopped, restarting or out of reach)
// is store.ErrUnavailable, logged once a minute and followed by Health, as
// the bbolt store does for its disk; the pool reconnects by itself.
//
// The package must not import any other mcpd package than store, and it
// never logs a token, code, secret, password or the database password.
//
//	s, err := postgres.Open(ctx, "postgres://mcpd:…@db:5432/mcpd", &postgres.Options{Logger: logger})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	go s.RunJanitor(ctx, 5*time.Minute)
package postgres
