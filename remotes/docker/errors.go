package docker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/llitfkitfk/containerd/errdefs"
)

// maxErrorBody bounds how much of an error response is read: enough for
// any registry's error list, not enough for a hostile server to hurt.
const maxErrorBody = 64 << 10

// registryError is one entry of the distribution spec's error list:
// {"errors":[{"code":"MANIFEST_UNKNOWN","message":"…","detail":…}]}.
type registryError struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

func (e registryError) String() string {
	s := e.Code
	if e.Message != "" {
		if s != "" {
			s += ": "
		}
		s += e.Message
	}
	if d := strings.TrimSpace(string(e.Detail)); d != "" && d != "null" && d != "{}" && d != `""` {
		if len(d) > 256 {
			d = d[:256] + "…"
		}
		s += " (" + d + ")"
	}
	return s
}

// errorKind maps a distribution error code to an error kind; "" codes
// and codes the spec does not name fall back to the HTTP status.
func errorKind(code string) error {
	switch code {
	case "BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UPLOAD_UNKNOWN":
		return errdefs.ErrNotFound
	case "DENIED":
		return errdefs.ErrPermissionDenied
	case "UNAUTHORIZED":
		return errdefs.ErrUnauthenticated
	case "TOOMANYREQUESTS":
		return errdefs.ErrUnavailable
	case "UNSUPPORTED":
		return errdefs.ErrNotImplemented
	case "MANIFEST_BLOB_UNKNOWN":
		// A manifest naming content the registry lacks: push that first.
		return errdefs.ErrFailedPrecondition
	case "BLOB_UPLOAD_INVALID", "DIGEST_INVALID", "MANIFEST_INVALID", "MANIFEST_UNVERIFIED",
		"NAME_INVALID", "SIZE_INVALID", "TAG_INVALID", "PAGINATION_NUMBER_INVALID", "RANGE_INVALID":
		return errdefs.ErrInvalidArgument
	}
	return nil
}

// statusKind maps an HTTP status to an error kind.
func statusKind(status int) error {
	switch {
	case status == http.StatusNotFound:
		return errdefs.ErrNotFound
	case status == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case status == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case status == http.StatusTooManyRequests, status >= 500:
		return errdefs.ErrUnavailable
	case status == http.StatusMethodNotAllowed, status == http.StatusNotImplemented:
		return errdefs.ErrNotImplemented
	case status == http.StatusBadRequest:
		return errdefs.ErrInvalidArgument
	case status == http.StatusRequestedRangeNotSatisfiable:
		return errdefs.ErrFailedPrecondition
	}
	return errdefs.ErrUnknown
}

// responseError reads an unexpected response's body and returns an error
// saying what was being done, what the registry answered and the kind
// the answer means. It closes the body.
func responseError(what string, resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg, kind := describeResponse(resp.StatusCode, body)
	return fmt.Errorf("%s: %s answered %s%s: %w", what, resp.Request.URL.Host, resp.Status, msg, kind)
}

// describeResponse returns ": <the registry's errors>" (or "") and the
// error kind of a response with the given status and body.
func describeResponse(status int, body []byte) (string, error) {
	var list struct {
		Errors []registryError `json:"errors"`
	}
	kind := statusKind(status)
	if json.Unmarshal(body, &list) != nil || len(list.Errors) == 0 {
		// Not the spec's format: a short plain-text body still helps.
		text := strings.TrimSpace(string(body))
		if text == "" || len(text) > 200 || strings.ContainsAny(text, "<\x00") {
			return "", kind
		}
		return ": " + text, kind
	}
	parts := make([]string, len(list.Errors))
	for i, e := range list.Errors {
		parts[i] = e.String()
	}
	// The first error the registry names decides the kind, when it names
	// one the spec knows; a 404 is a 404 whatever the code says.
	if k := errorKind(list.Errors[0].Code); k != nil && status != http.StatusNotFound {
		kind = k
	}
	return ": " + strings.Join(parts, "; "), kind
}
