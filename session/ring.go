package session

// ring keeps the latest bytes of one exec's output, at most its capacity,
// for replay on attach and for connections that fall behind. Offsets are
// absolute: the count of output bytes before a byte, since the exec began.
// Its memory grows with the output up to the capacity, so a quiet exec
// costs little.
type ring struct {
	buf []byte // len grows to cap, then bytes wrap around
	max int
	end int64 // offset of the next byte written
}

func newRing(capacity int) *ring { return &ring{max: capacity} }

// start is the offset of the oldest byte kept.
func (r *ring) start() int64 { return max(0, r.end-int64(len(r.buf))) }

// write appends p, dropping the oldest bytes beyond the capacity.
func (r *ring) write(p []byte) {
	if r.max <= 0 {
		r.end += int64(len(p))
		return
	}
	for len(p) > 0 {
		if len(r.buf) < r.max {
			n := min(len(p), r.max-len(r.buf))
			if len(r.buf)+n > cap(r.buf) {
				// Double up to the capacity, never past it: append's own
				// growth would leave a full ring with a larger array.
				grown := make([]byte, len(r.buf), min(r.max, max(2*cap(r.buf), len(r.buf)+n, 4<<10)))
				copy(grown, r.buf)
				r.buf = grown
			}
			r.buf = append(r.buf, p[:n]...)
			r.end += int64(n)
			p = p[n:]
			continue
		}
		at := int(r.end % int64(r.max))
		n := copy(r.buf[at:], p)
		r.end += int64(n)
		p = p[n:]
	}
}

// readAt copies the kept bytes from offset off into p, which must lie
// within [start, end); it returns how many it copied.
func (r *ring) readAt(off int64, p []byte) int {
	if off < r.start() || off >= r.end {
		return 0
	}
	p = p[:min(int64(len(p)), r.end-off)]
	n := 0
	for n < len(p) {
		var at int
		if len(r.buf) < r.max {
			at = int(off) + n // not wrapped yet: offsets are indexes
		} else {
			at = int((off + int64(n)) % int64(r.max))
		}
		n += copy(p[n:], r.buf[at:])
	}
	return n
}

// release drops the kept bytes; offsets stay valid (nothing is kept).
func (r *ring) release() { r.buf = nil; r.max = 0 }
