package dockerbottle

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Labels on every container, network and image a bottle makes. The owner
// labels let gc tell a live server's resources from orphans, also with
// several servers on one engine.
const (
	LabelSession    = "dev.bottle.session"
	LabelRole       = "dev.bottle.role"
	LabelOwner      = "dev.bottle.owner"
	LabelOwnerPID   = "dev.bottle.owner.pid"
	LabelOwnerStart = "dev.bottle.owner.start"
	LabelOwnerBoot  = "dev.bottle.owner.boot"
	// LabelOwnerHost is the machine the owner runs on: on an engine that
	// several machines share, only the owner's own machine can tell
	// whether its process still runs.
	LabelOwnerHost = "dev.bottle.owner.host"
	// LabelCache marks images kept across sessions as a build cache.
	LabelCache = "dev.bottle.cache"
	// LabelPool marks a bottle made ahead of time for warm starts: its
	// value is the hash of the pool key. Labels cannot change, so a bottle
	// taken from the pool keeps it, and keeps its pool id as LabelSession.
	LabelPool = "dev.bottle.pool"
)

// Owner identifies one server process: a random id, its pid, the kernel's
// start time of that pid, the boot id and the machine. A pid alone is not
// enough: pids are reused, and after a reboot every old pid is
// meaningless.
type Owner struct {
	ID    string
	PID   int
	Start string
	Boot  string
	Host  string
}

// CurrentOwner is the identity of this process.
func CurrentOwner() (Owner, error) {
	pid := os.Getpid()
	start, err := processStart(pid)
	if err != nil {
		return Owner{}, err
	}
	boot, err := bootID()
	if err != nil {
		return Owner{}, err
	}
	return Owner{ID: randomID(6), PID: pid, Start: start, Boot: boot, Host: machineID()}, nil
}

// Labels are the labels a resource of this owner carries.
// A pooled bottle's session is its pool id, which names its pool key.
func (o Owner) Labels(session, role string) map[string]string {
	l := map[string]string{
		LabelSession:    session,
		LabelRole:       role,
		LabelOwner:      o.ID,
		LabelOwnerPID:   strconv.Itoa(o.PID),
		LabelOwnerStart: o.Start,
		LabelOwnerBoot:  o.Boot,
		LabelOwnerHost:  o.Host,
	}
	if key, ok := poolKeyOf(session); ok {
		l[LabelPool] = key
	}
	return l
}

// ownerAlive says whether the process that labelled a resource still runs;
// o is this process, whose boot is the machine's current one. Resources
// without owner labels have no owner to wait for. A resource of another
// machine's server counts as alive: its pid and boot mean nothing here,
// and taking it for an orphan would remove that machine's live bottles.
func (o Owner) ownerAlive(labels map[string]string) bool {
	if host := labels[LabelOwnerHost]; host != "" && host != o.Host {
		return true
	}
	pid, err := strconv.Atoi(labels[LabelOwnerPID])
	if err != nil || labels[LabelOwnerBoot] == "" || labels[LabelOwnerBoot] != o.Boot {
		return false
	}
	start, err := processStart(pid)
	return err == nil && start == labels[LabelOwnerStart]
}

// machineID names this machine across reboots: systemd's machine id,
// else D-Bus's, else the host name.
func machineID() string {
	for _, f := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	h, _ := os.Hostname()
	return h
}

func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("reading the boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// processStart is field 22 of /proc/PID/stat: the start time in clock ticks
// since boot, which differs between two processes that share a pid.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", fmt.Errorf("reading the start time of process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after it start at
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("parsing /proc/%d/stat: no ')'", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return "", fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(fields))
	}
	return fields[19], nil
}

func randomID(nbytes int) string {
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b)
}
