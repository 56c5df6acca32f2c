package dockerbottle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/manifest"
)

// The warm pool keeps bottles made ahead of time, so that a start takes
// one and only provisions it (warm.go). It learns what to make from use:
// every start and preflight of a bottle that may start warm names its key,
// and the pool keeps that key's number of bottles ready, making them one
// at a time in the background and never while a start talks to the
// engine. A bottle leaves the pool once, to one start, and never comes
// back.

// maxPoolKeys bounds the kinds of bottles kept: the least recently used
// key is forgotten, its bottles removed, when a new one comes.
const maxPoolKeys = 4

// poolPrefix starts the session id of a bottle in the pool:
// pool-KEYHASH-RANDOM, so that its labels name its key (see Owner.Labels).
const poolPrefix = "pool-"

// poolKey is what a bottle made ahead of time is made of. Limits are part
// of it: nothing is changed on a running container when it is taken.
type poolKey struct {
	source  string // the manifest's image name or build context and Dockerfile
	ref     string // the agent image's reference as a start names it
	image   string // its ID: a rebuilt image is another key
	runtime string
	sidecar string // the built-in proxy's image: a new bottle-rpc is another key
	memory  int64
	pids    int64
}

func (k poolKey) hash() string {
	h := sha256.Sum256(fmt.Appendf(nil, "%q", []any{k.source, k.ref, k.image, k.runtime, k.sidecar, k.memory, k.pids}))
	return hex.EncodeToString(h[:])[:12]
}

// sameSlot says whether k and o are the same bottle under the same
// runtime and limits: when their images differ, the older key is stale.
func (k poolKey) sameSlot(o poolKey) bool {
	return k.source == o.source && k.runtime == o.runtime && k.memory == o.memory && k.pids == o.pids
}

// poolKeyOf is the key hash a pooled bottle's session id names.
func poolKeyOf(session string) (string, bool) {
	rest, ok := strings.CutPrefix(session, poolPrefix)
	if !ok {
		return "", false
	}
	key, _, ok := strings.Cut(rest, "-")
	return key, ok
}

type warmPool struct {
	e   *Engine
	def int // bottles per key when the manifest does not say

	mu sync.Mutex
	// changed is closed and replaced at every change of the fields below.
	changed  chan struct{}
	keys     []*keyPool // least recently used first
	starts   int        // Starts talking to the engine: refill waits
	gen      int        // DrainPool's count: a bottle made before a drain is removed
	filling  bool       // the refiller runs
	removing int        // pooled bottles being removed in the background
}

type keyPool struct {
	key   poolKey
	want  int
	ready []*pooledBottle
	// failed: making one failed; the key is made again when a start or
	// preflight names it next.
	failed bool
}

func newWarmPool(e *Engine, def int) *warmPool {
	return &warmPool{e: e, def: max(def, 0), changed: make(chan struct{})}
}

// signal wakes whoever waits on changed; the caller holds mu.
func (p *warmPool) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// size is how many bottles b's key keeps; 0 means b never starts warm.
func (p *warmPool) size(b *manifest.Bottle) int {
	switch {
	case b.Sidecar != nil:
		return 0 // another proxy cannot wait for its config
	case b.Pool != nil:
		return *b.Pool
	}
	return p.def
}

func (p *warmPool) find(k poolKey) (int, *keyPool) {
	for i, kp := range p.keys {
		if kp.key == k {
			return i, kp
		}
	}
	return -1, nil
}

// want registers k with n bottles to keep, as the most recently used key:
// keys of the same slot with other images, and keys beyond maxPoolKeys,
// are forgotten and their bottles removed.
func (p *warmPool) want(k poolKey, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, kp := p.find(k)
	if kp == nil {
		kp = &keyPool{key: k}
	} else {
		p.keys = slices.Delete(p.keys, i, i+1)
	}
	kp.want, kp.failed = n, false
	var drop []*keyPool
	p.keys = slices.DeleteFunc(p.keys, func(o *keyPool) bool {
		if o.key.sameSlot(k) {
			drop = append(drop, o)
			return true
		}
		return false
	})
	p.keys = append(p.keys, kp)
	if len(p.keys) > maxPoolKeys {
		drop = append(drop, p.keys[0])
		p.keys = p.keys[1:]
	}
	for _, o := range drop {
		p.e.log.Info("warm pool: forgetting a key", "key", o.key.hash(), "image", o.key.ref, "runtime", o.key.runtime, "bottles", len(o.ready))
		p.removeLocked(o.ready...)
	}
	if !p.filling {
		p.filling = true
		go p.refiller()
	}
	p.signal()
}

