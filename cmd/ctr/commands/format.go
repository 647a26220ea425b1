package commands

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli"
)

// This file holds the output formats ctr's commands share, written to
// print exactly what containerd's ctr prints (which takes them from
// docker/go-units and its own progress package).

// decimalUnits are the units of DecimalSize, powers of 1000.
var decimalUnits = []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}

// binaryUnits are the units of HumanBytes, powers of 1024.
var binaryUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}

// scale divides size by base until it is below base or the units run
// out, and returns it with its unit.
func scale(size, base float64, units []string) (float64, string) {
	i := 0
	for size >= base && i < len(units)-1 {
		size /= base
		i++
	}
	return size, units[i]
}

// DecimalSize is a size in decimal units with four significant digits and
// no space ("1kB", "1.049MB"), as `ctr content ls` and `content active`
// print it.
func DecimalSize(size int64) string {
	s, unit := scale(float64(size), 1000, decimalUnits)
	return fmt.Sprintf("%.4g%s", s, unit)
}

// HumanBytes is a size in binary units with one decimal ("4.0 KiB"), as
// `ctr snapshots usage` prints it.
func HumanBytes(size int64) string {
	s, unit := scale(float64(size), 1024, binaryUnits)
	return fmt.Sprintf("%02.1f %s", s, unit)
}

// HumanDuration is an approximate age ("Less than a second", "3 minutes",
// "About an hour"), as ctr's AGE columns print it.
func HumanDuration(d time.Duration) string {
	if seconds := int(d.Seconds()); seconds < 1 {
		return "Less than a second"
	} else if seconds == 1 {
		return "1 second"
	} else if seconds < 60 {
		return fmt.Sprintf("%d seconds", seconds)
	} else if minutes := int(d.Minutes()); minutes == 1 {
		return "About a minute"
	} else if minutes < 60 {
		return fmt.Sprintf("%d minutes", minutes)
	} else if hours := int(d.Hours() + 0.5); hours == 1 {
		return "About an hour"
	} else if hours < 48 {
		return fmt.Sprintf("%d hours", hours)
	} else if hours < 24*7*2 {
		return fmt.Sprintf("%d days", hours/24)
	} else if hours < 24*30*2 {
		return fmt.Sprintf("%d weeks", hours/24/7)
	} else if hours < 24*365*2 {
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// FormatLabels joins labels as sorted "key=value" pairs separated by
// commas; "" when there are none.
func FormatLabels(labels map[string]string) string {
	pairs := make([]string, 0, len(labels))
	for k, v := range labels {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// LabelArgs parses "key=value" arguments; a bare "key" means "key=true",
// as in containerd's ctr. A later argument for the same key wins.
func LabelArgs(args []string) map[string]string {
	labels := make(map[string]string, len(args))
	for _, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			v = "true"
		}
		labels[k] = v
	}
	return labels
}

// ObjectWithLabelArgs splits a command's arguments into the object they
// name (the first) and the labels that follow it.
func ObjectWithLabelArgs(context *cli.Context) (string, map[string]string) {
	return context.Args().First(), LabelArgs(context.Args().Tail())
}

// PrintAsJSON prints v as JSON indented by four spaces, followed by a
// newline, to Stdout.
func PrintAsJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return fmt.Errorf("marshal %T as JSON: %w", v, err)
	}
	_, err = fmt.Fprintln(Stdout, string(b))
	return err
}
