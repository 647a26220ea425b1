// Command webserver stands in for nginx and httpd in the CRI tests: it
// answers every HTTP GET with 200 and a short page, on -addr. What
// critest checks of the real servers, it does too:
//   - -pidfile: the file holds its pid once it listens (nginx's
//     /var/run/nginx.pid, which the host-pid spec reads);
//   - -title: its command line is that text, as nginx retitles its master
//     process "nginx: master process ..." (the container-pid spec looks
//     for that in /proc/1/cmdline); it re-executes itself with the title as
//     argv[0], from its own path, so that its process name (pidof) stays
//     its file's name;
//   - -name: the name it logs its start under (the multi-container spec
//     looks for "httpd" in httpd's log).
//
// It exits 0 on SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	addr := flag.String("addr", ":80", "address to serve HTTP on")
	pidfile := flag.String("pidfile", "", "file to write the pid to once serving")
	title := flag.String("title", "", "command line to run under (argv[0])")
	name := flag.String("name", "webserver", "name to log under")
	flag.Parse()

	if *title != "" && os.Args[0] != *title {
		self, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		log.Fatal(syscall.Exec(self, append([]string{*title}, os.Args[1:]...), os.Environ()))
	}
	log.SetPrefix(*name + ": ")
	log.SetFlags(0)

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("serving HTTP on %s", l.Addr())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		os.Exit(0)
	}()
	page := fmt.Sprintf("<html><body><h1>%s works</h1></body></html>\n", *name)
	log.Fatal(http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	})))
}
