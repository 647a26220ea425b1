package commands

import "fmt"

// byteUnits are the units ctr prints sizes in, each 1024 of the one
// before.
var byteUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}

// HumanSize is n bytes as containerd's ctr prints sizes: one decimal and
// the largest binary unit under which the number stays below 1024
// ("0.0 B", "4.9 KiB", "1.5 MiB").
func HumanSize(n int64) string {
	f, i := float64(n), 0
	for f >= 1024 && i < len(byteUnits)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%02.1f %s", f, byteUnits[i])
}
