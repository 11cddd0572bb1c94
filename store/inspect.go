package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt maps the database file into memory and trusts what it reads: a
// truncated file makes it read past the end of the file (SIGBUS), a
// damaged page makes it index out of range (a panic). So a file is
// inspected before bbolt opens it, with plain reads that cannot fault, and
// bbolt's open is run with faults turned into panics and recovered. What is
// found is an ErrDamaged whose message names the way out.
//
// The layout read here is bbolt's (go.etcd.io/bbolt/internal/common): a
// page starts with a 16-byte header (id uint64, flags uint16, count uint16,
// overflow uint32); pages 0 and 1 hold the two meta pages (magic, version,
// page size, flags, root bucket page and sequence, freelist page, page
// count, transaction id, and an FNV-64a checksum of the fields before it),
// native-endian as bbolt writes them on the machines mcpd runs on.

// ErrDamaged is returned by Open and Inspect for a database file that is
// not a whole bbolt file.
var ErrDamaged = errors.New("database file is damaged")

// ErrUnwritable is returned by Open when the data directory or the
// database file cannot be written.
var ErrUnwritable = errors.New("data directory is not writable")

// DamagedError says what is wrong with a database file and how to get out.
type DamagedError struct {
	Path   string
	Reason string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s is damaged (%s): restore the last backup: stop mcpd, copy the file `mcpd backup` wrote to %s, and start mcpd again", e.Path, e.Reason, e.Path)
}

// Unwrap makes a DamagedError match ErrDamaged.
func (e *DamagedError) Unwrap() error { return ErrDamaged }

func damaged(path, format string, args ...any) error {
	return &DamagedError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// bbolt's constants (go.etcd.io/bbolt/internal/common).
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	metaSize         = 64 // with the checksum
	metaSumLen       = 56 // the fields the checksum covers
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
	minPageSize      = 512
	maxPageSize      = 64 << 10
)

// FileInfo is what Inspect read of a database file.
type FileInfo struct {
	Bytes    int64  // the file's size
	PageSize int    // bbolt's page size
	Pages    uint64 // the high-water mark: pages the file must hold
	TxID     uint64 // the last committed transaction
	// RootPage and FreelistPage are where the meta page in use puts the
	// root bucket and the freelist.
	RootPage, FreelistPage uint64
	// FreePages is how many pages the freelist lists.
	FreePages int
	// OneMetaDamaged: one of the two meta pages is invalid, and bbolt uses
	// the other, older one. A crash during a commit can leave this; later
	// commits rewrite it.
	OneMetaDamaged bool
}

type bmeta struct {
	magic, version, pageSize, flags uint32
	root, freelist, pgid, txid      uint64
	checksum                        uint64
}

func (m bmeta) valid() bool {
	return m.magic == boltMagic && m.version == boltVersion && m.pageSize >= minPageSize &&
		m.pageSize <= maxPageSize && m.pageSize&(m.pageSize-1) == 0
}

// readMeta reads meta page id (0 or 1) at off; header reports whether its
// page header names it as that meta page, ok whether the meta is valid.
func readMeta(f io.ReaderAt, off int64, id uint64) (m bmeta, header, ok bool) {
	var b [pageHeaderSize + metaSize]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return m, false, false
	}
	ne := binary.NativeEndian
	if ne.Uint64(b[:]) != id || ne.Uint16(b[8:]) != metaPageFlag {
		return m, false, false
	}
	p := b[pageHeaderSize:]
	m = bmeta{
		magic: ne.Uint32(p[0:]), version: ne.Uint32(p[4:]), pageSize: ne.Uint32(p[8:]), flags: ne.Uint32(p[12:]),
		root: ne.Uint64(p[16:]), freelist: ne.Uint64(p[32:]), pgid: ne.Uint64(p[40:]), txid: ne.Uint64(p[48:]),
		checksum: ne.Uint64(p[56:]),
	}
	h := fnv.New64a()
	h.Write(p[:metaSumLen])
	return m, true, m.valid() && h.Sum64() == m.checksum
}

