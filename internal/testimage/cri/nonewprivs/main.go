// Command nonewprivs prints its effective uid. The image installs it
// setuid root: run as uid 1000, it prints 0 unless the container has
// no_new_privs set, which makes the kernel ignore the setuid bit (what
// critest's NoNewPrivs specs check, as Kubernetes' nonewprivs image does).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