// take hands out a ready bottle of k, or nil; the refiller makes another.
func (p *warmPool) take(k poolKey) *pooledBottle {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, kp := p.find(k)
	if kp == nil || len(kp.ready) == 0 {
		return nil
	}
	pb := kp.ready[0]
	kp.ready = kp.ready[1:]
	p.keys = append(slices.Delete(p.keys, i, i+1), kp)
	p.signal()
	return pb
}

// ready says whether a bottle of k waits.
func (p *warmPool) ready(k poolKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, kp := p.find(k)
	return kp != nil && len(kp.ready) > 0
}

// startBegins and its func hold the refill back while a start talks to
// the engine.
func (p *warmPool) startBegins() (ends func()) {
	p.mu.Lock()
	p.starts++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.starts--
		p.signal()
		p.mu.Unlock()
	}
}

// removeLocked removes bottles in the background; the caller holds mu.
func (p *warmPool) removeLocked(pbs ...*pooledBottle) {
	for _, pb := range pbs {
		p.removing++
		go func() {
			pb.remove(p.e)
			p.mu.Lock()
			p.removing--
			p.signal()
			p.mu.Unlock()
		}()
	}
}

// errDrained ends the making of a bottle that a drain made unwanted.
var errDrained = errors.New("the warm pool was drained")

// refiller makes the bottles the keys lack, one at a time, until no key
// lacks any; a later want starts it again.
func (p *warmPool) refiller() {
	for {
		p.mu.Lock()
		var kp *keyPool
		for i := len(p.keys) - 1; i >= 0; i-- { // most recently used first
			if k := p.keys[i]; !k.failed && len(k.ready) < k.want {
				kp = k
				break
			}
		}
		if kp == nil {
			p.filling = false
			p.signal()
			p.mu.Unlock()
			return
		}
		key, gen := kp.key, p.gen
		p.mu.Unlock()

		pb, err := p.e.makePooled(context.Background(), key, func(ctx context.Context) error { return p.idle(ctx, gen) })

		p.mu.Lock()
		_, now := p.find(key)
		switch {
		case errors.Is(err, errDrained):
		case err != nil:
			p.e.log.Warn("warm pool: making a bottle ahead of time failed; starts of its kind are cold until it is named again", "image", key.ref, "runtime", key.runtime, "err", err)
			if now != nil {
				now.failed = true
			}
		case now == nil || p.gen != gen || len(now.ready) >= now.want:
			p.removeLocked(pb)
		default:
			now.ready = append(now.ready, pb)
			p.e.log.Debug("warm pool: bottle ready", "pool", pb.id, "image", key.ref, "runtime", key.runtime)
		}
		p.signal()
		p.mu.Unlock()
	}
}

// idle waits until no start talks to the engine; it fails once a drain
// made the bottle being made unwanted.
func (p *warmPool) idle(ctx context.Context, gen int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.gen != gen {
			return errDrained
		}
		if p.starts == 0 {
			return nil
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			p.mu.Lock()
			return ctx.Err()
		}
		p.mu.Lock()
	}
}

// DrainPool removes every bottle of the warm pool and forgets its keys;
// a bottle being made is removed once its step ends. It returns once they
// are gone. The pool fills again for the keys of later starts: the daemon
// calls it as it ends.
func (e *Engine) DrainPool(ctx context.Context) error {
	p := e.warm
	p.mu.Lock()
	p.gen++
	for _, kp := range p.keys {
		p.removeLocked(kp.ready...)
	}
	p.keys = nil
	p.signal()
	for p.filling || p.removing > 0 {
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("draining the warm pool: %w", ctx.Err())
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return nil
}

// PoolReady says how many bottles of the warm pool wait, and a channel
// closed at the pool's next change: tests wait on it.
func (e *Engine) PoolReady() (int, <-chan struct{}) {
	p := e.warm
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, kp := range p.keys {
		n += len(kp.ready)
	}
	return n, p.changed
}

// poolRemoveTimeout bounds the removal of a pooled bottle, which runs
// with nobody waiting.
const poolRemoveTimeout = time.Minute