// Inspect checks a database file without opening it with bbolt: that it is
// a bbolt file, that a meta page is valid, that the file holds every page
// that meta page counts, that its freelist names only pages of the file,
// and that every page of every bucket's tree is inside the file, reached
// once, not free, a tree page, with its elements inside it. It reads each
// page in use once (a few milliseconds for a file of tens of megabytes),
// with reads that cannot fault, so that bbolt never meets a page it would
// read past. What it does not check, bbolt's own check does (Store.Check):
// the order of keys and the pages neither used nor free. A missing file
// is fs.ErrNotExist; a damaged one an ErrDamaged.
func Inspect(path string) (FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileInfo{}, openError(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return FileInfo{}, err
	}
	if !st.Mode().IsRegular() {
		return FileInfo{Bytes: st.Size()}, damaged(path, "it is not a regular file")
	}
	return inspect(f, st.Size(), path)
}

// inspect is Inspect of the size bytes f reads; path names it in errors.
func inspect(f io.ReaderAt, size int64, path string) (FileInfo, error) {
	var err error
	info := FileInfo{Bytes: size}
	if info.Bytes == 0 {
		return info, damaged(path, "the file is empty; if mcpd never ran here, delete it")
	}
	m0, h0, ok0 := readMeta(f, 0, 0)
	var m1 bmeta
	h1, ok1 := false, false
	if ok0 {
		m1, h1, ok1 = readMeta(f, int64(m0.pageSize), 1)
	} else {
		for ps := int64(minPageSize); ps <= maxPageSize && !ok1; ps *= 2 {
			if m1, h1, ok1 = readMeta(f, ps, 1); ok1 && int64(m1.pageSize) != ps {
				h1, ok1 = false, false
			}
		}
	}
	var m bmeta
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case ok0:
		m = m0
	default:
		var head [4]byte
		if _, err := f.ReadAt(head[:], pageHeaderSize); err == nil && binary.NativeEndian.Uint32(head[:]) == boltMagic {
			return info, damaged(path, "both of its meta pages are corrupt")
		}
		return info, damaged(path, "it is not a bbolt database file")
	}
	info.OneMetaDamaged = !ok0 || !ok1
	info.PageSize, info.Pages, info.TxID = int(m.pageSize), m.pgid, m.txid
	info.RootPage, info.FreelistPage = m.root, m.freelist
	ps := int64(m.pageSize)
	if m.pgid < 4 || m.pgid > uint64(1<<62)/uint64(ps) {
		return info, damaged(path, "its meta page counts %d pages", m.pgid)
	}
	if need := int64(m.pgid) * ps; info.Bytes < need {
		return info, damaged(path, "it is truncated: %d bytes, and its pages need %d", info.Bytes, need)
	}
	// A commit cut short can leave one meta page's fields torn, and bbolt
	// then uses the other; but a meta page whose header is not a meta
	// page's was damaged after it was written, and bbolt's check stops on it.
	if !h0 {
		return info, damaged(path, "meta page 0 is corrupt")
	}
	if !h1 {
		return info, damaged(path, "meta page 1 is corrupt")
	}
	if m.root < 2 || m.root >= m.pgid {
		return info, damaged(path, "its root page %d is outside the file's %d pages", m.root, m.pgid)
	}
	if flags, err := pageFlags(f, ps, m.root); err != nil || (flags != branchPageFlag && flags != leafPageFlag) {
		return info, damaged(path, "its root page %d is not a tree page", m.root)
	}
	var free []uint64
	if m.freelist != noFreelist {
		if m.freelist < 2 || m.freelist >= m.pgid {
			return info, damaged(path, "its freelist page %d is outside the file's %d pages", m.freelist, m.pgid)
		}
		if free, err = readFreelist(f, ps, m.freelist, m.pgid); err != nil {
			return info, damaged(path, "its freelist page %d is corrupt: %v", m.freelist, err)
		}
	}
	w := &walker{f: f, pageSize: ps, pgid: m.pgid, used: make([]uint64, (m.pgid+63)/64),
		budget: int64(m.pgid) * ps / 16}
	if err := w.tree(m.root, 0, true); err != nil {
		return info, damaged(path, "%v", err)
	}
	for _, id := range free {
		if w.isUsed(id) {
			return info, damaged(path, "page %d is both free and in use", id)
		}
	}
	info.FreePages = len(free)
	return info, nil
}

// pageFlags reads the flags of page id and checks the header names it.
func pageFlags(f io.ReaderAt, pageSize int64, id uint64) (uint16, error) {
	var h [pageHeaderSize]byte
	if _, err := f.ReadAt(h[:], int64(id)*pageSize); err != nil {
		return 0, err
	}
	if got := binary.NativeEndian.Uint64(h[:]); got != id {
		return 0, fmt.Errorf("page %d says it is page %d", id, got)
	}
	return binary.NativeEndian.Uint16(h[8:]), nil
}

