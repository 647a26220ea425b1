package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeRegistry is an in-memory registry speaking enough of the
// distribution API for the client's tests, with knobs to misbehave.
type fakeRegistry struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	blobs     map[string]map[digest.Digest][]byte // repository → digest → data
	manifests map[string]map[string]manifest      // repository → tag or digest → manifest
	uploads   map[string]*bytes.Buffer            // upload id → data so far
	uploadTo  map[string]string                   // upload id → repository
	requests  []*http.Request                     // every request (bodies not kept)
	nextID    int

	// knobs
	headNoDigest bool                                // HEAD of manifests omits Docker-Content-Digest
	dropAfter    int                                 // >0: blob GETs without Range send this much, then drop
	drops        int                                 // how many GETs to drop before serving normally (-1: all)
	ignoreRange  bool                                // Range headers are ignored
	truncate     int                                 // >0: blob GETs declare and send only this many bytes
	tamper       bool                                // blob GETs send a flipped byte
	noMount      bool                                // mount requests start an upload instead
	fail         func(r *http.Request) (int, string) // !=0: answer with this status and body
	auth         func(w http.ResponseWriter, r *http.Request, repo string, write bool) bool
}

type manifest struct {
	mediaType string
	data      []byte
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{
		t:         t,
		blobs:     map[string]map[digest.Digest][]byte{},
		manifests: map[string]map[string]manifest{},
		uploads:   map[string]*bytes.Buffer{},
		uploadTo:  map[string]string{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// host is the registry's host:port.
func (f *fakeRegistry) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// hosts configures a resolver for this registry alone.
func (f *fakeRegistry) hosts(auth Authorizer) RegistryHosts {
	return func(string) ([]RegistryHost, error) {
		return []RegistryHost{{Client: f.srv.Client(), Authorizer: auth, Host: f.host(), Scheme: "http", Path: "/v2", Capabilities: HostCapabilityAll}}, nil
	}
}

func (f *fakeRegistry) putBlob(repo string, data []byte) ocispec.Descriptor {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digest.FromBytes(data)
	if f.blobs[repo] == nil {
		f.blobs[repo] = map[digest.Digest][]byte{}
	}
	f.blobs[repo][d] = data
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(data))}
}

func (f *fakeRegistry) putManifest(repo, tag, mediaType string, data []byte) ocispec.Descriptor {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digest.FromBytes(data)
	if f.manifests[repo] == nil {
		f.manifests[repo] = map[string]manifest{}
	}
	m := manifest{mediaType, data}
	f.manifests[repo][d.String()] = m
	if tag != "" {
		f.manifests[repo][tag] = m
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (f *fakeRegistry) blob(repo string, d digest.Digest) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.blobs[repo][d]
	return b, ok
}

func (f *fakeRegistry) manifestAt(repo, object string) (manifest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.manifests[repo][object]
	return m, ok
}

// seen returns "METHOD path" of the requests made, with their Range.
func (f *fakeRegistry) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.requests {
		s := r.Method + " " + r.URL.Path
		if rg := r.Header.Get("Range"); rg != "" {
			s += " Range:" + rg
		}
		out = append(out, s)
	}
	return out
}

func (f *fakeRegistry) count(method, pathPart string) int {
	n := 0
	for _, s := range f.seen() {
		if strings.HasPrefix(s, method+" ") && strings.Contains(s, pathPart) {
			n++
		}
	}
	return n
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q,"detail":null}]}`, code, msg)
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(r.Context()))
	fail, auth := f.fail, f.auth
	f.mu.Unlock()

	if r.URL.Path == "/token" {
		if auth != nil {
			auth(w, r, "", false)
			return
		}
		http.NotFound(w, r)
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	var repo, kind, object string
	for _, k := range []string{"/manifests/", "/blobs/uploads/", "/blobs/"} {
		if i := strings.LastIndex(p, k); i >= 0 {
			repo, kind, object = p[:i], strings.Trim(k, "/"), p[i+len(k):]
			break
		}
	}
	if kind == "" {
		http.NotFound(w, r)
		return
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if auth != nil && !auth(w, r, repo, write) {
		return
	}
	if fail != nil {
		if status, body := fail(r); status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
	}
	switch kind {
	case "manifests":
		f.serveManifest(w, r, repo, object)
	case "blobs":
		f.serveBlob(w, r, repo, digest.Digest(object))
	case "blobs/uploads":
		f.serveUpload(w, r, repo, object)
	}
}

func (f *fakeRegistry) serveManifest(w http.ResponseWriter, r *http.Request, repo, object string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		m, ok := f.manifestAt(repo, object)
		if !ok {
			writeErr(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
			return
		}
		w.Header().Set("Content-Type", m.mediaType)
		w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
		if !(r.Method == http.MethodHead && f.headNoDigest) {
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(m.data).String())
		}
		if r.Method == http.MethodGet {
			w.Write(m.data)
		}
	case http.MethodPut:
		data, err := io.ReadAll(r.Body)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		d := digest.FromBytes(data)
		if strings.Contains(object, ":") && object != d.String() {
			writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "digest does not match")
			return
		}
		tag := object
		if strings.Contains(object, ":") {
			tag = ""
		}
		f.putManifest(repo, tag, r.Header.Get("Content-Type"), data)
		w.Header().Set("Docker-Content-Digest", d.String())
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (f *fakeRegistry) serveBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) {
	data, ok := f.blob(repo, d)
	if !ok {
		writeErr(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry")
		return
	}
	w.Header().Set("Docker-Content-Digest", d.String())
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		return
	}
	f.mu.Lock()
	dropAfter, ignoreRange, truncate, tamper := 0, f.ignoreRange, f.truncate, f.tamper
	if f.dropAfter > 0 && f.drops != 0 {
		dropAfter = f.dropAfter
		f.drops--
	}
	f.mu.Unlock()

	if tamper {
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	start := 0
	if rg := r.Header.Get("Range"); rg != "" && !ignoreRange {
		s, ok := strings.CutPrefix(rg, "bytes=")
		s, ok2 := strings.CutSuffix(s, "-")
		n, err := strconv.Atoi(s)
		if !ok || !ok2 || err != nil || n > len(data) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = n
	}
	if truncate > 0 && truncate < len(data) {
		data = data[:truncate]
	}
	if start > len(data) {
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	body := data[start:]
	if dropAfter > 0 && dropAfter < len(body) {
		// Promise it all, send some, hang up.
		hj := w.(http.Hijacker)
		conn, buf, err := hj.Hijack()
		if err != nil {
			f.t.Errorf("hijack: %v", err)
			return
		}
		status := "200 OK"
		extra := ""
		if start > 0 {
			status = "206 Partial Content"
			extra = fmt.Sprintf("Content-Range: bytes %d-%d/%d\r\n", start, len(data)-1, len(data))
		}
		fmt.Fprintf(buf, "HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n", status, len(body), extra)
		buf.Write(body[:dropAfter])
		buf.Flush()
		conn.Close()
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if start > 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
	}
	w.Write(body)
}

func (f *fakeRegistry) serveUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	switch {
	case r.Method == http.MethodPost && id == "":
		if from, mount := r.URL.Query().Get("from"), r.URL.Query().Get("mount"); from != "" && !f.noMount {
			if data, ok := f.blob(from, digest.Digest(mount)); ok {
				f.putBlob(repo, data)
				w.Header().Set("Location", "/v2/"+repo+"/blobs/"+mount)
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
		f.mu.Lock()
		f.nextID++
		id = strconv.Itoa(f.nextID)
		f.uploads[id] = &bytes.Buffer{}
		f.uploadTo[id] = repo
		f.mu.Unlock()
		// Relative, with a query of its own, as distribution does.
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id+"?_state=s"+id)
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut && id != "":
		f.mu.Lock()
		buf, ok := f.uploads[id]
		f.mu.Unlock()
		if !ok || r.URL.Query().Get("_state") != "s"+id {
			writeErr(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
			return
		}
		if _, err := io.Copy(buf, r.Body); err != nil {
			writeErr(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
			return
		}
		want := digest.Digest(r.URL.Query().Get("digest"))
		if digest.FromBytes(buf.Bytes()) != want {
			writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content")
			return
		}
		f.putBlob(repo, buf.Bytes())
		w.Header().Set("Docker-Content-Digest", want.String())
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// tokenServer is the token endpoint bearerAuth puts on a fakeRegistry:
// it wants user:pass when user is set (or pass as a refresh token in a
// POST), and logs what it issued as "scopes|user".
type tokenServer struct {
	mu        sync.Mutex
	user      string
	pass      string
	expiresIn int
	issued    []string          // "scope…|user"
	valid     map[string]string // token → scopes
	reject    bool              // the registry refuses every token
	forms     []string          // POST bodies
	n         int
}

// bearerAuth makes f demand bearer tokens from ts, served at /token.
func (f *fakeRegistry) bearerAuth(ts *tokenServer) {
	ts.valid = map[string]string{}
	f.auth = func(w http.ResponseWriter, r *http.Request, repo string, write bool) bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if r.URL.Path == "/token" {
			user, pass, hasBasic := r.BasicAuth()
			scopes := strings.Join(r.URL.Query()["scope"], " ")
			if r.Method == http.MethodPost {
				r.ParseForm()
				ts.forms = append(ts.forms, r.PostForm.Encode())
				scopes = r.PostForm.Get("scope")
				if r.PostForm.Get("refresh_token") != ts.pass {
					writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad refresh token")
					return false
				}
			} else if ts.user != "" && (!hasBasic || user != ts.user || pass != ts.pass) {
				writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "incorrect username or password")
				return false
			}
			ts.issued = append(ts.issued, scopes+"|"+user)
			ts.n++
			tok := fmt.Sprintf("tok%d", ts.n)
			ts.valid[tok] = scopes
			json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": ts.expiresIn})
			return false
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		scopes, ok := ts.valid[tok]
		action := "pull"
		if write {
			action = "pull,push"
		}
		granted := false
		for _, sc := range strings.Fields(scopes) {
			if name, actions, ok := strings.Cut(strings.TrimPrefix(sc, "repository:"), ":"); ok && name == repo &&
				(actions == action || action == "pull" && actions == "pull,push") {
				granted = true
			}
		}
		if ok && !ts.reject && granted {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake",scope="repository:%s:%s"`, f.srv.URL, repo, action))
		writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return false
	}
}

// basicAuth makes f demand user:pass.
func (f *fakeRegistry) basicAuth(user, pass string) {
	f.auth = func(w http.ResponseWriter, r *http.Request, repo string, write bool) bool {
		if u, p, ok := r.BasicAuth(); ok && u == user && p == pass {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="fake"`)
		writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return false
	}
}
