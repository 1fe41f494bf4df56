// Package agent tests `cpuwhy watch` and `cpuwhy agent` end to end: the
// built binary, real processes that idle and then spike (test/spinner),
// Debian's prometheus scraping the agent with a private config on
// loopback, promtool checking deploy/'s rules, a Pyroscope receiver that
// decodes what the agent pushes with google/pprof, and the image built
// from deploy/Dockerfile run by a private dockerd. Nothing here ships.
package agent