// readFreelist reads the freelist page and checks that it fits in its
// pages and lists only pages past the meta pages and below the high-water
// mark.
func readFreelist(f io.ReaderAt, pageSize int64, id, pgid uint64) ([]uint64, error) {
	var h [pageHeaderSize + 8]byte
	if _, err := f.ReadAt(h[:], int64(id)*pageSize); err != nil {
		return nil, err
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(h[:]); got != id {
		return nil, fmt.Errorf("it says it is page %d", got)
	}
	if flags := ne.Uint16(h[8:]); flags != freelistPageFlag {
		return nil, fmt.Errorf("flags %#x", flags)
	}
	overflow := uint64(ne.Uint32(h[12:]))
	if id+overflow >= pgid {
		return nil, fmt.Errorf("it runs past the file's %d pages", pgid)
	}
	count, skip := uint64(ne.Uint16(h[10:])), uint64(0)
	if count == 0xFFFF {
		count, skip = ne.Uint64(h[pageHeaderSize:]), 1
	}
	room := ((overflow+1)*uint64(pageSize) - pageHeaderSize) / 8
	if count > room || count+skip > room {
		return nil, fmt.Errorf("it lists %d pages in room for %d", count, room)
	}
	raw := make([]byte, count*8)
	if _, err := f.ReadAt(raw, int64(id)*pageSize+pageHeaderSize+int64(skip)*8); err != nil {
		return nil, err
	}
	ids := make([]uint64, count)
	for i := range ids {
		if ids[i] = ne.Uint64(raw[i*8:]); ids[i] < 2 || ids[i] >= pgid {
			return nil, fmt.Errorf("it lists page %d, outside 2…%d", ids[i], pgid-1)
		}
	}
	return ids, nil
}

// maxTreeDepth bounds the nesting of pages and buckets the walk follows; a
// B+tree of a file mcpd writes is a few levels deep.
const maxTreeDepth = 64

// walker reads every page reachable from the root bucket with plain reads
// and checks what bbolt would otherwise trust: that each page is inside
// the file and reached once, that its header names it and has a tree
// page's flags, and that every element, key, value and nested bucket lies
// inside its page.
type walker struct {
	f        io.ReaderAt
	pageSize int64
	pgid     uint64
	used     []uint64 // bit per page: reached
	// budget is how many more elements the walk reads: no more than the
	// file's pages can hold, so that inline buckets pointing into each
	// other cannot make it run for ever.
	budget int64
}

// spend takes n elements off the budget.
func (w *walker) spend(id uint64, n int) error {
	if w.budget -= int64(n); w.budget < 0 {
		return fmt.Errorf("page %d: its buckets hold more elements than the file has room for", id)
	}
	return nil
}

func (w *walker) isUsed(id uint64) bool { return w.used[id/64]&(1<<(id%64)) != 0 }

// page reads page id with its overflow pages.
func (w *walker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.pgid {
		return nil, fmt.Errorf("a tree points at page %d, outside the file's %d pages", id, w.pgid)
	}
	var h [pageHeaderSize]byte
	if _, err := w.f.ReadAt(h[:], int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(h[:]); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	overflow := uint64(ne.Uint32(h[12:]))
	if overflow >= w.pgid-id {
		return nil, fmt.Errorf("page %d runs past the end of the file", id)
	}
	for p := id; p <= id+overflow; p++ {
		if w.isUsed(p) {
			return nil, fmt.Errorf("page %d is reached twice", p)
		}
		w.used[p/64] |= 1 << (p % 64)
	}
	buf := make([]byte, int64(overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(buf, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	return buf, nil
}

// tree checks the B+tree whose root is page id; top is set for the root
// bucket's tree, which holds only buckets.
func (w *walker) tree(id uint64, depth int, top bool) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("page %d is nested deeper than %d levels", id, maxTreeDepth)
	}
	p, err := w.page(id)
	if err != nil {
		return err
	}
	ne := binary.NativeEndian
	switch flags := ne.Uint16(p[8:]); flags {
	case branchPageFlag:
		count := int(ne.Uint16(p[10:]))
		if pageHeaderSize+count*16 > len(p) {
			return fmt.Errorf("branch page %d holds %d elements in %d bytes", id, count, len(p))
		}
		if err := w.spend(id, count); err != nil {
			return err
		}
		for i := range count {
			e := pageHeaderSize + i*16
			pos, ksize := int(ne.Uint32(p[e:])), int(ne.Uint32(p[e+4:]))
			if e+pos+ksize > len(p) || pos < 0 || ksize < 0 {
				return fmt.Errorf("branch page %d: element %d lies outside the page", id, i)
			}
			if err := w.tree(ne.Uint64(p[e+8:]), depth+1, top); err != nil {
				return err
			}
		}
		return nil
	case leafPageFlag:
		return w.leaf(p, id, depth, top)
	default:
		return fmt.Errorf("page %d has flags %#x where a tree page should be", id, flags)
	}
}

// leaf checks a leaf page (or an inline bucket's page, id 0) and the
// buckets it holds.
func (w *walker) leaf(p []byte, id uint64, depth int, top bool) error {
	ne := binary.NativeEndian
	count := int(ne.Uint16(p[10:]))
	if pageHeaderSize+count*16 > len(p) {
		return fmt.Errorf("leaf page %d holds %d elements in %d bytes", id, count, len(p))
	}
	if err := w.spend(id, count); err != nil {
		return err
	}
	for i := range count {
		e := pageHeaderSize + i*16
		flags, pos := ne.Uint32(p[e:]), int(ne.Uint32(p[e+4:]))
		ksize, vsize := int(ne.Uint32(p[e+8:])), int(ne.Uint32(p[e+12:]))
		end := e + pos + ksize + vsize
		if pos < 0 || ksize < 0 || vsize < 0 || end > len(p) || end < e {
			return fmt.Errorf("leaf page %d: element %d lies outside the page", id, i)
		}
		if flags&1 == 0 { // a key and its value
			if top {
				return fmt.Errorf("leaf page %d: the root bucket holds a value, where bbolt keeps only buckets", id)
			}
			continue
		}
		v := p[e+pos+ksize : end]
		if len(v) < 16 {
			return fmt.Errorf("leaf page %d: bucket %d has a %d-byte header", id, i, len(v))
		}
		if root := ne.Uint64(v); root != 0 {
			if err := w.tree(root, depth+1, false); err != nil {
				return err
			}
			continue
		}
		inline := v[16:] // a bucket small enough to live in its parent's page
		if len(inline) < pageHeaderSize || ne.Uint16(inline[8:]) != leafPageFlag {
			return fmt.Errorf("leaf page %d: inline bucket %d is not a leaf page", id, i)
		}
		if depth+1 > maxTreeDepth {
			return fmt.Errorf("leaf page %d: buckets nested deeper than %d levels", id, maxTreeDepth)
		}
		if err := w.leaf(inline, 0, depth+1, false); err != nil {
			return err
		}
	}
	return nil
}

// Verify checks a database file as Open does with CheckFull, without
// opening it for writing: Inspect, then bbolt's check of every page through
// a read-only handle (which takes the file's shared lock, so it fails with
// ErrLocked while a server has the file open).
func Verify(path string, lockTimeout time.Duration) (FileInfo, error) {
	info, err := Inspect(path)
	if err != nil {
		return info, err
	}
	return info, checkPages(path, lockTimeout)
}

// checkPages runs bbolt's consistency check over a file Inspect passed,
// through a read-only handle of its own, closed afterwards: the pages the
// check reads leave this process's memory with it.
func checkPages(path string, lockTimeout time.Duration) error {
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		return err
	}
	defer db.Close()
	var problems []error
	err = guard(path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				problems = append(problems, err)
			}
			return nil
		})
	})
	switch {
	case err != nil:
		return err
	case len(problems) == 1:
		return damaged(path, "bbolt's check: %v", problems[0])
	case len(problems) > 1:
		return damaged(path, "bbolt's check: %v, and %d more problems", problems[0], len(problems)-1)
	}
	return nil
}

// guard runs fn, part of bbolt's open of path, with memory faults turned
// into panics, and turns a panic into an ErrDamaged: bbolt reading a
// damaged page past its slices or its memory map.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = damaged(path, "reading it failed: %v", p)
		}
	}()
	return fn()
}

// openError turns an error opening or creating path into one that says
// what to do about it.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return err
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: cannot write %s: the file system is read-only; give mcpd a writable data directory (a writable volume or mount)", ErrUnwritable, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: cannot use %s: permission denied%s; make the data directory and its files the user's that mcpd runs as (chown -R)", ErrUnwritable, path, ownerNote(path))
	}
	return err
}
