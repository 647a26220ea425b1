package sys

import (
	"fmt"
	"net"
	"os"
)

// Notification states for systemd's Type=notify services.
const (
	NotifyReady    = "READY=1"
	NotifyStopping = "STOPPING=1"
)

// SdNotify sends state to the socket systemd names in $NOTIFY_SOCKET. It
// reports false, without error, when the daemon was not started that way.
func SdNotify(state string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	// A leading '@' names a socket in the abstract namespace.
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("notify systemd: %w", err)
	}
	return true, nil
}
