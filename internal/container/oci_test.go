package container

import (
	"reflect"
	"testing"
)

func TestParseOCIAnnotations(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{`{"ociVersion":"1.1.0"}`, nil, false},
		{`{"annotations":{"a":"b"}}`, map[string]string{"a": "b"}, false},
		{`{"annotations":{"a":1}}`, nil, true},
		{`not json`, nil, true},
	}
	for _, tt := range tests {
		got, err := parseOCIAnnotations([]byte(tt.in))
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseOCIAnnotations(%s) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestContainerdInfo(t *testing.T) {
	tests := []struct {
		ann  map[string]string
		want Info
	}{
		{nil, Info{Runtime: Containerd}},
		{map[string]string{annCRIContainerName: "api", annCRISandboxName: "p", annCRISandboxNamespace: "ns", annCRIImageName: "img"},
			Info{Runtime: Containerd, Name: "api", Pod: "p", Namespace: "ns", Image: "img"}},
		{map[string]string{annCRIContainerType: "sandbox", annCRISandboxName: "p"}, Info{Runtime: Containerd, Name: sandboxName, Pod: "p"}},
		{map[string]string{annNerdctlName: "redis"}, Info{Runtime: Containerd, Name: "redis"}},
		// CRI's name wins over nerdctl's when both are present.
		{map[string]string{annNerdctlName: "n", annCRIContainerName: "c"}, Info{Runtime: Containerd, Name: "c"}},
	}
	for _, tt := range tests {
		if got := containerdInfo(tt.ann); got != tt.want {
			t.Errorf("containerdInfo(%v) = %+v, want %+v", tt.ann, got, tt.want)
		}
	}
}

func TestCRIOInfo(t *testing.T) {
	ann := map[string]string{labelContainerName: "w", labelPodName: "p", labelPodNamespace: "ns", annCRIOImageName: "img"}
	want := Info{Runtime: CRIO, Name: "w", Pod: "p", Namespace: "ns", Image: "img"}
	if got := crioInfo(ann); got != want {
		t.Errorf("crioInfo = %+v, want %+v", got, want)
	}
}

func FuzzParseOCIConfig(f *testing.F) {
	f.Add([]byte(`{"annotations":{"io.kubernetes.cri.container-name":"a","nerdctl/name":"b"}}`))
	f.Add([]byte(`{"annotations":null}`))
	addFiles(f, "testdata/hosts/*/host/run/*/*/*/*/config.json")
	addFiles(f, "testdata/hosts/*/host/run/containers/storage/overlay-containers/*/userdata/config.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		ann, err := parseOCIAnnotations(data)
		if err != nil {
			return
		}
		checkInfoFields(t, containerdInfo(ann))
		checkInfoFields(t, crioInfo(ann))
	})
}
