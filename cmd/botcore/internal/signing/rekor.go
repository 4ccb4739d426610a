package signing

import (
	"net/http"
	"net/url"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	retryablehttp "github.com/hashicorp/go-retryablehttp"
	"github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/rekor/pkg/util"
)

// newRekorClient is rekor's client.GetRekorClient on http.DefaultTransport:
// rekor's own builds a fresh transport (and dialer) per client, which
// --connect-to could not reach.
func newRekorClient(rekorURL string) (*client.Rekor, error) {
	u, err := url.Parse(rekorURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, &URLError{Service: Rekor, URL: rekorURL}
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: http.DefaultTransport}
	rc.RetryMax = 3
	rc.Logger = nil
	hc := rc.StandardClient()
	if u.Path == "" {
		u.Path = client.DefaultBasePath
	}
	rt := httptransport.NewWithClient(u.Host, u.Path, []string{u.Scheme}, hc)
	rt.Consumers["application/json"] = runtime.JSONConsumer()
	rt.Consumers["application/x-pem-file"] = runtime.TextConsumer()
	rt.Producers["application/json"] = runtime.JSONProducer()
	reg := strfmt.Default
	reg.Add("signedCheckpoint", &util.SignedNote{}, util.SignedCheckpointValidator)
	return client.New(rt, reg), nil
}
