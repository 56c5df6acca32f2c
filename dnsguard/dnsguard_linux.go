package dnsguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// Block makes Docker's embedded DNS server unreachable from the
// network namespace the calling process is in, by adding an "unreachable"
// route for its address to the local routing table: every packet to it,
// UDP or TCP, on port 53 or on the random port the server really listens
// on, fails at once with "no route to host". It needs CAP_NET_ADMIN in that
// namespace, and adding the route twice is not an error.
//
// Docker 20.10 has no way to leave a container on a user-defined network
// without that server, and it answers the names of every container on the
// network (the sidecar's, by name, short id and reverse lookup) and, on
// internal networks, may forward other names out (CVE-2024-29018).
func Block() error {
	return addUnreachableRoute(EmbeddedDNS)
}

func addUnreachableRoute(addr netip.Addr) error {
	if !addr.Is4() {
		return fmt.Errorf("dnsguard: %s: only IPv4 routes are supported", addr)
	}
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("dnsguard: netlink socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("dnsguard: netlink bind: %w", err)
	}

	// nlmsghdr (16) + rtmsg (12) + rtattr RTA_DST (4 + 4).
	const size = syscall.NLMSG_HDRLEN + syscall.SizeofRtMsg + syscall.SizeofRtAttr + 4
	msg := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], size)
	ne.PutUint16(msg[4:], syscall.RTM_NEWROUTE)
	ne.PutUint16(msg[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_ACK|syscall.NLM_F_CREATE|syscall.NLM_F_EXCL)
	ne.PutUint32(msg[8:], 1) // sequence number
	rt := msg[syscall.NLMSG_HDRLEN:]
	rt[0] = syscall.AF_INET
	rt[1] = 32 // destination prefix length
	rt[4] = syscall.RT_TABLE_LOCAL
	rt[5] = syscall.RTPROT_STATIC
	rt[6] = syscall.RT_SCOPE_UNIVERSE
	rt[7] = syscall.RTN_UNREACHABLE
	attr := rt[syscall.SizeofRtMsg:]
	ne.PutUint16(attr[0:], syscall.SizeofRtAttr+4)
	ne.PutUint16(attr[2:], syscall.RTA_DST)
	a4 := addr.As4()
	copy(attr[syscall.SizeofRtAttr:], a4[:])

	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("dnsguard: netlink send: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := syscall.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("dnsguard: netlink receive: %w", err)
	}
	replies, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return fmt.Errorf("dnsguard: netlink reply: %w", err)
	}
	for _, r := range replies {
		if r.Header.Type != syscall.NLMSG_ERROR || len(r.Data) < 4 {
			continue
		}
		switch errno := -int32(ne.Uint32(r.Data)); syscall.Errno(errno) {
		case 0, syscall.EEXIST:
			return nil
		default:
			return fmt.Errorf("dnsguard: adding an unreachable route to %s: %w", addr, syscall.Errno(errno))
		}
	}
	return errors.New("dnsguard: netlink: no acknowledgement")
}
