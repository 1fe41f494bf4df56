package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/flame"
)

// Pyroscope pushes profiles to a Pyroscope-compatible server's /ingest,
// in pprof format, as a multipart form whose "profile" part is the
// gzipped pprof (as Pyroscope's own Go client sends them).
type Pyroscope struct {
	URL    string // the server, without /ingest
	Client *http.Client
}

// NewPyroscope checks the URL and returns the pusher.
func NewPyroscope(raw string) (*Pyroscope, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--pyroscope %q: give the server's URL, http://HOST:PORT", raw)
	}
	return &Pyroscope{URL: strings.TrimSuffix(raw, "/"), Client: &http.Client{Timeout: 10 * time.Second}}, nil
}

// Labels of a pushed profile.
type Labels struct {
	Service, Process, Container, Pattern string
}

// maxPushed bounds the profile the agent pushes; a window's profile is
// far smaller.
const maxPushed = 32 << 20

// Push sends the profile of a window [from, until) sampled at hz.
func (p *Pyroscope) Push(ctx context.Context, prof *flame.Profile, l Labels, from, until time.Time, hz int) error {
	var pprof bytes.Buffer
	if err := flame.Write(&pprof, flame.FormatPprof, prof); err != nil {
		return fmt.Errorf("encoding the profile for Pyroscope: %w", err)
	}
	if pprof.Len() > maxPushed {
		return fmt.Errorf("the profile is %d bytes, more than the %d pushed", pprof.Len(), maxPushed)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreateFormFile("profile", "profile.pprof")
	if err != nil {
		return err
	}
	part.Write(pprof.Bytes())
	mw.Close()

	q := url.Values{}
	q.Set("name", AppName(l))
	q.Set("from", strconv.FormatInt(from.Unix(), 10))
	q.Set("until", strconv.FormatInt(max(until.Unix(), from.Unix()+1), 10))
	q.Set("format", "pprof")
	q.Set("sampleRate", strconv.Itoa(hz))
	q.Set("spyName", "cpuwhy")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/ingest?"+q.Encode(), &body)
	if err != nil {
		return fmt.Errorf("pushing to Pyroscope: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := p.Client.Do(req)
	if err != nil {
		return fmt.Errorf("pushing to Pyroscope: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("pushing to Pyroscope: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// AppName is the profile's name in Pyroscope's syntax,
// service{service=…,process=…,container=…,pattern=…}: the service is the
// process name, the name a person would look an application up by.
func AppName(l Labels) string {
	var b strings.Builder
	b.WriteString(labelValue(l.Service))
	b.WriteString("{service=" + labelValue(l.Service))
	b.WriteString(",process=" + labelValue(l.Process))
	if l.Container != "" {
		b.WriteString(",container=" + labelValue(l.Container))
	}
	if l.Pattern != "" {
		b.WriteString(",pattern=" + labelValue(l.Pattern))
	}
	b.WriteString("}")
	return b.String()
}

// labelValue keeps what Pyroscope's name syntax allows in a value without
// quoting: letters, digits and ._:/- (the braces, commas and '=' that
// delimit the labels are not).
func labelValue(s string) string {
	if len(s) > maxLabel {
		s = s[:maxLabel]
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:/-", c) >= 0) {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}
