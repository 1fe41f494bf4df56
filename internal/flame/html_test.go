package flame

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/test/browsertest"
)

// hostileProfile is the seed plus a thread whose frame name tries to end
// the data's <script> element and run its own.
func hostileProfile() *Profile {
	p := seedProfile()
	p.Stacks = append(p.Stacks, Stack{Thread: "evil</script>", TID: 666, Count: 400, Frames: []Frame{
		{Function: `</script><img src=x id=pwned onerror="document.title='pwned'">`, Module: "/tmp/evil.so"},
	}})
	return p
}

func TestHTMLSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(&b, hostileProfile()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if n := strings.Count(strings.ToLower(page), "</script>"); n != 2 {
		t.Errorf("page has %d </script> tags, want 2 (data and code): a name escaped its string", n)
	}
	if strings.Contains(page, "<img") {
		t.Error("a frame name became markup")
	}
	// Nothing may come from the network: the page must work offline.
	for _, ref := range []string{"http://", "https://", "src=", "@import", "url("} {
		if strings.Contains(strings.ReplaceAll(page, `\u003cimg src=x`, ""), ref) {
			t.Errorf("page refers to something outside itself: %q", ref)
		}
	}
	data, err := marshalHTMLData(hostileProfile())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, string(data)) {
		t.Error("the page does not embed the data of marshalHTMLData (the golden file's)")
	}
}

var frameBox = regexp.MustCompile(`<div class="f[^"]*" data-frame="(\d+)"`)

// TestHTMLInChromium renders the page in a real browser and checks that
// its script drew the graph, searched, and ran nothing from the data.
func TestHTMLInChromium(t *testing.T) {
	bin := browsertest.Chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "flame.html")
	if err := WriteFile(page, hostileProfile()); err != nil {
		t.Fatal(err)
	}
	url := "file://" + page

	dom := browsertest.DumpDOM(t, bin, url)
	boxes := frameBox.FindAllStringSubmatch(dom, -1)
	// Every node of the tree is wide enough to draw at 1200 px but the
	// 1-sample epoll_wait thread's, which is still ≥ 0.4 px: all of them.
	var nodes func(*node) int
	nodes = func(n *node) int {
		c := 1
		for _, ch := range n.Children {
			c += nodes(ch)
		}
		return c
	}
	if want := nodes(newHTMLData(hostileProfile()).Root); len(boxes) != want {
		t.Errorf("the page drew %d frame boxes, want %d", len(boxes), want)
	}
	for _, want := range []string{
		"Total: 1,395 samples",
		">NatThreadMain-4677<",
		">__skb_try_recv_datagram<",
		">vpnserver+0x4a1f3<",
		"no symbols: vpnserver: stripped",
		"&lt;/script&gt;&lt;img src=x", // the hostile name, as text
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if strings.Contains(dom, `id="pwned"`) || strings.Contains(dom, "<title>pwned") {
		t.Error("a frame name ran as markup in the browser")
	}

	searched := browsertest.DumpDOM(t, bin, url+"#search=recv")
	// recv matches recvfrom and RecvFrom: NatThreadMain's 936 of 1395.
	if want := "Matched: 67.10% (936 samples)"; !strings.Contains(searched, want) {
		t.Errorf("searching recv: page lacks %q", want)
	}
	if n := strings.Count(searched, `class="f match"`); n == 0 {
		t.Error("searching recv highlighted no frame")
	}

	// Zoomed into RecvFrom, searching recv: the box spans the width, its
	// ancestors are drawn dimmed, and the share is of the zoomed frame.
	zoomed := browsertest.DumpDOM(t, bin, url+"#zoom=RecvFrom&search=recv")
	if n := strings.Count(zoomed, `class="f ancestor"`); n != 5 {
		t.Errorf("zoomed into RecvFrom: %d ancestor boxes, want 5 (all, thread, __clone3, start_thread, vpnserver+0x4a1f3)", n)
	}
	if want := "Matched: 100.00% (936 samples)"; !strings.Contains(zoomed, want) {
		t.Errorf("zoomed into RecvFrom: page lacks %q", want)
	}
	if strings.Contains(zoomed, ">vpn::Session::run()<") || strings.Contains(zoomed, ">evil&lt;/script&gt;-666<") {
		t.Error("zoomed into RecvFrom: frames outside it are still drawn")
	}

	// How it looks is for a person to judge (CPUWHY_SCREENSHOT_DIR keeps
	// it); that it drew something is checked here.
	img, shot := browsertest.Screenshot(t, bin, url, "flame-synthetic.png")
	if n := browsertest.Colors(img); n < 16 {
		t.Errorf("screenshot %s has %d colours: nothing drawn", shot, n)
	}
}
